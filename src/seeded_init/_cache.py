"""A full reset of an unchanged model reuses the work of the last one: the plan, validated.

Building and validating a plan costs tens of microseconds per layer, as much as the random
fill of a small layer. The second and later ``reset_parameters()`` of a model whose tree has
not changed carry out the fills that the last plan found, without building it again.

Invariants, in plain words:
- A cached plan is used only while the model's key (``model_key``) is equal to the one it
  was built from. The key holds everything a plan is computed from: the tree
  (each module's identity, type, children, tensors and forward pre-hooks), each tensor's
  identity, type, dtype, device, shape, strides, offset, address and inference flag, the
  layer attributes the PyTorch defaults read (``padding_idx``...), each declaration's
  keyword functions called again, each class's init methods, the root seeds and whether
  inference mode is on. A model whose plan depends on more than that is never cached: one
  with a DTensor, a tensor subclass, a lazy or parametrized layer.
- Only plans made of built-in fills are cached (no scheme function, no module's own reset:
  those run user code, with the checks and rollback of ``_execute``), and only for the whole
  model; a meta tensor, a per-layer reset and the construction's reset go the full way.
- The cache holds no module and no tensor (those it writes, weakly): a layer removed from the
  model is freed as before. Attaching a module to the tree drops the cache.
- A cached reset makes the calls a fresh plan makes, or runs the fresh plan: under a
  TorchFunctionMode, or with a ``torch.nn.init`` function replaced, it builds one.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from ._defaults import default_handler, plan_attributes
from ._draw import PLAIN, Draw, Generators, draw_into, drawn_as
from ._execute import spread
from ._fills import direct, unpatched
from ._layer import table_of
from ._links import SubtreeReset
from ._schemes import Fill
from ._spec import InitSpec
from ._torch import torch_function_mode
from ._units import Plan, module_reset

__all__ = ["Key", "cached", "forget", "forget_in", "lean", "model_key", "remember"]

Key = tuple[object, ...]

_SLOT = "_seeded_plan_cache"  # in the root module's __dict__


class _Uncacheable(Exception):
    """The model holds something the key cannot stand for."""


def _tensor(t: torch.Tensor | None) -> object:
    if t is None:
        return None
    if type(t) not in PLAIN:  # a DTensor, a lazy layer's, another subclass
        raise _Uncacheable
    return (
        id(t),
        type(t),
        t.dtype,
        t.device,
        t.shape,
        t.stride(),
        t.storage_offset(),
        t.data_ptr(),
        t.is_inference(),
    )


_keyword_specs: weakref.WeakKeyDictionary[type, tuple[InitSpec, ...]] = weakref.WeakKeyDictionary()


def _specs_with_functions(cls: type) -> tuple[InitSpec, ...]:
    """The declarations (and their bias= and params= parts) of ``cls`` with keyword
    functions, which a plan calls on the module."""
    found = _keyword_specs.get(cls)
    if found is None:
        out: list[InitSpec] = []
        stack = [d.spec for d in table_of(cls).values()]
        while stack:
            spec = stack.pop()
            if any(callable(v) for v in spec.kwargs.values()):
                out.append(spec)
            stack += [*spec.params.values(), *([spec.bias] if spec.bias is not None else [])]
        found = _keyword_specs[cls] = tuple(out)
    return found


def _keywords(m: nn.Module, specs: tuple[InitSpec, ...]) -> tuple[object, ...]:
    """What the keyword functions of ``specs`` return for ``m`` now."""
    values: list[object] = []
    for spec in specs:
        for v in spec.kwargs.values():
            if callable(v):
                call = cast("Callable[[object], object]", v)  # typed for the user's class
                try:
                    got = call(m)
                except Exception as exc:  # the full build reports it
                    raise _Uncacheable from exc
                values.append(_plain(got))
    return tuple(values)


def _plain(v: object) -> object:
    """A plain value as a key compares it: with its type (``True`` is not ``1``), a float by
    its bits (``-0.0`` is not ``0.0``)."""
    if v is None or type(v) is str:
        return v
    if isinstance(v, float):
        return (type(v), float(v).hex())
    if isinstance(v, int):
        return (type(v), int(v))
    raise _Uncacheable


def _scalars(d: dict[str, Any], names: tuple[str, ...]) -> tuple[object, ...]:
    """The attributes ``names`` of a module (its ``__dict__``), which must be plain values."""
    return tuple(_plain(d.get(a)) for a in names)


def _installed_reset(d: dict[str, Any]) -> object:
    """The ``reset_parameters`` on a module instance: none, or the one a plan installs."""
    reset = d.get("reset_parameters")
    if reset is not None and not isinstance(reset, SubtreeReset):
        raise _Uncacheable  # one of the user's, which a fresh plan replaces
    return reset


def model_key(
    root: nn.Module, root_seed: int, seeds: dict[str, int], seeded: type[nn.Module]
) -> Key | None:
    """What a plan of ``root`` for these seeds is computed from; None if it cannot be said."""
    from torch.nn.utils.parametrize import is_parametrized

    entries: list[object] = [
        root_seed,
        tuple(sorted(seeds.items())),
        torch.is_inference_mode_enabled(),
    ]
    first_of_type: dict[type, nn.Module] = {}
    attributes: dict[type, tuple[str, ...]] = {}
    seen: set[int] = set()
    stack: list[nn.Module] = [root]
    try:
        while stack:
            m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            cls = type(m)
            reads = attributes.get(cls)
            if reads is None:
                first_of_type[cls] = m
                reads = attributes[cls] = plan_attributes(cls)
            d = m.__dict__
            kids: dict[str, nn.Module | None] = d["_modules"]
            ps: dict[str, torch.Tensor | None] = d["_parameters"]
            bs: dict[str, torch.Tensor | None] = d["_buffers"]
            hooks: dict[int, object] = d["_forward_pre_hooks"]
            extra = _scalars(d, reads) if reads else ()
            if isinstance(m, seeded):
                extra += (d.get("_seeded_root_seed"), _keywords(m, _specs_with_functions(cls)))
            entries.append(
                (
                    id(m),
                    cls,
                    tuple(kids),
                    tuple(map(id, kids.values())),
                    tuple(ps),
                    tuple(map(_tensor, ps.values())),
                    tuple(bs),
                    tuple(map(_tensor, bs.values())),
                    tuple(hooks),
                    extra,
                    # what a fresh plan re-installs: the layer's link to its model, its reset
                    # (both hold the module weakly)
                    d.get("_seeded_link"),
                    _installed_reset(d),
                )
            )
            stack.extend(c for c in reversed(kids.values()) if c is not None)
        for cls, m in first_of_type.items():
            if is_parametrized(m):
                raise _Uncacheable
            after = seeded if isinstance(m, seeded) else None
            entries.append((cls, default_handler(m), module_reset(m), module_reset(m, after)))
    except (_Uncacheable, KeyError, RuntimeError):  # e.g. a tensor without storage
        return None  # the full way, which says what is wrong if anything is
    return tuple(entries)


@dataclass(frozen=True, slots=True)
class _Write:
    """One fill of a tensor, looked up by name in its module's parameters (or buffers)."""

    tensor: weakref.ref[torch.Tensor]  # the key names it by id; a dead one is a miss
    fill: Fill
    fast: Fill  # the same draw as the tensor method (see _fills.direct)
    draws: bool
    zero_row: int | None  # an Embedding padding row to zero after the fill
    device: torch.device
    dtype: torch.dtype
    contiguous: bool

    def fast_under(self, how: Draw) -> bool:
        """Whether ``draw_into`` would fill the tensor itself (not a scratch copy)."""
        device, dtype = drawn_as(self.device, self.dtype, how, self.draws)
        return self.contiguous and device == self.device and dtype == self.dtype


