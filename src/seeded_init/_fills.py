"""Fills that say what they draw, so that a cached plan can call the tensor's own method.

Each is called like every fill, ``fill(tensor, generator)``, and then runs the
``torch.nn.init`` function it stands for. ``direct(fill, t)`` gives the same draw for the tensor
``t`` as a call of the in-place tensor method that function ends in, without its Python
layers (grad mode, argument checks, fan and gain arithmetic): the same kernel on the same
generator with the same bounds, so bitwise the same values. It is valid under
``torch.no_grad()`` for a plain tensor of ``t``'s shape, which is how ``_cache`` calls it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import init

from ._types import FanMode, Nonlinearity

__all__ = [
    "Constant",
    "KaimingUniform",
    "Normal",
    "Ones",
    "Uniform",
    "Zeros",
    "direct",
    "keywords_of",
    "unpatched",
]

_Fill = Callable[[torch.Tensor, torch.Generator], object]


@dataclass(frozen=True, slots=True)
class Uniform:
    """``init.uniform_(t, low, high)``."""

    low: float
    high: float

    def __call__(self, t: torch.Tensor, g: torch.Generator) -> object:
        return init.uniform_(t, self.low, self.high, generator=g)

    def draw(self, t: torch.Tensor, g: torch.Generator) -> object:
        return t.uniform_(self.low, self.high, generator=g)


@dataclass(frozen=True, slots=True)
class Normal:
    """``init.normal_(t, mean, std)``."""

    mean: float
    std: float

    def __call__(self, t: torch.Tensor, g: torch.Generator) -> object:
        return init.normal_(t, self.mean, self.std, generator=g)

    def draw(self, t: torch.Tensor, g: torch.Generator) -> object:
        return t.normal_(self.mean, self.std, generator=g)


@dataclass(frozen=True, slots=True)
class Constant:
    """``init.constant_(t, value)``."""

    value: float

    def __call__(self, t: torch.Tensor, g: torch.Generator) -> object:
        return init.constant_(t, self.value)

    def draw(self, t: torch.Tensor, g: torch.Generator) -> object:
        return t.fill_(self.value)


@dataclass(frozen=True, slots=True)
class Ones:
    """``init.ones_(t)``."""

    def __call__(self, t: torch.Tensor, g: torch.Generator) -> object:
        return init.ones_(t)

    def draw(self, t: torch.Tensor, g: torch.Generator) -> object:
        return t.fill_(1.0)


@dataclass(frozen=True, slots=True)
class Zeros:
    """``init.zeros_(t)``."""

    def __call__(self, t: torch.Tensor, g: torch.Generator) -> object:
        return init.zeros_(t)

    def draw(self, t: torch.Tensor, g: torch.Generator) -> object:
        return t.zero_()


@dataclass(frozen=True, slots=True)
class KaimingUniform:
    """``init.kaiming_uniform_(t, a, mode, nonlinearity)``."""

    a: float
    mode: FanMode = "fan_in"
    nonlinearity: Nonlinearity = "leaky_relu"

    def __call__(self, t: torch.Tensor, g: torch.Generator) -> object:
        return init.kaiming_uniform_(t, self.a, self.mode, self.nonlinearity, generator=g)

    def bounds(self, t: torch.Tensor) -> Uniform:
        """The uniform draw it makes for ``t``: torch's own arithmetic, step for step."""
        fan = init._calculate_correct_fan(t, self.mode)  # pyright: ignore[reportPrivateUsage]
        gain = init.calculate_gain(self.nonlinearity, self.a)
        std = gain / math.sqrt(fan)
        bound = math.sqrt(3.0) * std
        return Uniform(-bound, bound)


def direct(fill: _Fill, t: torch.Tensor) -> _Fill:
    """``fill`` for the tensor ``t`` as the tensor method it ends in (itself if unknown)."""
    if isinstance(fill, KaimingUniform):
        fill = fill.bounds(t)
    if isinstance(fill, Uniform | Normal | Constant | Ones | Zeros):
        return fill.draw
    return fill


# The torch.nn.init functions these fills stand for, as torch defines them.
_ORIGINALS = (
    init.uniform_,
    init.normal_,
    init.constant_,
    init.ones_,
    init.zeros_,
    init.kaiming_uniform_,
)


def unpatched() -> bool:
    """Whether ``torch.nn.init`` still holds torch's own functions for these fills (a library
    may replace them for a while, as transformers' ``no_init_weights`` does): only then is
    ``direct`` the same as calling the fill."""
    return all(getattr(init, f.__name__) is f for f in _ORIGINALS)


def keywords_of(fill: _Fill) -> dict[str, float | int | str | None]:
    """The ``torch.nn.init`` keywords a fill stands for (none for a fill it cannot say)."""
    if isinstance(fill, Uniform):
        return {"a": fill.low, "b": fill.high}
    if isinstance(fill, Normal):
        return {"mean": fill.mean, "std": fill.std}
    if isinstance(fill, Constant):
        return {"val": fill.value}
    if isinstance(fill, KaimingUniform):
        return {"a": fill.a, "mode": fill.mode, "nonlinearity": fill.nonlinearity}
    return {}
