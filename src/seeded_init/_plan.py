"""From a module tree to a validated plan: units (one generator each) made of steps.

Invariants, in plain words:
- Every tensor is written by exactly one unit. A tensor reachable from two places (tied
  weights) belongs to the declared layer that holds it; two declarations holding one tensor
  are an error; among undeclared layers the first in registration order wins.
- A unit draws from ``torch.Generator().manual_seed(unit.seed)`` and nothing else; its steps
  run in order, so its values depend on its seed, its layers' shapes and dtypes alone.
- Everything that can go wrong is found here, before ``_execute`` writes anything.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import torch
from torch import nn

from ._builder import Builder
from ._errors import PlanError, SeedCollisionError
from ._steps import Step
from ._torch import internal_overlap, local_part, placement_problem, span
from ._units import Plan, Unit, step_tensors

if TYPE_CHECKING:
    from ._rules import Ruled

__all__ = ["build_plan"]


def _resolve_ownership(plan: Plan) -> None:
    """Give each tensor to one unit (see the module docstring); raise on two declarations.

    A module's own reset cannot be split per tensor: it runs whole, after the fills have
    claimed their tensors, and the tensors of its subtree that another unit owns are put back
    after it (``Step.foreign``).
    """
    owner: dict[int, tuple[Unit, str]] = {}
    order = sorted(plan.units, key=lambda u: u.declared_by is None)
    for unit in order:
        kept: list[Step] = []
        for step in unit.steps:
            if step.fallback is not None:
                kept.append(step)
                continue
            t = step.tensor()
            prev = None if t is None else owner.get(id(t))
            if t is None or prev is None or prev[0] is unit:
                if t is not None:
                    owner[id(t)] = (unit, step.path)
                kept.append(step)
                continue
            other, other_path = prev
            if unit.declared_by is not None:
                raise PlanError(
                    f"{other_path!r} and {step.path!r} are one tied tensor, declared twice: by "
                    f"{other.declared_by} ({other.scheme}) and by {unit.declared_by} "
                    f"({unit.scheme}). Keep the declaration of one of them (the layer that "
                    f"owns the weight) and leave the other undeclared (for rules: give the "
                    f"other name no rule, {{{step.path!r}: None}})"
                )
        unit.steps = kept
    shared = _shared_tensors(plan.root)
    for unit in order:
        steps: list[Step] = []
        for step in unit.steps:
            if step.fallback is not None:
                foreign: set[int] = set()
                for path, t in step_tensors(step):
                    prev = owner.setdefault(id(t), (unit, path))
                    if prev[0] is not unit:
                        foreign.add(id(t))
                step = replace(step, foreign=frozenset(foreign))
            steps.append(step)
        unit.steps = _exempt(steps, shared)
    plan.units = [u for u in plan.units if u.steps]


def _shared_tensors(root: torch.nn.Module) -> frozenset[int]:
    """Ids of the tensors held under more than one name (tied)."""
    seen: set[int] = set()
    shared: set[int] = set()
    for _, t in root.named_parameters(remove_duplicate=False):
        (shared if id(t) in seen else seen).add(id(t))
    return frozenset(shared)


def _exempt(steps: list[Step], shared: frozenset[int]) -> list[Step]:
    """A module's own reset need not write what other steps of its unit write (a per-part
    rule in ``params=``), nor a tied tensor (another module's reset may write it)."""
    others = shared | frozenset(
        id(t) for s in steps if s.fallback is None for t in [s.tensor()] if t is not None
    )
    return [replace(s, exempt=others) if s.fallback is not None else s for s in steps]


def _check_seeds(plan: Plan) -> None:
    first: dict[int, Unit] = {}
    for unit in plan.units:
        if not unit.explicit:
            continue
        prev = first.setdefault(unit.seed, unit)
        if prev is not unit and not (prev.share and unit.share):
            raise SeedCollisionError(
                f"seed={unit.seed} is declared for two layers, {prev.path!r} ({prev.declared_by})"
                f" and {unit.path!r} ({unit.declared_by}); they would draw identical or "
                f"correlated values. Remove seed= to derive each layer's seed from its path, or "
                f"write share_seed=True in both declarations to share it on purpose"
            )


_DRAWABLE = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})


