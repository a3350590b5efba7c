"""Traversing a module tree into units: declared layers by their declarations, undeclared
layers by their PyTorch default, nested SeededModules by their own declarations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, cast

import torch
from torch import nn
from torch.nn.utils.spectral_norm import SpectralNorm
from torch.nn.utils.weight_norm import WeightNorm

from ._defaults import default_handler
from ._errors import DeclarationError, PlanError
from ._layer import table_of
from ._schemes import (
    SCHEMES,
    make_fill,
    range_problem,
    resolve_kwargs,
    rule_text,
    shape_problem,
)
from ._seeds import derive_seed
from ._spec import InitSpec
from ._steps import Step, is_bias_name
from ._torch import (
    NormBase,
    buffers,
    children,
    forward_pre_hooks,
    named_modules,
    params,
    pruned_names,
)
from ._units import Plan, Unit, inside, join, module_reset, uninitialized

if TYPE_CHECKING:
    from ._module import SeededModule
    from ._rules import Ruled

__all__ = ["Builder"]


class Builder:
    def __init__(
        self,
        root: nn.Module,
        root_seed: int,
        seeds: dict[str, int] | None = None,
        ruled: Ruled | None = None,
    ) -> None:
        from ._module import SeededModule

        self.seeded_type = SeededModule
        # Rules for a model that is not a SeededModule (see _rules): the layers and parameters
        # they claim are declared as a SeededModule's are; number keywords get the model.
        self.ruled = ruled
        self.holders: dict[int, bool] = {}
        self.plan = Plan(root, root_seed, [])
        # Root seeds by path: the root's, and those of nested SeededModules that were given one
        # (a per-call seed in ``seeds`` overrides a module's own).
        self.seeds = self.plan.seeds
        self.seeds[""] = root_seed
        self.call_seeds = seeds or {}
        self.seen: set[int] = set()
        self.visit(root, "")

    # -- traversal ---------------------------------------------------------------------------
    def visit(self, m: nn.Module, path: str) -> None:
        if id(m) in self.seen:
            return
        self.seen.add(id(m))
        if isinstance(m, self.seeded_type):
            self.visit_seeded(m, path)
            return
        self.rule_params(m, path)
        claim = None if self.ruled is None else self.ruled.modules.get(id(m))
        if self.ruled is not None and claim is not None and claim.spec is not None:
            self.declared_unit(self.ruled.owner, m, path, claim.spec, claim.label)
        elif default_handler(m) is None and module_reset(m) is not None:
            self.third_party_unit(m, path)
        else:
            claimed = self.plain_unit(m, path, declared=self.ruled_names(m))
            for name, child in children(m).items():
                if child is not None and (name not in claimed or self.holds_rules(child)):
                    self.visit(child, join(path, name))

    # -- rules ---------------------------------------------------------------------------------
    def apart(self, m: nn.Module) -> bool:
        """Whether ``m`` is drawn apart from the unit above it: a nested SeededModule, or a
        layer a rule claims (the deepest rule wins)."""
        return isinstance(m, self.seeded_type) or (
            self.ruled is not None and id(m) in self.ruled.modules
        )

    def ruled_names(self, m: nn.Module) -> frozenset[str]:
        """The parameters of ``m`` itself that rules claim: drawn apart from ``m``'s unit."""
        return frozenset() if self.ruled is None else self.ruled.param_names(m)

    def holds_rules(self, m: nn.Module) -> bool:
        """Whether a rule claims ``m``, or something below it."""
        if self.ruled is None:
            return False
        known = self.holders.get(id(m))
        if known is None:
            known = (
                id(m) in self.ruled.modules
                or bool(self.ruled.param_names(m))
                or any(self.holds_rules(c) for c in children(m).values() if c is not None)
            )
            self.holders[id(m)] = known
        return known

    def rule_params(self, m: nn.Module, path: str) -> None:
        """A unit for each parameter of ``m`` that a rule claims by its path."""
        if self.ruled is None:
            return
        for name in self.ruled_names(m):
            claim = self.ruled.params[(id(m), name)]
            if claim.spec is None:
                continue  # "no rule": the layer's default unit draws it
            if claim.spec.scheme == "default":
                raise PlanError(
                    f"{claim.label} gives the parameter {claim.path!r} scheme 'default', which "
                    f'applies to layers; give the parameter a scheme (e.g. "normal"), or '
                    f"give the rule to its layer {path or type(m).__name__!r}"
                )
            self.declared_param(self.ruled.owner, name, claim.path, claim.spec, claim.label, m)

    def third_party_unit(self, m: nn.Module, path: str) -> None:
        """A layer type seeded-init does not know, with its own reset_parameters(): as in its
        constructor, its children draw first, then its reset runs (and may overwrite them),
        all from one generator seeded by its path."""
        self.visit_nested(m, path)
        steps = self.subtree_default(m, path, top=True)
        if steps:
            seed = self.derive(path)
            self.add_unit(Unit(path, seed, False, False, None, "default", steps, _fallible(steps)))

    def derive(self, path: str) -> int:
        """The derived seed of ``path``: from the nearest enclosing root seed and the path
        relative to the module that holds it."""
        base = max((p for p in self.seeds if inside(path, p)), key=len)
        return derive_seed(self.seeds[base], path[len(base) :].lstrip("."))

    def visit_seeded(self, m: SeededModule, path: str) -> None:
        if path:
            pinned = self.call_seeds.get(path, m.__dict__.get("_seeded_root_seed"))
            if pinned is not None:
                self.seeds[path] = pinned
        table = table_of(type(m))
        for name, decl in table.items():
            lp = join(path, name)
            where = f"{decl.owner.__qualname__ if decl.owner else '?'}.{name}"
            if name in children(m):
                target: nn.Module | torch.Tensor | None = children(m)[name]
            elif name in params(m):
                target = params(m)[name]
            else:
                raise PlanError(
                    f"{where} (path {lp!r}) is declared but the model has no such layer; it was "
                    f"deleted after construction. Assign it again or drop the declaration"
                )
            if target is None:
                continue
            if isinstance(target, self.seeded_type):
                self.check_nested_spec(decl.spec, where)
                self.visit(target, lp)
            elif isinstance(target, nn.Module):
                self.seen.add(id(target))
                self.declared_unit(m, target, lp, decl.spec, where)
            else:
                self.declared_param(m, name, lp, decl.spec, where)
        self.plain_unit(m, path, declared=frozenset(table))
        for name, child in children(m).items():
            if child is not None and name not in table:
                self.visit(child, join(path, name))

    def check_nested_spec(self, spec: InitSpec, where: str) -> None:
        if spec.scheme != "default" or spec.seed is not None or spec.bias or spec.params:
            raise PlanError(
                f"{where} holds a SeededModule, which initializes itself from its own "
                f"declarations; declare it as @seeded_init() (scheme 'default', no seed, bias or "
                f"params), and set schemes inside its class"
            )

    # -- undeclared layers ---------------------------------------------------------------------
    def plain_unit(
        self, m: nn.Module, path: str, declared: frozenset[str] = frozenset()
    ) -> frozenset[str]:
        """A unit for ``m``'s own tensors by its PyTorch default; returns the children it covers."""
        steps, claimed = self.default_steps(m, path, skip=declared)
        if steps:
            self.add_unit(
                Unit(
                    path,
                    self.derive(path),
                    False,
                    False,
                    None,
                    "default",
                    steps,
                    _fallible(steps),
                )
            )
        return claimed

    def default_steps(
        self,
        m: nn.Module,
        path: str,
        skip: frozenset[str] = frozenset(),
        tolerant: bool = False,
    ) -> tuple[list[Step], frozenset[str]]:
        """PyTorch's algorithm for ``m``'s own tensors (and the children it covers)."""
        try:
            return self._default_steps(m, path, skip)
        except PlanError as exc:
            if not tolerant:
                raise
            own = [n for n, p in params(m).items() if p is not None and n not in skip]
            return [
                Step(m, n, join(path, n), None, False, "no rule", missing=str(exc)) for n in own
            ], frozenset()

    def _default_steps(
        self, m: nn.Module, path: str, skip: frozenset[str]
    ) -> tuple[list[Step], frozenset[str]]:
        if any(
            uninitialized(t) for t in [*params(m).values(), *buffers(m).values()] if t is not None
        ):
            return [], frozenset()  # a lazy layer: nothing to draw until its first forward
        own = [n for n, p in params(m).items() if p is not None and n not in skip]
        _refuse_hooked(m, path)
        handler = default_handler(m)
        if handler is not None:
            steps, claimed = handler(m, path)
            steps = [s for s in steps if not (s.module is m and s.attr in skip)]
            covered = {s.attr for s in steps if s.module is m}
            extra = [n for n in own if n not in covered]
            if extra:
                raise PlanError(
                    f"{path or 'the model'} ({type(m).__name__}) has parameters {extra} that "
                    f"PyTorch's {type(m).__mro__[1].__name__} algorithm does not cover; declare "
                    f"the layer with @seeded_init(scheme=...) or give its class a "
                    f"reset_parameters()"
                )
            return steps, claimed
        seeded = isinstance(m, self.seeded_type)
        if not own and (seeded or not _holds_parameters(m)):
            return [], frozenset()
        reset = module_reset(m, after=self.seeded_type if seeded else None)
        if reset is None and not own:
            return [], frozenset()  # a container: its children are initialized on their own
        if reset is None:
            if isinstance(m, self.seeded_type):
                raise PlanError(
                    f"{type(m).__qualname__}: parameter(s) {own} at {path or 'the model root'} "
                    f"are not declared, so seeded-init cannot know how to initialize them; "
                    f"declare each, e.g. `{own[0]}: Annotated[nn.Parameter, "
                    f'seeded_init(scheme="normal", std=0.02)]`'
                )
            kind = type(m).__qualname__
            fix = (
                f"give it a rule, e.g. InitRules({{{type(m).__name__}: Normal(std=0.02)}}) or "
                f"InitRules({{{path or kind!r}: ...}})"
                if self.ruled is not None
                else f"declare it with @seeded_init(scheme=...) in its parent, or give {kind} a "
                f"reset_parameters() method"
            )
            raise PlanError(
                f"{path or 'the model'} ({kind}) has parameters {own} and no "
                f"reset_parameters(), so it cannot be initialized reproducibly; {fix}"
            )
        rule = f"{type(m).__qualname__}.reset_parameters"
        return [Step(m, "", path, None, True, rule, fallback=reset)], frozenset()

    def subtree_default(
        self, m: nn.Module, path: str, top: bool, tolerant: bool = False
    ) -> list[Step]:
        """The default steps of a whole declared subtree, in its constructor's drawing order.

        ``tolerant``: a tensor with no default gets a placeholder (``Step.missing``) that a
        ``params=`` rule may replace, instead of an error.
        """
        if not top and self.apart(m):
            return []  # a nested SeededModule (or ruled layer) is drawn apart (see visit_nested)
        skip = self.ruled_names(m)
        handler = default_handler(m)
        if handler is not None:
            own, claimed = self.default_steps(m, path, skip, tolerant=tolerant)
            rest = [
                s
                for name, c in children(m).items()
                if c is not None and name not in claimed
                for s in self.subtree_default(c, join(path, name), False, tolerant)
            ]
            return own + rest
        drawn = [
            s
            for name, c in children(m).items()
            if c is not None
            for s in self.subtree_default(c, join(path, name), False, tolerant)
        ]
        return drawn + self.default_steps(m, path, skip, tolerant=tolerant)[0]

    # -- declared layers -----------------------------------------------------------------------
    def declared_unit(
        self, owner: nn.Module, m: nn.Module, path: str, spec: InitSpec, where: str
    ) -> None:
        self.visit_nested(m, path)
        cache: list[list[Step]] = []

        def defaults() -> list[Step]:
            if not cache:
                cache.append(self.subtree_default(m, path, top=True, tolerant=True))
            return cache[0]

        tensors = self.unit_tensors(m, path)
        parts = {key: self.resolve_part(m, path, key, tensors, where) for key in spec.params}
        overridden = {(id(t[0]), t[1]) for targets, _ in parts.values() for t in targets}
        steps = self.layer_steps(owner, m, path, spec, tensors, defaults, where, overridden)
        sub_units: list[tuple[str, InitSpec, str, list[Step]]] = []
        for key, part in spec.params.items():
            targets, sub = parts[key]
            sub_path = join(path, key)
            if sub is None:  # one named parameter: the rule applies to it as written
                new = self.part_steps(owner, targets, part, defaults, where, path)
            else:  # a sub-layer: the rule applies as to a layer, biases by the bias rule
                new = self.layer_steps(owner, sub, sub_path, part, targets, defaults, where)
            if part.seed is None:
                steps = _after_own_resets(_replace(steps, targets, new), new)
            else:
                steps = _without(steps, targets)
                sub_units.append((sub_path, part, f"{where}[{key!r}]", self.with_padding(new)))
        if spec.bias is not None and spec.bias.seed is not None:
            # A bias rule with a seed of its own: the biases draw from their own generator.
            biases = [
                t for t in tensors if is_bias_name(t[2]) and (id(t[0]), t[1]) not in overridden
            ]
            keys = {(id(t[0]), t[1]) for t in biases}
            new = [s for s in steps if (id(s.module), s.attr) in keys and s.fallback is None]
            if new:
                steps = _without(steps, biases)
                sub_units.append((new[0].path, spec.bias, f"{where} bias=", new))
        missing = [s for s in steps if s.missing]
        if missing:
            raise PlanError(
                f"{where}: {missing[0].missing} (or give it a rule in this declaration: "
                f'params={{"{missing[0].path[len(path) :].lstrip(".")}": "ones"}})'
            )
        self.add_declared(path, spec, where, self.with_padding(steps))
        for sub_path, part, label, new in sub_units:
            self.add_declared(sub_path, part, label, new)

    def layer_steps(
        self,
        owner: nn.Module,
        m: nn.Module,
        path: str,
        spec: InitSpec,
        tensors: list[tuple[nn.Module, str, str, str]],
        defaults: Callable[[], list[Step]],
        where: str,
        overridden: set[tuple[int, str]] | None = None,
    ) -> list[Step]:
        """``spec`` applied to the layer ``m`` (whose parameters are ``tensors``).

        Tensors in ``overridden`` (by a ``params=`` rule) get a no-op placeholder that keeps
        their place in the drawing order until the rule's steps replace it.
        """
        overridden = overridden or set()
        biases = [t for t in tensors if is_bias_name(t[2])]
        if spec.scheme == "default":
            steps = [s for s in defaults() if inside(s.path, path)]
            if spec.bias is not None:
                steps = _replace(
                    steps, biases, self.part_steps(owner, biases, spec.bias, defaults, where, path)
                )
            return steps
        steps = self.norm_stat_steps(m, path)
        bias_spec = spec.bias if spec.bias is not None else InitSpec("zeros")
        for t in _weight_first(tensors, m):
            if (id(t[0]), t[1]) in overridden:
                steps.append(Step(t[0], t[1], t[3], None, False, ""))
                continue
            rule = bias_spec if is_bias_name(t[2]) else spec
            steps += self.part_steps(owner, [t], rule, defaults, where, path)
        return steps

    def declared_param(
        self,
        owner: nn.Module,
        name: str,
        path: str,
        spec: InitSpec,
        where: str,
        holder: nn.Module | None = None,
    ) -> None:
        """A declared parameter ``name`` of ``holder`` (default ``owner``, which holds the
        declaration)."""
        if spec.scheme == "default":
            raise PlanError(
                f"{where} is a bare nn.Parameter, which has no PyTorch default algorithm; "
                f'declare a scheme, e.g. @seeded_init(scheme="normal", std=0.02)'
            )
        if spec.params or spec.bias is not None:
            raise PlanError(f"{where} is a single parameter; bias= and params= apply to layers")
        held = owner if holder is None else holder
        steps = self.part_steps(owner, [(held, name, name, path)], spec, list, where, path)
        self.add_declared(path, spec, where, self.with_padding(steps))

    def add_declared(self, path: str, spec: InitSpec, where: str, steps: list[Step]) -> None:
        """A declared unit: the declaration's seed, or one derived from its path."""
        seed, explicit = (spec.seed, True) if spec.seed is not None else (self.derive(path), False)
        fallible = _fallible(steps)
        self.add_unit(
            Unit(path, seed, explicit, spec.share_seed, where, spec.scheme_name, steps, fallible)
        )

    def visit_nested(self, m: nn.Module, path: str) -> None:
        """Mark a declared subtree as seen; nested SeededModules in it get their own visit."""
        for name, child in children(m).items():
            if child is None:
                continue
            if self.apart(child):
                self.visit(child, join(path, name))
            elif id(child) not in self.seen:
                self.seen.add(id(child))
                self.rule_params(child, join(path, name))
                self.visit_nested(child, join(path, name))

    def unit_tensors(self, m: nn.Module, path: str) -> list[tuple[nn.Module, str, str, str]]:
        """(module, attr, name relative to the unit, full path) of each parameter, in order."""
        out: list[tuple[nn.Module, str, str, str]] = []
        seen: set[int] = set()
        stack: list[tuple[nn.Module, str]] = [(m, "")]  # no recursive closure: no cycle to GC
        while stack:
            mod, rel = stack.pop()
            _refuse_hooked(mod, join(path, rel))
            apart = self.ruled_names(mod)
            for name, p in params(mod).items():
                if (
                    p is not None
                    and id(p) not in seen
                    and not uninitialized(p)
                    and name not in apart
                ):
                    seen.add(id(p))
                    out.append((mod, name, join(rel, name), join(path, join(rel, name))))
            below = [
                (child, join(rel, name))
                for name, child in children(mod).items()
                if child is not None and not self.apart(child)
            ]
            stack.extend(reversed(below))  # keep registration order
        return out

    def norm_stat_steps(self, m: nn.Module, path: str) -> list[Step]:
        """Running statistics of batch/instance norms in the subtree are reset by any scheme."""
        out: list[Step] = []
        for name, sub in self.own_modules(m):
            handler = default_handler(sub)
            if (
                isinstance(sub, NormBase)
                and handler is not None
                and not any(uninitialized(b) for b in buffers(sub).values() if b is not None)
            ):
                out += [s for s in handler(sub, join(path, name))[0] if s.buffer]
        return out

    def own_modules(self, m: nn.Module) -> list[tuple[str, nn.Module]]:
        """``named_modules(m)`` less the subtrees drawn apart from ``m`` (see ``apart``)."""
        if self.ruled is None:
            return list(named_modules(m))
        out: list[tuple[str, nn.Module]] = []
        stack: list[tuple[str, nn.Module]] = [("", m)]
        seen: set[int] = set()
        while stack:
            rel, mod = stack.pop()
            if id(mod) in seen:
                continue
            seen.add(id(mod))
            out.append((rel, mod))
            below = [
                (join(rel, name), c)
                for name, c in children(mod).items()
                if c is not None and not self.apart(c)
            ]
            stack.extend(reversed(below))
        return out

    def part_steps(
        self,
        owner: nn.Module,
        targets: list[tuple[nn.Module, str, str, str]],
        spec: InitSpec,
        defaults: Callable[[], list[Step]],
        where: str,
        unit_path: str,
    ) -> list[Step]:
        """Steps applying ``spec`` to each target tensor, in order.

        ``owner`` is the SeededModule holding the declaration: number keywords given as
        functions are called on it here.
        """
        out: list[Step] = []
        kwargs = spec.kwargs
        if isinstance(spec.scheme, str) and targets:
            try:
                kwargs = resolve_kwargs(spec.scheme, spec.kwargs, owner, where)
            except DeclarationError as exc:
                raise PlanError(str(exc)) from exc
        for mod, attr, rel, full in targets:
            if spec.scheme == "default":
                mine = [s for s in defaults() if s.module is mod and s.attr == attr]
                if not mine:
                    raise PlanError(
                        f"{where}: parameter {rel!r} has no PyTorch default that seeded-init "
                        f"can replay on its own ({type(mod).__name__}); give it a scheme"
                    )
                out += mine
                continue
            tensor = params(mod)[attr]
            assert tensor is not None
            if isinstance(spec.scheme, str):
                problem = shape_problem(spec.scheme, kwargs, tuple(tensor.shape))
                if problem is not None:
                    if full == unit_path:  # a declared bare parameter
                        fix = 'a scheme for its shape, e.g. scheme="normal" or "ones"'
                    elif is_bias_name(rel):
                        fix = 'bias="zeros" or bias="default"'
                    elif rel == "weight":  # the layer's own weight: the scheme itself misfits
                        fix = 'a scheme for its shape, e.g. scheme="normal" or "default"'
                    else:
                        fix = f'params={{{rel!r}: "ones"}} (or another scheme for it)'
                    raise PlanError(
                        f"{where} (layer {unit_path or 'root'!r}): parameter {rel!r} has shape "
                        f"{tuple(tensor.shape)}, and scheme {spec.scheme!r} {problem}. Give it "
                        f"its own rule: {fix}"
                    )
                problem = range_problem(spec.scheme, kwargs, tensor)
                if problem is not None:
                    wide = tensor.dtype in (torch.float32, torch.float64)
                    fix = "smaller values" if wide else "smaller values, or keep it in float32"
                    if not tensor.is_floating_point():
                        fix = "a whole number that fits"
                    raise PlanError(
                        f"{where} (layer {unit_path or 'root'!r}): parameter {rel!r} is "
                        f"{tensor.dtype}, and scheme {rule_text(spec.scheme, kwargs)} {problem}. "
                        f"Give it {fix}"
                    )
                fill = make_fill(spec.scheme, kwargs)
                assert fill is not None
                out.append(
                    Step(
                        mod,
                        attr,
                        full,
                        fill,
                        SCHEMES[spec.scheme].draws,
                        rule_text(spec.scheme, kwargs),
                        keywords=cast("dict[str, float | int | str | None]", dict(kwargs)),
                    )
                )
            else:
                out.append(Step(mod, attr, full, spec.scheme, True, spec.scheme_name, user=True))
        return out

    def resolve_part(
        self,
        m: nn.Module,
        path: str,
        key: str,
        tensors: list[tuple[nn.Module, str, str, str]],
        where: str,
    ) -> tuple[list[tuple[nn.Module, str, str, str]], nn.Module | None]:
        """The tensors a ``params=`` key names, and the sub-layer it names (None for a tensor)."""
        exact = [t for t in tensors if t[2] == key]
        if exact:
            return exact, None
        under = [t for t in tensors if t[2].startswith(key + ".")]
        if under:
            return under, m.get_submodule(key)
        names = sorted({t[2] for t in tensors} | {n for n, _ in named_modules(m) if n})
        raise PlanError(
            f"{where}: params= names {key!r}, which is neither a parameter nor a sub-layer of "
            f"{type(m).__name__} at {path!r}; known names: {names}"
        )

    def with_padding(self, steps: list[Step]) -> list[Step]:
        """Embedding padding rows stay zero under every scheme."""
        out: list[Step] = []
        for s in steps:
            mod = s.module
            if (
                s.attr == "weight"
                and isinstance(mod, nn.Embedding | nn.EmbeddingBag)
                and mod.padding_idx is not None
                and s.fill is not None
            ):
                s = replace(s, zero_row=int(mod.padding_idx))
            out.append(s)
        return out

    # -- ownership -----------------------------------------------------------------------------
    def add_unit(self, unit: Unit) -> None:
        self.plan.units.append(unit)