@dataclass(frozen=True, slots=True)
class _Unit:
    seed: int
    cost: int  # elements filled
    writes: tuple[_Write, ...]


_Job = tuple[int, Callable[[], None]]


class Entry:
    __slots__ = ("jobs", "key", "units")

    def __init__(self, key: Key | None, units: tuple[_Unit, ...]) -> None:
        self.key = key
        self.units = units
        self.jobs: dict[Draw, list[_Job]] = {}

    def jobs_for(self, how: Draw) -> list[_Job]:
        jobs = self.jobs.get(how)
        if jobs is None:
            jobs = self.jobs[how] = [(u.cost, _job(u, how)) for u in self.units]
        return jobs

    def run(self, how: Draw, count: int) -> None:
        """Carry out the fills, drawn as ``how`` says, on ``count`` threads."""
        with torch.no_grad():
            spread(self.jobs_for(how), count)


def lean(plan: Plan, key: Key | None) -> Entry | None:
    """``plan`` compiled to run its fills directly, with the key ``key`` of the model
    it was built for; None unless it is made of built-in fills of tensors with storage, and
    nothing would see the calls differ (a function mode, a patched ``torch.nn.init``)."""
    if torch_function_mode() or not unpatched():
        return None
    units: list[_Unit] = []
    for unit in plan.units:
        if unit.fallible:
            return None
        writes: list[_Write] = []
        for step in unit.steps:
            if step.fallback is not None or step.user:
                return None
            t = step.tensor()
            if t is None or step.fill is None or not t.numel():
                continue
            if t.is_meta or type(t) not in PLAIN:
                return None
            fast = direct(step.fill, t)
            writes.append(
                _Write(
                    weakref.ref(t),
                    step.fill,
                    fast,
                    step.draws,
                    step.zero_row,
                    t.device,
                    t.dtype,
                    t.is_contiguous(),
                )
            )
        if writes:
            cost = sum(t.numel() for w in writes for t in [w.tensor()] if t is not None)
            units.append(_Unit(unit.seed, cost, tuple(writes)))
    return Entry(key, tuple(units))


