"""Rules for any ``nn.Module``: seeded init for model code you cannot edit.

``InitRules({nn.Linear: "xavier_uniform", "blocks.*.attn.qkv": Normal(std=0.02)},
seeds={"fc1": 77})`` says, about a model it never saw, which layers get which scheme and
seed; ``rules.reset_parameters(model)`` then resets it with every guarantee of
``SeededModule.reset_parameters()``. Matching, in plain words:

- a rule names a layer (or a parameter) by its exact dotted path as ``named_modules()`` (or
  ``named_parameters()``) gives it, by a glob (``*`` one path part or part of one, ``?`` one
  character, ``**`` any number of parts), or a layer by its type (``isinstance``);
- the rule of a layer is its exact rule, else its glob rule, else the rule of the nearest of
  its classes in its MRO; two glob rules with different specs on one layer conflict;
- a ruled layer draws its whole subtree from its generator, except the layers and parameters
  inside it that are ruled themselves: the deepest rule wins, as a ``params=`` part does;
- ``seeds={path: s}`` gives the layer at ``path`` the explicit seed ``s``, with its rule's
  scheme (PyTorch's default where no rule names it);
- a rule (or a seed) that matches nothing is an error, and so is a tensor claimed twice.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, TypeAlias, TypeVar

import torch
from torch import nn
from torch.nn.utils.parametrize import ParametrizationList

from ._draw import Draw, DrawOn, check_draw, overridden
from ._errors import DeclarationError, PlanError
from ._execute import check_threads
from ._progress import check_progress, showing
from ._records import InitPlan
from ._seeds import DEFAULT_ROOT_SEED, check_seed
from ._spec import InitSpec, PartInit, part_spec
from ._torch import children, params
from ._units import join, uninitialized

__all__ = ["InitRules", "Rule", "RuleTarget", "RuleValue", "Ruled"]

#: What a rule names: a dotted path or glob (``"blocks.*.attn.qkv"``), or a layer type.
RuleTarget: TypeAlias = "str | type[nn.Module]"
#: What a rule gives: a scheme name, a scheme such as ``Normal(std=0.02)``, a function
#: ``(tensor, generator) -> None``, ``seeded_init(scheme=..., seed=..., bias=..., params=...)``,
#: or None: no rule (PyTorch's default, and a tied tensor follows its other side).
RuleValue: TypeAlias = "PartInit | None"


@dataclass(frozen=True)
class Rule:
    """One rule of an :class:`InitRules`.

    Attributes:
        target: the path, glob or layer type it names.
        spec: how what it names is initialized; None for "no rule" (PyTorch's default).
        kind: ``"path"`` (exact), ``"glob"`` or ``"type"``.
    """

    target: str | type[nn.Module]
    spec: InitSpec | None
    kind: Literal["path", "glob", "type"]

    @property
    def label(self) -> str:
        """How records and messages name the rule: ``rule 'fc1'``, ``rule Linear``."""
        if isinstance(self.target, str):
            return f"rule {self.target!r}"
        return f"rule {self.target.__qualname__}"


_K = TypeVar("_K", int, tuple[int, str])


@dataclass(frozen=True)
class _Claim:
    path: str
    spec: InitSpec | None
    label: str


@dataclass(frozen=True)
class Ruled:
    """Rules resolved on one model: what the builder declares beside SeededModules' own.

    ``modules`` by ``id(module)`` and ``params`` by ``(id(module), attr)``: the path, the spec
    (None: no rule) and the label of the rule that claims them. ``owner`` is what number
    keywords given as functions are called with (the model).
    """

    modules: Mapping[int, _Claim]
    params: Mapping[tuple[int, str], _Claim]
    owner: nn.Module

    def param_names(self, m: nn.Module) -> frozenset[str]:
        """The parameters of ``m`` itself that a rule claims (or leaves to the default)."""
        return frozenset(n for n in params(m) if (id(m), n) in self.params)


class InitRules:
    """Seeded init for any ``nn.Module``, by path, glob and layer type.

    Args:
        rules: what each layer gets, keyed by an exact dotted path (as ``named_modules()``
            or ``named_parameters()`` names it), a glob (``"blocks.*.attn.qkv"``, ``"**.bias"``)
            or a layer type (``nn.Linear``). A value is a scheme name (``"xavier_uniform"``),
            a scheme (``Normal(std=0.02)``), a function ``(tensor, generator) -> None``,
            ``seeded_init(scheme=..., seed=..., bias=..., params=..., **keywords)`` for a seed,
            a bias rule or per-part rules, or None to leave a layer to PyTorch's default
            (also to leave a tied weight to its other side). A number keyword given as a
            function is called with the model.
        seeds: explicit seeds by exact layer path (the seed dictionary of a
            ``named_modules()`` loop): the layer keeps its rule's scheme, or PyTorch's default.
        seed: the root seed that every other layer's seed is derived from, with its path.
        draw_on: ``"cpu"`` (default, the same values on every device) or ``"device"``.
        draw_dtype: ``torch.float32`` to draw in float32 and cast; None draws in each
            parameter's dtype.

    Raises:
        DeclarationError: a key or value is not a rule (TypeError).
        SeedError: a seed is not an int in ``[0, 2**64)``.
        PlanError: ``draw_on`` or ``draw_dtype`` is not one of the choices.
    """

    __slots__ = ("_draw", "_patterns", "root_seed", "rules", "seeds")

    rules: tuple[Rule, ...]
    seeds: Mapping[str, int]
    root_seed: int

    def __init__(
        self,
        rules: Mapping[RuleTarget, RuleValue] | None = None,
        *,
        seeds: Mapping[str, int] | None = None,
        seed: int = DEFAULT_ROOT_SEED,
        draw_on: DrawOn = "cpu",
        draw_dtype: torch.dtype | None = None,
    ) -> None:
        made: list[Rule] = []
        patterns: dict[str, re.Pattern[str]] = {}
        if rules is not None and not isinstance(rules, Mapping):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise DeclarationError(
                f"InitRules(rules=...) takes a mapping such as {{nn.Linear: 'xavier_uniform', "
                f"'blocks.*.qkv': Normal(std=0.02)}}, not {type(rules).__name__}"
            )
        for target, value in (rules or {}).items():
            kind = _kind(target)
            where = f"InitRules: rule {_name(target)}"
            spec = None if value is None else part_spec(value, where, whole=True)
            if isinstance(target, str) and kind == "glob":
                patterns[target] = _compile(target)
            made.append(Rule(target, spec, kind))
        if seeds is not None and not isinstance(seeds, Mapping):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise DeclarationError(
                f"InitRules(seeds=...) takes a mapping of layer paths to seeds such as "
                f"{{'fc1': 77}}, not {type(seeds).__name__}"
            )
        checked: dict[str, int] = {}
        for path, given in (seeds or {}).items():
            if not isinstance(path, str) or not path or _kind(path) != "path":  # pyright: ignore[reportUnnecessaryIsInstance]
                raise DeclarationError(
                    f"InitRules: seeds= keys are exact layer paths as named_modules() gives "
                    f"them (e.g. 'conv_layers.0'), not {path!r}; give a glob or type a rule "
                    f"with seeded_init(scheme=..., seed=...)"
                )
            checked[path] = check_seed(given, f"InitRules: seeds[{path!r}]")
        self.rules = tuple(made)
        self.seeds = MappingProxyType(checked)
        self.root_seed = check_seed(seed, "InitRules(seed=...)")
        self._patterns = patterns
        self._draw = check_draw(draw_on, draw_dtype, "InitRules(...): ")

    def __setattr__(self, name: str, value: object) -> None:
        if hasattr(self, "_draw"):
            raise AttributeError(f"InitRules are frozen; make new ones to change {name}")
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        inner = ", ".join(
            f"{_name(r.target)}: {'None' if r.spec is None else r.spec.describe()}"
            for r in self.rules
        )
        seeds = f", seeds={dict(self.seeds)}" if self.seeds else ""
        return f"InitRules({{{inner}}}{seeds}, seed={self.root_seed})"

    @property
    def draw(self) -> Draw:
        """How these rules draw (``draw_on=``, ``draw_dtype=``)."""
        return self._draw

    def reset_parameters(
        self,
        model: nn.Module,
        seed: int | None = None,
        *,
        draw_on: DrawOn | None = None,
        draw_dtype: torch.dtype | None = None,
        threads: int | None = None,
        progress: bool | None = None,
    ) -> None:
        """Initialize every parameter of ``model`` as these rules say, bitwise the same on
        every call; the global RNG is left untouched, and an error changes nothing.

        Args:
            model: any ``nn.Module`` (a SeededModule has its own ``reset_parameters()``).
            seed: the root seed for this call instead of the rules'.
            draw_on: for this call (see :class:`InitRules`).
            draw_dtype: for this call.
            threads: how many threads fill layers at once (the values are the same for
                every count); None: ``$SEEDED_INIT_THREADS``, else ``torch.get_num_threads()``.
            progress: True shows a progress bar on stderr, False never; None (default) on
                a terminal for a reset over a second, unless ``$SEEDED_INIT_PROGRESS`` is 0.

        Raises:
            PlanError: a rule matches nothing, two rules claim one tensor, or the plan cannot
                be carried out (nothing was changed).
        """
        from ._module import run_ruled

        where = "InitRules.reset_parameters"
        root_seed = self._seed(seed, where)
        how = overridden(self._draw, draw_on, draw_dtype, f"{where}: ")
        check_threads(threads, f"{where}: ")
        check_progress(progress, f"{where}: ")
        with showing(progress):
            run_ruled(_checked_model(model, where), self, root_seed, how, threads)

    def init_plan(self, model: nn.Module, seed: int | None = None) -> InitPlan:
        """What ``reset_parameters(model, seed)`` would write, without writing anything
        (also for a model built on the meta device)."""
        from ._module import plan_ruled

        where = "InitRules.init_plan"
        return plan_ruled(_checked_model(model, where), self, self._seed(seed, where))

    def _seed(self, seed: int | None, where: str) -> int:
        return self.root_seed if seed is None else check_seed(seed, f"{where}: seed=")

    # -- matching ---------------------------------------------------------------------------
    def resolve(self, model: nn.Module) -> Ruled:
        """Which rule claims each layer and parameter of ``model``; raise if a rule or seed
        matches nothing, or two rules conflict."""
        from ._module import SeededModule

        layers = list(_walk(model, SeededModule))
        modules: dict[int, _Claim] = {}
        tensors: dict[tuple[int, str], _Claim] = {}
        used: set[int] = set()
        inside_seeded: set[int] = set()
        for path, m, seeded in layers:
            rule = self._rule_for(path, m, seeded, used, inside_seeded)
            if rule is not None:
                _claim(modules, id(m), _Claim(path, rule.spec, rule.label))
            if seeded:
                continue
            for name, p in params(m).items():
                if p is None:
                    continue
                if uninitialized(p):
                    raise PlanError(
                        f"{join(path, name)!r} ({type(m).__name__}) is a lazy parameter, which "
                        f"its first forward creates and initializes from the global RNG, "
                        f"where rules cannot reach; run one forward pass first (model(example)), "
                        f"then rules.reset_parameters(model)"
                    )
                full = join(path, name)
                found = self._path_rule(full, used)
                if found is not None:
                    _claim(tensors, (id(m), name), _Claim(full, found.spec, found.label))
        for i, rule in enumerate(self.rules):
            if i not in used:
                raise PlanError(_no_match(rule, model, layers, i in inside_seeded))
        self._apply_seeds(model, layers, modules)
        _check_parts(modules, tensors)
        return Ruled(MappingProxyType(modules), MappingProxyType(tensors), model)

    def _rule_for(
        self,
        path: str,
        m: nn.Module,
        seeded: bool,
        used: set[int],
        inside_seeded: set[int],
    ) -> Rule | None:
        """The rule of the layer ``m`` at ``path``: exact, else glob, else nearest type."""
        found = self._path_rule(path, used if not seeded else set())
        mro = type(m).__mro__
        typed = [
            (mro.index(r.target), i, r)
            for i, r in enumerate(self.rules)
            if isinstance(r.target, type) and isinstance(m, r.target)
        ]
        if not seeded:  # a type rule that a nearer one (or a path rule) shadows still matched
            used.update(i for _, i, _ in typed)
        if found is None and typed:
            found = min(typed, key=lambda t: t[0])[2]
        if found is None:
            return None
        if seeded:  # a SeededModule, or a layer inside one: its declarations decide
            inside_seeded.update(i for i, r in enumerate(self.rules) if r is found)
            return None
        return found

    def _path_rule(self, path: str, used: set[int]) -> Rule | None:
        exact = [(i, r) for i, r in enumerate(self.rules) if r.kind == "path" and r.target == path]
        if exact:
            used.add(exact[0][0])
            return exact[0][1]
        globs = [
            (i, r)
            for i, r in enumerate(self.rules)
            if isinstance(r.target, str)
            and r.kind == "glob"
            and self._patterns[r.target].fullmatch(path)
        ]
        used.update(i for i, _ in globs)
        if not globs:
            return None
        first = globs[0][1]
        for _, other in globs[1:]:
            if other.spec != first.spec:
                raise PlanError(
                    f"{path!r} is claimed by two rules that say different things: "
                    f"{first.label} ({_what(first.spec)}) and {other.label} "
                    f"({_what(other.spec)}); give {path!r} an exact rule, or narrow one glob"
                )
        return first

    def _apply_seeds(
        self,
        model: nn.Module,
        layers: list[tuple[str, nn.Module, bool]],
        modules: dict[int, _Claim],
    ) -> None:
        """Give the layers of ``seeds=`` their seeds (parameters take theirs from a rule:
        seeded_init(..., seed=...))."""
        by_path = {path: (m, seeded) for path, m, seeded in layers}
        for path, seed in self.seeds.items():
            where = f"InitRules: seeds[{path!r}]"
            if path not in by_path:
                owner, _, attr = path.rpartition(".")
                held = by_path.get(owner)
                if held is not None and params(held[0]).get(attr) is not None:
                    raise PlanError(
                        f"{where} names a parameter; seeds= gives layers their seed. Give it "
                        f"to its layer ({{{owner!r}: {seed}}}) or give the parameter a rule "
                        f"with its own seed: {{{path!r}: seeded_init(scheme=..., seed={seed})}}"
                    )
                raise PlanError(
                    f"{where} names no layer of {type(model).__name__}{_near(path, by_path)}"
                )
            m, seeded = by_path[path]
            if not any(True for _ in m.parameters()):
                raise PlanError(
                    f"{where} names {path!r} ({type(m).__name__}), which holds no parameters; "
                    f"give the seed to a layer that has some"
                )
            if seeded:
                raise PlanError(
                    f"{where} names {path!r}, which is (part of) a SeededModule: it takes its "
                    f"seeds from its own declarations (or its root seed: seed=...)"
                )
            claim = modules.get(id(m))
            if claim is None or claim.spec is None:
                above = _ruled_above(path, by_path, modules)
                if above is not None:
                    raise PlanError(
                        f"{where}: {path!r} is part of {above.path!r}, which {above.label} "
                        f"draws from one generator; give the seed to {above.path!r}, or give "
                        f"{path!r} a rule of its own"
                    )
                label = claim.label if claim is not None else "seeds="
                modules[id(m)] = _Claim(path, InitSpec("default", seed=seed), label)
            elif claim.spec.seed is not None and claim.spec.seed != seed:
                given = "" if claim.path == path else f" (as {claim.path!r}, the same layer)"
                raise PlanError(
                    f"{where} = {seed}, but {claim.label} gives {path!r}{given} "
                    f"seed={claim.spec.seed}; keep one of them"
                )
            else:
                modules[id(m)] = _Claim(
                    claim.path, part_spec(claim.spec, where, seed=seed), claim.label
                )


def _claim(table: dict[_K, _Claim], key: _K, claim: _Claim) -> None:
    """Record ``claim``; a module (or parameter) held under two paths may not be claimed
    by two rules that say different things."""
    old = table.setdefault(key, claim)
    if old is not claim and old.spec != claim.spec:
        what = "layer" if isinstance(key, int) else "tensor"
        raise PlanError(
            f"{old.path!r} and {claim.path!r} are one {what} held under two names, claimed "
            f"by two rules: {old.label} ({_what(old.spec)}) and {claim.label} "
            f"({_what(claim.spec)}); give both names the same rule, or rule one name only"
        )


def _checked_model(model: object, where: str) -> nn.Module:
    from ._module import SeededModule

    if isinstance(model, SeededModule):
        raise PlanError(
            f"{where}: {type(model).__qualname__} is a SeededModule, which initializes from "
            f"its own declarations; call model.reset_parameters() / model.init_plan()"
        )
    if not isinstance(model, nn.Module):
        raise PlanError(f"{where} takes an nn.Module, not {type(model).__name__}")
    return model


def _walk(model: nn.Module, seeded_type: type) -> Iterator[tuple[str, nn.Module, bool]]:
    """Every (path, module, inside a SeededModule) of ``model``, every path of a module
    registered twice, without parametrize's own modules."""
    stack: list[tuple[str, nn.Module, bool]] = [("", model, False)]
    while stack:
        path, m, seeded = stack.pop()
        seeded = seeded or isinstance(m, seeded_type)
        yield path, m, seeded
        below = [
            (join(path, name), child, seeded)
            for name, child in children(m).items()
            if child is not None
            and not isinstance(child, ParametrizationList)
            and name != "parametrizations"
        ]
        stack.extend(reversed(below))


def _kind(target: object) -> Literal["path", "glob", "type"]:
    if isinstance(target, type):
        if not issubclass(target, nn.Module):
            raise DeclarationError(
                f"InitRules: rule {target.__qualname__} is a class but not an nn.Module "
                f"subclass; a type rule names a layer type, e.g. nn.Linear"
            )
        return "type"
    if not isinstance(target, str):
        raise DeclarationError(
            f"InitRules: rule key {target!r} ({type(target).__name__}) is neither a dotted "
            f"path such as 'blocks.0.attn' (or a glob 'blocks.*.attn') nor a layer type such "
            f"as nn.Linear"
        )
    if not target or any(not part for part in target.split(".")):
        raise DeclarationError(
            f"InitRules: rule key {target!r} is not a dotted path: write names as "
            f"named_modules() gives them, e.g. 'blocks.0.attn' (a type rule names the model's "
            f"own class)"
        )
    return "glob" if "*" in target or "?" in target else "path"


def _name(target: object) -> str:
    return target.__qualname__ if isinstance(target, type) else repr(target)


def _compile(glob: str) -> re.Pattern[str]:
    """A glob over dotted paths: ``*`` within one part, ``?`` one character, ``**`` any
    number of whole parts."""
    parts = glob.split(".")
    rx = ""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            rx += ".*" if last else r"(?:[^.]+\.)*"
            continue
        rx += "".join("[^.]*" if c == "*" else "[^.]" if c == "?" else re.escape(c) for c in part)
        rx += "" if last else r"\."
    return re.compile(rx)


def _what(spec: InitSpec | None) -> str:
    return "no rule" if spec is None else spec.describe()


def _near(path: str, known: Mapping[str, object]) -> str:
    close = difflib.get_close_matches(path, [p for p in known if p], n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _no_match(
    rule: Rule, model: nn.Module, layers: list[tuple[str, nn.Module, bool]], seeded: bool
) -> str:
    kind = type(model).__name__
    if seeded:
        return (
            f"{rule.label} matches only layers of SeededModules in {kind}, which initialize "
            f"from their own declarations; declare it there, or drop the rule"
        )
    if isinstance(rule.target, type):
        types = sorted({type(m).__name__ for _, m, s in layers if not s})
        return (
            f"{rule.label} matches no layer of {kind} (no layer is an instance of "
            f"{rule.target.__qualname__}); its layer types: {types}"
        )
    names = {p: None for p, _, s in layers if not s}
    names.update({join(p, n): None for p, m, s in layers if not s for n in params(m)})
    hint = _near(rule.target, names) if rule.kind == "path" else ""
    sample = [p for p in names if p][:8]
    return (
        f"{rule.label} matches no layer or parameter of {kind}{hint}; paths are as "
        f"named_modules() gives them, e.g. {sample}"
    )


def _ruled_above(
    path: str, by_path: Mapping[str, tuple[nn.Module, bool]], modules: Mapping[int, _Claim]
) -> _Claim | None:
    while path:
        path = path.rpartition(".")[0]
        held = by_path.get(path)
        if held is not None:
            claim = modules.get(id(held[0]))
            if claim is not None and claim.spec is not None:
                return claim
    return None


def _check_parts(
    modules: Mapping[int, _Claim],
    tensors: Mapping[tuple[int, str], _Claim],
) -> None:
    """A ``params=`` part of one rule that another rule also claims is a conflict."""
    claimed = [*modules.values(), *tensors.values()]
    for outer in modules.values():
        if outer.spec is None:
            continue
        for key in outer.spec.params:
            part = join(outer.path, key)
            for inner in claimed:
                if inner is outer:
                    continue
                if (
                    inner.path == part
                    or inner.path.startswith(part + ".")
                    or (
                        part.startswith(inner.path + ".")
                        and inner.path.startswith(outer.path + ".")
                    )
                ):
                    raise PlanError(
                        f"{part!r} is claimed by two rules: {outer.label} (params={{{key!r}: "
                        f"...}} at {outer.path!r}) and {inner.label} (at {inner.path!r}); "
                        f"keep one of them"
                    )