def _refuse_hooked(m: nn.Module, path: str) -> None:
    """The old hook-based weight_norm/spectral_norm and pruning recompute a tensor from
    others before each forward: writing it would not last. (Parametrizations, the current
    mechanism, are written through: see ``_parametrized``.)"""
    old_style = [
        type(hook).__name__
        for hook in forward_pre_hooks(m)
        if isinstance(hook, WeightNorm | SpectralNorm)
    ]
    pruned = pruned_names(m)
    if pruned:
        raise PlanError(
            f"{path or 'the model'} ({type(m).__name__}) is pruned (torch.nn.utils.prune: "
            f"{pruned[0]}_orig and {pruned[0]}_mask stand for {pruned[0]!r}); seeded-init cannot "
            f"initialize through pruning. Reset before pruning, or make it permanent first "
            f"with torch.nn.utils.prune.remove(module, {pruned[0]!r})"
        )
    if old_style:
        raise PlanError(
            f"{path or 'the model'} ({type(m).__name__}) uses the deprecated hook-based "
            f"{old_style[0]} (torch.nn.utils.weight_norm / spectral_norm), whose weight is "
            f"recomputed from other parameters; seeded-init cannot initialize it. Apply it "
            f"after the reset, or remove it with torch.nn.utils.remove_weight_norm"
        )


