"""Names shared by the public API: scheme names, keyword literals, the init-function protocol."""

from __future__ import annotations

from typing import Literal, Protocol, TypeAlias

import torch

__all__ = ["FanMode", "InitFn", "Nonlinearity", "SchemeName"]

#: Every scheme name that ``seeded_init(scheme=...)`` accepts.
SchemeName: TypeAlias = Literal[
    "default",
    "uniform",
    "normal",
    "trunc_normal",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "orthogonal",
    "sparse",
    "zeros",
    "ones",
    "constant",
    "eye",
    "dirac",
]

#: The ``nonlinearity=`` values that ``torch.nn.init.calculate_gain`` knows.
Nonlinearity: TypeAlias = Literal[
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "selu",
]

#: The ``mode=`` values of the Kaiming schemes.
FanMode: TypeAlias = Literal["fan_in", "fan_out"]


class InitFn(Protocol):
    """A user init function: fills ``tensor`` in place, drawing only from ``generator``.

    The tensor is a contiguous CPU tensor with the parameter's shape and dtype (the parameter
    itself when it is one; else a buffer copied into it after); the generator is a CPU
    generator. What the function returns is ignored.
    """

    def __call__(self, tensor: torch.Tensor, generator: torch.Generator, /) -> object: ...
