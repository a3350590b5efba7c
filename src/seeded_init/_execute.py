"""Carrying out a validated plan: one CPU generator per unit, the global RNG left untouched.

Values are drawn on the CPU in the tensor's dtype, into the tensor itself when it is a
contiguous CPU tensor, else into a contiguous CPU buffer that is then copied in. So a
channels_last weight or a CUDA parameter holds the same values as a plain CPU one, and no
generator ever meets a tensor of another device.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ._errors import PlanError
from ._plan import Plan, Unit
from ._steps import Step

__all__ = ["GLOBAL_RNG_LOCK", "SavedRng", "execute", "global_rng_restored"]

#: Held while the global RNG is borrowed for a module whose own reset knows no generator.
GLOBAL_RNG_LOCK = threading.RLock()


class SavedRng:
    """The CPU and (initialized) CUDA global RNG states, to put back later."""

    def __init__(self) -> None:
        self.cpu = torch.get_rng_state()
        self.cuda: list[torch.Tensor] | None = None
        if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
            self.cuda = torch.cuda.get_rng_state_all()

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)


@contextmanager
def global_rng_restored() -> Iterator[None]:
    """Restore the CPU and (initialized) CUDA global RNG states on exit."""
    saved = SavedRng()
    try:
        yield
    finally:
        saved.restore()


def _plain(t: torch.Tensor) -> bool:
    return t.device.type == "cpu" and t.is_contiguous() and type(t) in (
        torch.Tensor, torch.nn.Parameter)


def _write(step: Step, t: torch.Tensor, g: torch.Generator) -> None:
    assert step.fill is not None
    with torch.no_grad():
        if _plain(t):
            step.fill(t, g)
        else:
            buf = torch.empty(tuple(t.shape), dtype=t.dtype)
            step.fill(buf, g)
            t.copy_(buf)
        if step.zero_row is not None:
            t[step.zero_row].zero_()


def _advance(step: Step, t: torch.Tensor, g: torch.Generator) -> None:
    """Draw what ``step`` would draw, into scratch: keeps the stream for the steps after it."""
    assert step.fill is not None
    with torch.no_grad():
        step.fill(torch.empty(tuple(t.shape), dtype=t.dtype), g)


def _run_fallback(step: Step, g: torch.Generator, write: bool) -> None:
    assert step.fallback is not None
    m = step.module
    keep = None if write else {k: v.detach().clone() for k, v in
                               [*m._parameters.items(), *m._buffers.items()] if v is not None}
    with GLOBAL_RNG_LOCK, global_rng_restored():
        torch.default_generator.set_state(g.get_state())
        with torch.no_grad():
            step.fallback(m)
        g.set_state(torch.default_generator.get_state())
    if keep is not None:
        with torch.no_grad():
            for k, v in keep.items():
                (m._parameters.get(k) if k in m._parameters else m._buffers[k]).copy_(v)  # type: ignore[union-attr]


class _Selection:
    """The tensors a reset of the sub-layer at ``within`` writes: those the sub-layer holds,
    also under another name (a tied weight), and the layers whose own reset runs."""

    def __init__(self, root: torch.nn.Module, within: str) -> None:
        self.everything = not within
        self.tensors: set[int] = set()
        self.modules: set[int] = set()
        if within:
            part = root.get_submodule(within)
            self.modules = {id(m) for m in part.modules()}
            self.tensors = {id(t) for m in part.modules()
                            for t in [*m._parameters.values(), *m._buffers.values()]
                            if t is not None}

    def __contains__(self, step: Step) -> bool:
        if self.everything:
            return True
        if step.fallback is not None:
            return id(step.module) in self.modules
        return id(step.tensor()) in self.tensors


def _run_unit(unit: Unit, chosen_steps: _Selection) -> None:
    g = torch.Generator()
    g.manual_seed(unit.seed)
    for step in unit.steps:
        chosen = step in chosen_steps
        if step.fallback is not None:
            _run_fallback(step, g, chosen)
            continue
        t = step.tensor()
        if t is None or t.numel() == 0 or step.fill is None:
            continue
        if chosen:
            _write(step, t, g)
        elif step.draws:
            _advance(step, t, g)


def _written(step: Step) -> Iterator[tuple[str, torch.Tensor]]:
    """(path, tensor) of what ``step`` may write: its tensor, or all of a fallback's module."""
    if step.fallback is None:
        t = step.tensor()
        if t is not None:
            yield step.path, t
        return
    for name, t in [*step.module._parameters.items(), *step.module._buffers.items()]:
        if t is not None:
            yield f"{step.path}.{name}" if step.path else name, t


def _tensors(unit: Unit) -> Iterator[tuple[str, torch.Tensor]]:
    for step in unit.steps:
        yield from _written(step)


def execute(plan: Plan, within: str = "", construction: bool = False) -> None:
    """Write every tensor of ``plan`` that the sub-layer at ``within`` holds ("" for all).

    During construction, units with tensors on the meta device are skipped (they have no
    storage to fill yet); otherwise meta tensors are an error, raised before any write.

    Raises:
        PlanError: a tensor to write is on the meta device.
    """
    chosen = _Selection(plan.root, within)
    units = [u for u in plan.units if any(s in chosen for s in u.steps)]
    if construction:
        units = [u for u in units if not any(t.is_meta for _, t in _tensors(u))]
    else:
        meta = [p for u in units for s in u.steps if s in chosen
                for p, t in _written(s) if t.is_meta]
        if meta:
            more = f" (and {len(meta) - 1} more)" if len(meta) > 1 else ""
            raise PlanError(
                f"reset_parameters(): {meta[0]!r}{more} is on the meta device, which holds no "
                f"values; allocate storage first with model.to_empty(device=\"cpu\") (or "
                f"\"cuda\"), then call reset_parameters()"
            )
    fallible = [u for u in units if u.fallible]
    # User code may raise: run it first, with a copy to put back, so that an error leaves
    # every tensor as it was. The built-in fills cannot fail once the plan is validated.
    saved = [(t, t.detach().clone()) for u in fallible for _, t in _tensors(u)]
    current = None
    try:
        for current in fallible:
            _run_unit(current, chosen)
    except Exception as exc:
        with torch.no_grad():
            for t, old in saved:
                t.copy_(old)
        assert current is not None
        who = current.declared_by or type(current.steps[0].module).__qualname__
        raise PlanError(
            f"initializing layer {current.path!r} ({who}) failed in user code: {exc!r}. Every "
            f"tensor was restored to its value before the reset"
        ) from exc
    for unit in units:
        if not unit.fallible:
            _run_unit(unit, chosen)
