"""Names shared by the public API: scheme names, keyword literals, the init-function protocol."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol, TypeAlias

import torch
from typing_extensions import Never, TypedDict

__all__ = ["FanMode", "InitFn", "Nonlinearity", "Scalar", "SchemeKeywords", "SchemeName"]

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


#: A number keyword: a float, or a function of the declaring module (the SeededModule whose
#: class holds the declaration) that returns it, called when the plan is made, e.g.
#: ``std=lambda block: 0.02 / math.sqrt(2 * block.n_layer)``. (``Never`` admits a function of
#: one argument of any type.)
Scalar: TypeAlias = float | Callable[[Never], float]


class SchemeKeywords(TypedDict, total=False):
    """Every scheme keyword ``seeded_init`` accepts, named and typed as in ``torch.nn.init``.

    Which scheme takes which is checked when the class is defined; a scheme type
    (``KaimingNormal(...)``) has the checker check it too.
    """

    a: Scalar | None
    b: Scalar | None
    mean: Scalar
    std: Scalar
    gain: Scalar
    mode: FanMode
    nonlinearity: Nonlinearity
    sparsity: Scalar
    val: Scalar
    groups: int