def remember(root: nn.Module, entry: Entry) -> None:
    """Keep ``entry`` (just run on ``root``) for its next full reset."""
    root.__dict__[_SLOT] = entry


def forget(root: nn.Module) -> None:
    """Drop ``root``'s cached plan (its tree changed)."""
    forget_in(root.__dict__)


def forget_in(state: dict[str, object]) -> None:
    """Drop the cached plan from a module's ``__dict__`` (or a copy of it, to pickle)."""
    state.pop(_SLOT, None)


def cached(root: nn.Module, key: Key | None) -> Entry | None:
    """``root``'s cached plan if it was built from ``key`` and can run lean now, else None."""
    entry = root.__dict__.get(_SLOT)
    if key is None or not isinstance(entry, Entry) or entry.key != key:
        return None
    if torch_function_mode() or not unpatched():
        return None  # a mode, or a patched torch.nn.init, sees the calls a fresh plan makes
    if any(w.tensor() is None for u in entry.units for w in u.writes):
        return None  # a tensor was freed, and another took its id
    return entry


def _job(unit: _Unit, how: Draw) -> Callable[[], None]:
    """The fills of ``unit`` from its generator, as ``_execute`` makes them (under no_grad)."""
    writes = [(w.tensor, w.fast if w.fast_under(how) else None, w) for w in unit.writes]
    seed = unit.seed

    def run() -> None:
        gens = Generators(seed)
        for ref, fast, w in writes:
            t = ref()
            assert t is not None  # checked by cached()
            if fast is not None:
                fast(t, gens.on(w.device))
                if w.zero_row is not None:
                    t[w.zero_row].zero_()
            else:
                draw_into(t, w.fill, gens, how, w.draws, w.zero_row)

    return run
