"""A plan's data: units (one generator each) made of steps, and the records they yield."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import torch
from torch import nn

from ._fills import keywords_of
from ._records import InitPlan, ParamInit
from ._steps import Step
from ._torch import fans, uninitialized

__all__ = [
    "Plan",
    "Unit",
    "inside",
    "join",
    "lookup",
    "module_reset",
    "step_tensors",
    "uninitialized",
]


def join(path: str, name: str) -> str:
    """Dotted join where either side may be empty (the root)."""
    return f"{path}.{name}" if path and name else path or name


@dataclass(slots=True)
class Unit:
    """One generator and the steps that draw from it, in order."""

    path: str
    seed: int
    explicit: bool
    share: bool
    declared_by: str | None
    scheme: str
    steps: list[Step]
    fallible: bool = False  # runs user code (a scheme function, a module's own reset)


@dataclass(slots=True)
class Plan:
    root: nn.Module
    root_seed: int
    units: list[Unit]
    #: Root seeds by path: the root's ("") and those of nested SeededModules given one.
    seeds: dict[str, int] = field(default_factory=dict)

    def records(self, within: str = "") -> InitPlan:
        seen: dict[str, ParamInit] = {}
        first_path: dict[int, str] = {}
        for unit in self.units:
            for step in unit.steps:
                for path, tensor in step_tensors(step):
                    if not inside(path, within) or uninitialized(tensor):
                        continue
                    old = seen.get(path)
                    rule = step.rule if old is None else f"{old.rule} -> {step.rule}"
                    keywords = step.keywords
                    if keywords is None:
                        keywords = keywords_of(step.fill) if step.fill is not None else {}
                    fan_in, fan_out = fans(tensor) if tensor.dim() >= 2 else (None, None)
                    seen[path] = ParamInit(
                        path,
                        unit.path,
                        unit.scheme,
                        rule,
                        unit.seed,
                        "explicit" if unit.explicit else "derived",
                        unit.declared_by,
                        tuple(tensor.shape),
                        tensor.dtype,
                        device=str(tensor.device),
                        fan_in=fan_in,
                        fan_out=fan_out,
                        keywords=MappingProxyType(dict(keywords)),
                        fallback=step.fallback is not None,
                    )
                    first_path.setdefault(id(tensor), path)
        state = self.root.state_dict(keep_vars=True)
        for name, tensor in state.items():  # the other names of tied tensors
            origin = first_path.get(id(tensor))
            if name not in seen and origin is not None and inside(name, within):
                seen[name] = replace(seen[origin], path=name, tied_to=origin)
        order = {name: i for i, name in enumerate(state)}
        entries = sorted(seen.values(), key=lambda e: order.get(e.path, len(order)))
        base = max((p for p in self.seeds if inside(within, p)), key=len, default="")
        return InitPlan(self.seeds.get(base, self.root_seed), tuple(entries))


def lookup(root: nn.Module, path: str) -> nn.Module | None:
    """The module at ``path`` under ``root``, or None."""
    try:
        return root.get_submodule(path)
    except AttributeError:
        return None


def inside(path: str, within: str) -> bool:
    return not within or path == within or path.startswith(within + ".")


def step_tensors(step: Step) -> Iterator[tuple[str, torch.Tensor]]:
    if step.fallback is None:
        t = step.tensor()
        if t is not None:
            yield step.path, t
        return
    for name, t in step.module.named_parameters():
        yield join(step.path, name), t


def module_reset(m: nn.Module, after: type | None = None) -> Callable[[nn.Module], object] | None:
    """The class-level ``reset_parameters`` of ``m`` (below ``after`` in the MRO, if given)."""
    mro = type(m).__mro__
    if after is not None:
        mro = mro[mro.index(after) + 1 :]
    for klass in mro:
        fn = klass.__dict__.get("reset_parameters")
        if fn is not None:
            return fn  # type: ignore[no-any-return]
    return None
