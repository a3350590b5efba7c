"""The public records of an init plan: what each parameter gets, and from which seed."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Literal, cast

import torch

__all__ = ["InitPlan", "ParamInit", "PlanDiff", "json_object"]


@dataclass(frozen=True)
class ParamInit:
    """What one tensor of a model gets from a reset.

    Attributes:
        path: the tensor's dotted path, as in ``state_dict()``.
        layer: the path of the layer whose generator it draws from.
        scheme: the layer's declared scheme (``"default"`` for undeclared layers).
        rule: what is concretely applied, e.g. ``kaiming_uniform(a=sqrt(5))``.
        seed: the seed of the layer's generator.
        seed_source: ``"explicit"`` (given in the declaration) or ``"derived"`` (root, path).
        declared_by: ``Class.attr`` of the declaration, or None for an undeclared layer.
        shape: the tensor's shape.
        dtype: the tensor's dtype.
        tied_to: for a second name of a tied tensor (a head sharing the embedding's weight),
            the path whose record says how it is drawn; None otherwise.
        device: the tensor's device, e.g. ``"cpu"``, ``"cuda:0"`` or ``"meta"``.
        fan_in: PyTorch's fan_in (``torch.nn.init``) of the full (global) shape; None for a
            tensor of fewer than 2 dimensions.
        fan_out: the same for fan_out.
        keywords: the keywords of the rule (``{"mean": 0.0, "std": 0.02}``), as
            ``torch.nn.init`` takes them; empty where the rule has none or is a module's own.
        fallback: whether the layer's own ``reset_parameters()`` draws it (a layer type
            seeded-init does not replay), from the layer's generator.
    """

    path: str
    layer: str
    scheme: str
    rule: str
    seed: int
    seed_source: Literal["explicit", "derived"]
    declared_by: str | None
    shape: tuple[int, ...]
    dtype: torch.dtype
    tied_to: str | None = None
    device: str = "cpu"
    fan_in: int | None = None
    fan_out: int | None = None
    keywords: Mapping[str, float | int | str | None] = field(
        default_factory=lambda: MappingProxyType({})
    )
    fallback: bool = False


@dataclass(frozen=True)
class InitPlan:
    """Every tensor a reset writes, in the order of the model's ``state_dict()``.

    Attributes:
        root_seed: the root seed the derived seeds come from.
        entries: one record per tensor.
    """

    root_seed: int
    entries: tuple[ParamInit, ...]

    def __iter__(self) -> Iterator[ParamInit]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, path: str) -> ParamInit:
        """The record of the tensor at ``path``."""
        for entry in self.entries:
            if entry.path == path:
                return entry
        raise KeyError(f"no tensor {path!r} in this plan; known: {[e.path for e in self.entries]}")

    def diff(self, other: InitPlan) -> PlanDiff:
        """What changes from this plan to ``other`` (a model after an architecture change, a
        new seed): the tensors added, removed, and drawn otherwise."""
        mine = {e.path: e for e in self.entries}
        theirs = {e.path: e for e in other.entries}
        return PlanDiff(
            self.root_seed,
            other.root_seed,
            tuple(e for e in other.entries if e.path not in mine),
            tuple(e for e in self.entries if e.path not in theirs),
            tuple(
                (e, theirs[e.path])
                for e in self.entries
                if e.path in theirs and theirs[e.path] != e
            ),
        )

    def to_json(self) -> str:
        """The plan as JSON (``InitPlan.from_json`` reads it back, equal to this one)."""
        entries: list[dict[str, object]] = []
        for e in self.entries:
            record = {f.name: getattr(e, f.name) for f in fields(e)}
            record["dtype"] = str(e.dtype).removeprefix("torch.")
            record["shape"] = list(e.shape)
            record["keywords"] = dict(e.keywords)
            entries.append(record)
        return json.dumps({"format": _FORMAT, "root_seed": self.root_seed, "entries": entries})

    @classmethod
    def from_json(cls, text: str) -> InitPlan:
        """The plan ``to_json`` wrote.

        Raises:
            ValueError: ``text`` is not such a plan.
        """
        try:
            raw = json_object(text, _FORMAT, ("entries", "format", "root_seed"))
            listed = raw["entries"]
            if not isinstance(listed, list):
                raise ValueError("its entries are not a list")
            entries = [_entry(e) for e in cast("list[object]", listed)]
            root_seed = raw["root_seed"]
            if type(root_seed) is not int or not 0 <= root_seed < 2**64:
                raise ValueError(f"root_seed is {root_seed!r}, not an int in [0, 2**64)")
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise ValueError(
                f"InitPlan.from_json: not an init plan written by to_json: {exc}"
            ) from exc
        paths = {e.path for e in entries}
        if len(paths) < len(entries):
            counts = Counter(e.path for e in entries)
            twice = next(p for p, n in counts.items() if n > 1)
            raise ValueError(f"InitPlan.from_json: the plan holds {twice!r} twice")
        for e in entries:
            if e.tied_to is not None and e.tied_to not in paths:
                raise ValueError(
                    f"InitPlan.from_json: {e.path!r} is tied to {e.tied_to!r}, which the plan "
                    f"does not hold"
                )
        return cls(root_seed, tuple(entries))

    def __str__(self) -> str:
        rows = [("tensor", "shape", "rule", "seed", "declared by")]
        for e in self.entries:
            seed = f"{e.seed} ({e.seed_source})"
            rule = e.rule if e.tied_to is None else f"tied to {e.tied_to}"
            rows.append(
                (e.path, "x".join(map(str, e.shape)) or "()", rule, seed, e.declared_by or "-")
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join([f"root seed {self.root_seed}", *lines])


_FORMAT = "seeded-init/plan/v1"


def json_object(text: str, form: str, keys: tuple[str, ...]) -> dict[str, object]:
    """The JSON object ``text`` holds, whose ``format`` is ``form`` and whose keys are
    ``keys``; else ValueError saying which part is wrong."""
    data: object = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("it is not a JSON object")
    raw = cast("dict[str, object]", data)
    if raw.get("format") != form:
        raise ValueError(f"its format is not {form!r}")
    if sorted(raw) != sorted(keys):
        raise ValueError(f"it has keys {sorted(raw)}, not {', '.join(sorted(keys))}")
    return raw


def _entry(record: object) -> ParamInit:
    """One record of ``InitPlan.to_json``'s output, checked field by field."""
    if not isinstance(record, dict):
        raise ValueError(f"a record is {type(record).__name__}, not an object")
    r = cast("dict[str, object]", record)
    names = list(ParamInit.__dataclass_fields__)
    if sorted(r) != sorted(names):
        raise ValueError(f"a record has fields {sorted(r)}, not {sorted(names)}")
    where = f"record {r['path']!r}"

    def text(name: str, optional: bool = False) -> str | None:
        value = r[name]
        if optional and value is None:
            return None
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:  # a lone surrogate, which JSON allows
                raise ValueError(f"{where}: {name} is not valid Unicode") from exc
            return value
        raise ValueError(f"{where}: {name} is {value!r}, not a string")

    def count(name: str, value: object, optional: bool = False) -> int | None:
        if optional and value is None:
            return None
        if type(value) is not int or value < 0:
            raise ValueError(f"{where}: {name} is {value!r}, not a count")
        return value

    seed = count("seed", r["seed"])
    assert seed is not None
    if seed >= 2**64:
        raise ValueError(f"{where}: seed {seed} is not below 2**64")
    source = r["seed_source"]
    if source not in ("explicit", "derived"):
        raise ValueError(f"{where}: seed_source is {source!r}, not 'explicit' or 'derived'")
    dtype = getattr(torch, r["dtype"], None) if isinstance(r["dtype"], str) else None
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"{where}: dtype {r['dtype']!r} is not a torch dtype")
    shape = r["shape"]
    if not isinstance(shape, list):
        raise ValueError(f"{where}: shape is {shape!r}, not a list")
    dims = tuple(count("shape", n) or 0 for n in cast("list[object]", shape))
    device = text("device")
    assert device is not None
    try:
        torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"{where}: device {device!r} is not a torch device") from exc
    keywords = r["keywords"]
    if not isinstance(keywords, dict) or not all(
        isinstance(k, str) and (v is None or type(v) in (int, float, str))
        for k, v in cast("dict[object, object]", keywords).items()
    ):
        raise ValueError(f"{where}: keywords {keywords!r} are not names with numbers or strings")
    if type(r["fallback"]) is not bool:
        raise ValueError(f"{where}: fallback is {r['fallback']!r}, not true or false")
    return ParamInit(
        path=cast(str, text("path")),
        layer=cast(str, text("layer")),
        scheme=cast(str, text("scheme")),
        rule=cast(str, text("rule")),
        seed=seed,
        seed_source="explicit" if source == "explicit" else "derived",
        declared_by=text("declared_by", optional=True),
        shape=dims,
        dtype=dtype,
        tied_to=text("tied_to", optional=True),
        device=device,
        fan_in=count("fan_in", r["fan_in"], optional=True),
        fan_out=count("fan_out", r["fan_out"], optional=True),
        keywords=MappingProxyType(dict(cast("dict[str, float | int | str | None]", keywords))),
        fallback=bool(r["fallback"]),
    )


