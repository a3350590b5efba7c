"""The unit of work of a reset: one fill of one tensor, or one call of a module's own reset."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from ._schemes import Fill
from ._torch import buffers, params

__all__ = ["Step", "is_bias_name"]


@dataclass(frozen=True, slots=True)
class Step:
    """Fill ``module.<attr>`` (a parameter, or a buffer if ``buffer``) with ``fill``.

    A step with ``fallback`` set instead calls that function on ``module`` with the global RNG
    temporarily set to the unit's generator state: the way to run a module's own
    ``reset_parameters()`` that knows no generator. ``attr`` is then empty.
    """

    module: nn.Module
    attr: str
    path: str  # the dotted path of the tensor (or of the module, for a fallback)
    fill: Fill | None
    draws: bool
    rule: str
    buffer: bool = False
    zero_row: int | None = None  # an Embedding padding row to zero after the fill
    fallback: Callable[[nn.Module], object] | None = None
    user: bool = False  # the fill is user code, which may raise
    foreign: frozenset[int] = frozenset()  # ids of tensors a fallback must leave as they are
    exempt: frozenset[int] = frozenset()  # ids of its module's tensors other steps write
    missing: str = ""  # a placeholder for a tensor with no rule: why, if no params= rule comes
    keywords: Mapping[str, float | int | str | None] | None = None  # a scheme's, for records

    def tensor(self) -> torch.Tensor | None:
        """The tensor this step writes, looked up now (``to_empty`` replaces parameters)."""
        table = buffers(self.module) if self.buffer else params(self.module)
        return table.get(self.attr)


def is_bias_name(name: str) -> bool:
    """Whether a parameter name (its last dotted part) names a bias."""
    last = name.rsplit(".", 1)[-1]
    return last == "bias" or last.startswith("bias_") or last.endswith("_bias")