def _check_tensors(plan: Plan) -> None:
    """Refuse, before any write, tensors that the fills cannot write."""
    for unit in plan.units:
        for step in unit.steps:
            if step.fallback is not None:
                tensors = [*step.module.parameters(), *step.module.buffers()]
                devices = {t.device.type for t in tensors} - {"cpu", "meta"}
                if any(local_part(t)[1] is not None for t in tensors):
                    raise PlanError(
                        f"{step.path!r} ({type(step.module).__qualname__}) is initialized by "
                        f"its own reset_parameters(), and its parameters are DTensors, whose "
                        f"random ops would draw each shard alike from the global RNG; declare "
                        f"it with a scheme (or params= rules) in its parent, which seeded-init "
                        f"draws for the full tensor and writes shard by shard"
                    )
                if devices:
                    raise PlanError(
                        f"{step.path!r} ({type(step.module).__qualname__}) is initialized by "
                        f"its own reset_parameters(), which would draw on {sorted(devices)}, "
                        f"where the CPU generator cannot go; declare it with a scheme, or "
                        f"reset it on the CPU and then move it"
                    )
            t = step.tensor() if step.fallback is None else None
            if t is None or step.fill is None:
                continue
            where = f"{step.path!r} ({unit.declared_by or 'undeclared'})"
            layout = placement_problem(t)
            if layout is not None:
                raise PlanError(f"{where} is a DTensor that {layout}")
            full, t = t, local_part(t)[0]
            if step.draws and t.dtype not in _DRAWABLE:
                raise PlanError(
                    f"{where} has dtype {t.dtype}; rule {step.rule} draws random numbers, "
                    f"which torch does for float16, bfloat16, float32 and float64 only. Give "
                    f"it a deterministic rule (zeros, ones, constant) or one of those dtypes"
                )
            if t.numel() and not t.is_meta and internal_overlap(t):
                raise PlanError(
                    f"{where} is a view whose elements share memory (stride 0 or overlapping "
                    f"strides) and cannot take distinct values; give the layer a parameter of "
                    f"its own, e.g. nn.Parameter(tensor.clone())"
                )
            rows = full.shape[0] if full.dim() else 0  # a sharded embedding's, not a shard's
            if step.zero_row is not None and not 0 <= step.zero_row < rows:
                raise PlanError(
                    f"{where}: padding_idx {step.zero_row} is outside the {rows} rows of "
                    f"the embedding; set padding_idx to a row in [0, {rows})"
                )
            if t.is_inference() and not torch.is_inference_mode_enabled():
                raise PlanError(
                    f"{where} was created under torch.inference_mode() and cannot be written "
                    f"outside it; build the model outside inference_mode"
                )


def _check_overlap(plan: Plan) -> None:
    """Refuse two distinct tensors that share memory: one would overwrite the other's values.
    A tied parameter is one tensor held twice, and is fine."""
    spans: dict[tuple[str, int], list[tuple[int, int, str]]] = {}
    seen: set[int] = set()
    for unit in plan.units:
        for step in unit.steps:
            for path, full in step_tensors(step):
                t = local_part(full)[0]
                if id(full) in seen or t.is_meta or not t.numel():
                    continue
                seen.add(id(full))
                key, start, stop = span(t)
                spans.setdefault(key, []).append((start, stop, path))
    for group in spans.values():
        group.sort()
        end, first = group[0][1], group[0][2]
        for start, stop, second in group[1:]:
            if start < end:
                raise PlanError(
                    f"{first!r} and {second!r} are distinct tensors in overlapping memory (views "
                    f"of one buffer): writing one would change the other. Tie them by holding "
                    f"one nn.Parameter in both places, or give each its own storage "
                    f"(nn.Parameter(tensor.clone()))"
                )
            if stop > end:
                end, first = stop, second


def build_plan(
    root: nn.Module,
    root_seed: int,
    seeds: dict[str, int] | None = None,
    ruled: Ruled | None = None,
) -> Plan:
    """Traverse ``root``, resolve ownership and seeds, and validate; touches no tensor."""
    plan = Builder(root, root_seed, seeds, ruled).plan
    _resolve_ownership(plan)
    _check_seeds(plan)
    _check_tensors(plan)
    _check_overlap(plan)
    return plan