@dataclass(frozen=True)
class PlanDiff:
    """The difference of two init plans (``before.diff(after)``); false when there is none.

    Attributes:
        root_seed_before: the root seed before.
        root_seed_after: and after.
        added: the records of tensors only ``after`` has.
        removed: the records of tensors only ``before`` has.
        changed: (before, after) records of the tensors both have, drawn otherwise.
    """

    root_seed_before: int
    root_seed_after: int
    added: tuple[ParamInit, ...]
    removed: tuple[ParamInit, ...]
    changed: tuple[tuple[ParamInit, ParamInit], ...]

    def __bool__(self) -> bool:
        return bool(
            self.added
            or self.removed
            or self.changed
            or self.root_seed_before != self.root_seed_after
        )

    def __str__(self) -> str:
        if not self:
            return "no change"
        lines: list[str] = []
        if self.root_seed_before != self.root_seed_after:
            lines.append(f"root seed {self.root_seed_before} -> {self.root_seed_after}")
        lines += [f"+ {e.path}  {_brief(e)}" for e in self.added]
        lines += [f"- {e.path}  {_brief(e)}" for e in self.removed]
        for a, b in self.changed:
            what = [
                f"{f.name} {_show(getattr(a, f.name))} -> {_show(getattr(b, f.name))}"
                for f in fields(a)
                if getattr(a, f.name) != getattr(b, f.name)
            ]
            lines.append(f"~ {a.path}  " + "; ".join(what))
        return "\n".join(lines)


def _brief(e: ParamInit) -> str:
    shape = "x".join(map(str, e.shape)) or "()"
    return f"{shape} {e.rule} seed {e.seed} ({e.seed_source})"


def _show(value: object) -> str:
    if isinstance(value, Mapping):
        return repr(dict(cast("Mapping[str, object]", value)))
    if isinstance(value, tuple):
        return "x".join(map(str, cast("tuple[object, ...]", value))) or "()"
    return str(value)