def _replace(
    steps: list[Step], targets: list[tuple[nn.Module, str, str, str]], new: list[Step]
) -> list[Step]:
    """``steps`` with those writing ``targets`` replaced by ``new``, where the first one stood."""
    keys = {(id(t[0]), t[1]) for t in targets}
    out: list[Step] = []
    placed = False
    for s in steps:
        if (id(s.module), s.attr) not in keys:
            out.append(s)
        elif not placed:
            out += new
            placed = True
    return out if placed else out + new


def _without(steps: list[Step], targets: list[tuple[nn.Module, str, str, str]]) -> list[Step]:
    """``steps`` less those writing ``targets`` (moved to a unit of their own)."""
    keys = {(id(t[0]), t[1]) for t in targets}
    return [s for s in steps if s.fallback is not None or (id(s.module), s.attr) not in keys]


def _after_own_resets(steps: list[Step], new: list[Step]) -> list[Step]:
    """Move a ``params=`` rule's steps after the last module reset that may overwrite them (a
    module's own reset runs whole, after its children, as in its constructor)."""
    targets = {id(s.module) for s in new}
    new_ids = {id(s) for s in new}
    last = None
    for s in steps:
        if s.fallback is not None and any(id(x) in targets for x in s.module.modules()):
            last = s
    if last is None:
        return steps
    out: list[Step] = []
    for s in steps:
        if id(s) in new_ids:
            continue
        out.append(s)
        if s is last:
            out += new
    return out


def _holds_parameters(m: nn.Module) -> bool:
    return any(True for _ in m.parameters())


def _fallible(steps: list[Step]) -> bool:
    return any(s.fallback is not None or s.user for s in steps)


def _weight_first(
    tensors: list[tuple[nn.Module, str, str, str]], m: nn.Module
) -> list[tuple[nn.Module, str, str, str]]:
    """The layer's own ``weight`` first, then its own ``bias``, then the rest in order."""

    def rank(t: tuple[nn.Module, str, str, str]) -> int:
        if t[0] is m and t[1] == "weight":
            return 0
        if t[0] is m and t[1] == "bias":
            return 1
        return 2

    return sorted(tensors, key=rank)
