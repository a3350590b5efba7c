"""Where and in which dtype values are drawn, and how they reach a (possibly sharded) tensor.

Invariants, in plain words:
- By default (``draw_on="cpu"``) every value is drawn by a CPU generator, in the tensor's
  dtype, for the tensor's full (global) shape, so it depends on (seed, path, shape, dtype)
  alone: a CUDA tensor, a channels_last one and each shard of a DTensor receive a copy of
  their part of that CPU draw.
- ``draw_on="device"`` draws with a generator on the tensor's own device: faster on a GPU,
  but the values are that device's (CUDA's sampling differs from the CPU's).
- ``draw_dtype`` draws in that dtype and casts, so a half-precision model holds its float32
  twin's values rounded; the default draws in the tensor's dtype, as PyTorch does.
- A DTensor's fans and draws come from its global shape; each rank writes only its local
  part, so no shard is a copy of another, and at most one full tensor exists at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch

from ._errors import PlanError
from ._schemes import Fill
from ._torch import local_part

__all__ = [
    "DRAW_DTYPES",
    "PLAIN",
    "Draw",
    "DrawOn",
    "Generators",
    "check_draw",
    "draw_into",
    "drawn_as",
]

#: Where values are drawn: on a CPU generator (device-invariant) or on the tensor's device.
DrawOn = Literal["cpu", "device"]

DRAW_DTYPES = (torch.float32, torch.float64)


@dataclass(frozen=True, slots=True)
class Draw:
    """How a reset draws: ``on`` which generator, in which ``dtype`` (None: the tensor's)."""

    on: DrawOn = "cpu"
    dtype: torch.dtype | None = None


def check_draw(on: object, dtype: object, where: str) -> Draw:
    """Validate the ``draw_on=`` and ``draw_dtype=`` a user gave; raise PlanError if wrong."""
    if on not in get_args(DrawOn):
        raise PlanError(
            f'{where}draw_on={on!r}; write draw_on="cpu" (the default: the same values on '
            f'every device) or draw_on="device" (drawn on the parameter\'s own device, faster, '
            f"but device-specific values)"
        )
    if dtype is not None and dtype not in DRAW_DTYPES:
        raise PlanError(
            f"{where}draw_dtype={dtype!r}; write draw_dtype=torch.float32 (or torch.float64) "
            f"to draw in that dtype and cast, or leave it None to draw in each parameter's dtype"
        )
    return Draw(
        "cpu" if on == "cpu" else "device", dtype if isinstance(dtype, torch.dtype) else None
    )


def overridden(base: Draw, on: object, dtype: object, where: str) -> Draw:
    """``base`` with a call's ``draw_on=`` and ``draw_dtype=`` (None: keep), validated."""
    if on is None and dtype is None:
        return base
    return check_draw(base.on if on is None else on, base.dtype if dtype is None else dtype, where)


class Generators:
    """One unit's generators: ``seed`` on each device it draws on, made when first needed."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._by_device: dict[torch.device, torch.Generator] = {}

    def on(self, device: torch.device) -> torch.Generator:
        g = self._by_device.get(device)
        if g is None:
            g = torch.Generator(device=device)
            g.manual_seed(self.seed)
            self._by_device[device] = g
        return g

    @classmethod
    def of(cls, g: torch.Generator) -> Generators:
        """Generators whose generator on ``g``'s device is ``g`` itself, as it stands."""
        gens = cls(g.initial_seed())
        gens._by_device[g.device] = g
        return gens

    @property
    def cpu(self) -> torch.Generator:
        return self.on(torch.device("cpu"))


#: Tensor types whose storage a fill may write directly (not a DTensor or another subclass).
PLAIN = (torch.Tensor, torch.nn.Parameter)


def drawn_as(
    device: torch.device, dtype: torch.dtype, how: Draw, draws: bool
) -> tuple[torch.device, torch.dtype]:
    """Where and in which dtype ``how`` draws the values of a tensor on ``device`` in
    ``dtype`` (``draws``: its rule draws random numbers, which ``how.dtype`` applies to)."""
    on = device if how.on == "device" else torch.device("cpu")
    return on, how.dtype if draws and how.dtype is not None else dtype


def draw_into(
    t: torch.Tensor,
    fill: Fill,
    gens: Generators,
    how: Draw,
    draws: bool,
    zero_row: int | None = None,
    write: bool = True,
) -> None:
    """Run ``fill`` for ``t``'s full shape and write the result (its local part) into ``t``.

    With ``write=False`` the draw is made into scratch and dropped: it keeps the generator's
    stream where it would be for the tensors after ``t``.
    """
    local, part = local_part(t)
    device, dtype = drawn_as(local.device, t.dtype, how, draws)
    direct = (
        write
        and part is None
        and type(t) in PLAIN
        and t.device == device
        and t.dtype == dtype
        and t.is_contiguous()
    )
    with torch.no_grad():
        if direct:
            fill(t, gens.on(device))
            if zero_row is not None:
                t[zero_row].zero_()
            return
        buf = torch.empty(tuple(t.shape), dtype=dtype, device=device)
        fill(buf, gens.on(device))
        if not write:
            return
        if zero_row is not None:
            buf[zero_row].zero_()
        if local.numel():
            local.copy_(buf if part is None else buf[part])
