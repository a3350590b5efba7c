"""One small frozen type per scheme with keywords: ``KaimingNormal(nonlinearity="relu")``.

A scheme given as one of these is checked field by field by a type checker, so a keyword the
scheme does not take, or a value outside a keyword's ``Literal``, is one precise error at the
line that wrote it. ``seeded_init(scheme=KaimingNormal(nonlinearity="relu"))`` equals
``seeded_init(scheme="kaiming_normal", nonlinearity="relu")``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

from ._types import FanMode, Nonlinearity, Scalar, SchemeName

__all__ = [
    "Constant",
    "Dirac",
    "KaimingNormal",
    "KaimingUniform",
    "Normal",
    "Orthogonal",
    "Scheme",
    "Sparse",
    "TruncNormal",
    "Uniform",
    "XavierNormal",
    "XavierUniform",
]


@dataclass(frozen=True, kw_only=True)
class Scheme:
    """A scheme with its keywords. Use one of the subclasses."""

    name: ClassVar[SchemeName]

    def keywords(self) -> dict[str, Scalar | str | None]:
        """The keywords, as ``torch.nn.init`` names them."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, kw_only=True)
class Uniform(Scheme):
    """``torch.nn.init.uniform_``: values in ``[a, b)``."""

    name: ClassVar[SchemeName] = "uniform"
    a: Scalar = 0.0
    b: Scalar = 1.0


@dataclass(frozen=True, kw_only=True)
class Normal(Scheme):
    """``torch.nn.init.normal_``."""

    name: ClassVar[SchemeName] = "normal"
    mean: Scalar = 0.0
    std: Scalar = 1.0


@dataclass(frozen=True, kw_only=True)
class TruncNormal(Scheme):
    """``torch.nn.init.trunc_normal_``; ``a``/``b`` left out truncate at ``mean -/+ 2 * std``."""

    name: ClassVar[SchemeName] = "trunc_normal"
    mean: Scalar = 0.0
    std: Scalar = 1.0
    a: Scalar | None = None
    b: Scalar | None = None


@dataclass(frozen=True, kw_only=True)
class XavierUniform(Scheme):
    """``torch.nn.init.xavier_uniform_``."""

    name: ClassVar[SchemeName] = "xavier_uniform"
    gain: Scalar = 1.0


@dataclass(frozen=True, kw_only=True)
class XavierNormal(Scheme):
    """``torch.nn.init.xavier_normal_``."""

    name: ClassVar[SchemeName] = "xavier_normal"
    gain: Scalar = 1.0


@dataclass(frozen=True, kw_only=True)
class KaimingUniform(Scheme):
    """``torch.nn.init.kaiming_uniform_``."""

    name: ClassVar[SchemeName] = "kaiming_uniform"
    a: Scalar = 0.0
    mode: FanMode = "fan_in"
    nonlinearity: Nonlinearity = "leaky_relu"


@dataclass(frozen=True, kw_only=True)
class KaimingNormal(Scheme):
    """``torch.nn.init.kaiming_normal_``."""

    name: ClassVar[SchemeName] = "kaiming_normal"
    a: Scalar = 0.0
    mode: FanMode = "fan_in"
    nonlinearity: Nonlinearity = "leaky_relu"


@dataclass(frozen=True, kw_only=True)
class Orthogonal(Scheme):
    """``torch.nn.init.orthogonal_``."""

    name: ClassVar[SchemeName] = "orthogonal"
    gain: Scalar = 1.0


@dataclass(frozen=True, kw_only=True)
class Sparse(Scheme):
    """``torch.nn.init.sparse_``, its zero mask drawn from the layer's generator."""

    name: ClassVar[SchemeName] = "sparse"
    sparsity: Scalar
    std: Scalar = 0.01


@dataclass(frozen=True, kw_only=True)
class Constant(Scheme):
    """``torch.nn.init.constant_``."""

    name: ClassVar[SchemeName] = "constant"
    val: Scalar


@dataclass(frozen=True, kw_only=True)
class Dirac(Scheme):
    """``torch.nn.init.dirac_``."""

    name: ClassVar[SchemeName] = "dirac"
    groups: int = 1
