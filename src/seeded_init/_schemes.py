"""The named schemes: their keywords, what shapes they accept, and the fill they perform.

Every random scheme calls the ``torch.nn.init`` function of the same name with a generator, so
its values are bitwise those of that function. The one exception is ``sparse``: PyTorch's
``sparse_`` picks the zeroed rows from the global RNG; ours takes them from the same generator.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, cast, get_args

import torch
from torch.nn import init
from typing_extensions import Never

from ._errors import DeclarationError
from ._fills import Constant, KaimingUniform, Normal, Ones, Uniform, Zeros
from ._torch import fans
from ._types import FanMode, Nonlinearity, SchemeName

__all__ = [
    "SCHEMES",
    "Fill",
    "KwValue",
    "check_kwargs",
    "make_fill",
    "range_problem",
    "resolve_kwargs",
    "rule_text",
    "shape_problem",
]

#: A fill: writes into a contiguous tensor, drawing only from the generator.
Fill = Callable[[torch.Tensor, torch.Generator], object]
#: A keyword's value: a number, a Literal string, None (a default), or a function of the
#: declaring module that returns the number when the plan is made.
KwValue = float | int | str | None | Callable[[Never], float]

_REQUIRED: Final = object()
_NONLINEARITIES: Final[dict[str, Nonlinearity]] = {n: n for n in get_args(Nonlinearity)}
_FLOAT: Final = "a number"


@dataclass(frozen=True)
class _Kw:
    default: object
    kind: str = _FLOAT  # _FLOAT, "int", or "literal"
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Scheme:
    kwargs: Mapping[str, _Kw]
    draws: bool
    dims: tuple[int, int | None] = (0, None)  # accepted ndim range, inclusive
    dims_reason: str = ""


_GAIN = {"gain": _Kw(1.0)}
_KAIMING = {
    "a": _Kw(0.0),
    "mode": _Kw("fan_in", "literal", get_args(FanMode)),
    "nonlinearity": _Kw("leaky_relu", "literal", get_args(Nonlinearity)),
}
_FAN = "at least 2 dimensions to compute fan_in and fan_out"

SCHEMES: Final[Mapping[str, _Scheme]] = {
    "default": _Scheme({}, draws=True),
    "uniform": _Scheme({"a": _Kw(0.0), "b": _Kw(1.0)}, draws=True),
    "normal": _Scheme({"mean": _Kw(0.0), "std": _Kw(1.0)}, draws=True),
    "trunc_normal": _Scheme(
        {"mean": _Kw(0.0), "std": _Kw(1.0), "a": _Kw(None), "b": _Kw(None)}, draws=True
    ),
    "xavier_uniform": _Scheme(_GAIN, draws=True, dims=(2, None), dims_reason=_FAN),
    "xavier_normal": _Scheme(_GAIN, draws=True, dims=(2, None), dims_reason=_FAN),
    "kaiming_uniform": _Scheme(_KAIMING, draws=True, dims=(2, None), dims_reason=_FAN),
    "kaiming_normal": _Scheme(_KAIMING, draws=True, dims=(2, None), dims_reason=_FAN),
    "orthogonal": _Scheme(_GAIN, draws=True, dims=(2, None), dims_reason="at least 2 dimensions"),
    "sparse": _Scheme(
        {"sparsity": _Kw(_REQUIRED), "std": _Kw(0.01)},
        draws=True,
        dims=(2, 2),
        dims_reason="exactly 2 dimensions",
    ),
    "zeros": _Scheme({}, draws=False),
    "ones": _Scheme({}, draws=False),
    "constant": _Scheme({"val": _Kw(_REQUIRED)}, draws=False),
    "eye": _Scheme({}, draws=False, dims=(2, 2), dims_reason="exactly 2 dimensions"),
    "dirac": _Scheme(
        {"groups": _Kw(1, "int")}, draws=False, dims=(3, 5), dims_reason="3, 4 or 5 dimensions"
    ),
}
assert set(SCHEMES) == set(get_args(SchemeName))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_kwargs(scheme: str, given: Mapping[str, object], where: str) -> dict[str, KwValue]:
    """Validate the keywords of ``scheme`` and return them with defaults filled in.

    Raises:
        DeclarationError: unknown scheme, unknown keyword, missing required keyword, a value
            of the wrong type or outside its range.
    """
    info = SCHEMES.get(scheme)
    if info is None:
        names = ", ".join(repr(n) for n in SCHEMES)
        raise DeclarationError(
            f"{where}: unknown scheme {scheme!r}; write one of {names}, or pass a function "
            f"(tensor, generator) -> None"
        )
    for key in given:
        if key not in info.kwargs:
            takes = ", ".join(f"{k}=" for k in info.kwargs) or "no keywords"
            raise DeclarationError(
                f"{where}: scheme {scheme!r} takes {takes}, not {key}=; remove {key}= or pick "
                f"a scheme that takes it"
            )
    out: dict[str, KwValue] = {}
    for key, kw in info.kwargs.items():
        value = given.get(key, kw.default)
        if value is _REQUIRED:
            raise DeclarationError(f"{where}: scheme {scheme!r} needs {key}=, e.g. {key}=0.1")
        if kw.kind == "literal":
            if value not in kw.choices:
                choices = ", ".join(repr(c) for c in kw.choices)
                raise DeclarationError(
                    f"{where}: {key}={value!r} is not a value that {key}= takes in scheme "
                    f"{scheme!r}; write one of {choices}"
                )
        elif kw.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DeclarationError(
                    f"{where}: {key}={value!r} must be a positive int, e.g. {key}=1"
                )
        elif callable(value) and not isinstance(value, type):
            pass  # a function of the declaring module: checked when the plan is made
        elif value is not None and not _is_number(value):
            raise DeclarationError(
                f"{where}: {key}={value!r} ({type(value).__name__}) must be a number, e.g. "
                f"{key}={kw.default if kw.default not in (None, _REQUIRED) else 0.1}"
            )
        elif isinstance(value, float) and not math.isfinite(value):
            raise DeclarationError(f"{where}: {key}={value!r} must be finite")
        elif isinstance(value, int) and abs(value) > sys.float_info.max:
            raise DeclarationError(
                f"{where}: {key}= is an int of {len(str(abs(value)))} digits, too large to be "
                f"a float; write a finite number"
            )
        out[key] = cast("KwValue", value)  # checked above, by kind
    if not any(callable(v) for v in out.values()):
        _check_ranges(scheme, out, where)
    return out


def resolve_kwargs(
    scheme: str, kw: Mapping[str, KwValue], owner: object, where: str
) -> Mapping[str, KwValue]:
    """``kw`` with each function of the declaring module called on ``owner``, then checked.

    Raises:
        DeclarationError: a function failed or returned a bad value.
    """
    if not any(callable(v) for v in kw.values()):
        return kw
    out: dict[str, object] = {}
    for key, value in kw.items():
        if callable(value):
            try:
                # typed Callable[[Never], float]: it takes the user's own module class
                call = cast("Callable[[object], object]", value)
                out[key] = call(owner)
            except Exception as exc:
                raise DeclarationError(f"{where}: {key}= function raised {exc!r}") from exc
        else:
            out[key] = value
    return check_kwargs(scheme, out, where)


def _check_ranges(scheme: str, kw: Mapping[str, KwValue], where: str) -> None:
    def bad(msg: str) -> DeclarationError:
        return DeclarationError(f"{where}: scheme {scheme!r}: {msg}")

    if scheme == "uniform" and _num(kw, "a") > _num(kw, "b"):
        raise bad(f"a={kw['a']} is above b={kw['b']}; write a <= b")
    if scheme in ("kaiming_uniform", "kaiming_normal"):
        try:
            _kaiming_gain(kw)
        except OverflowError:
            raise bad(
                f"a={kw['a']} is too large: its gain sqrt(2 / (1 + a**2)) overflows"
            ) from None
    if scheme in ("xavier_uniform", "xavier_normal") and _num(kw, "gain") < 0:
        raise bad(f"gain={kw['gain']} is negative; write gain >= 0")
    if scheme in ("normal", "sparse") and _num(kw, "std") < 0:
        raise bad(f"std={kw['std']} is negative; write std >= 0")
    if scheme == "trunc_normal":
        if _num(kw, "std") <= 0:
            raise bad(f"std={kw['std']} must be positive")
        lo, hi = trunc_bounds(kw)
        if not lo < hi:
            raise bad(f"the bounds a={lo}, b={hi} are empty; write a < b")
    if scheme == "sparse" and not 0 <= _num(kw, "sparsity") <= 1:
        raise bad(f"sparsity={kw['sparsity']} must lie in [0, 1]")


def trunc_bounds(kw: Mapping[str, KwValue]) -> tuple[float, float]:
    """``trunc_normal``'s bounds: as given, or ``mean -/+ 2 * std`` when left out.

    PyTorch's own defaults are the absolute values -2 and 2, which barely truncate a normal of
    std 0.02; a truncation relative to the std is what users of this scheme mean.
    """
    mean, std = _num(kw, "mean"), _num(kw, "std")
    lo = mean - 2.0 * std if kw["a"] is None else _num(kw, "a")
    hi = mean + 2.0 * std if kw["b"] is None else _num(kw, "b")
    return lo, hi


def shape_problem(scheme: str, kw: Mapping[str, KwValue], shape: tuple[int, ...]) -> str | None:
    """Why ``scheme`` cannot fill a tensor of ``shape``, or None if it can."""
    info = SCHEMES[scheme]
    low, high = info.dims
    if len(shape) < low or (high is not None and len(shape) > high):
        return f"needs {info.dims_reason}"
    if scheme == "dirac" and shape[0] % int(_num(kw, "groups")) != 0:
        return f"needs dim 0 ({shape[0]}) divisible by groups={kw['groups']}"
    return None


def _kaiming_gain(kw: Mapping[str, KwValue]) -> float:
    return init.calculate_gain(_NONLINEARITIES[str(kw["nonlinearity"])], _num(kw, "a"))


def range_problem(scheme: str, kw: Mapping[str, KwValue], tensor: torch.Tensor) -> str | None:
    """Why ``scheme`` cannot fill ``tensor`` in its dtype (a number it would pass to torch is
    beyond the dtype's range, which torch refuses midway or turns into inf), or None."""
    if tensor.numel() == 0 or tensor.is_complex():
        return None
    if not tensor.is_floating_point():
        if scheme != "constant" or tensor.dtype == torch.bool:
            return None  # random schemes on integers are refused elsewhere; 0 and 1 fit
        val = _num(kw, "val")
        info = torch.iinfo(tensor.dtype)
        if not (math.isfinite(val) and val == int(val) and info.min <= val <= info.max):
            return (
                f"would write val={val:.6g}, which {tensor.dtype} cannot hold (whole numbers "
                f"in [{info.min}, {info.max}])"
            )
        return None
    values: list[tuple[str, float]] = []
    if scheme == "uniform":
        a, b = _num(kw, "a"), _num(kw, "b")
        values = [("a", a), ("b", b), ("b - a", b - a)]
    elif scheme == "normal":
        values = [("mean", _num(kw, "mean")), ("std", _num(kw, "std"))]
    elif scheme == "sparse":
        values = [("std", _num(kw, "std"))]
    elif scheme == "trunc_normal":
        lo, hi = trunc_bounds(kw)
        std = _num(kw, "std")
        values = [("mean", _num(kw, "mean")), ("std * sqrt(2)", std * math.sqrt(2))]
        values += [("a", lo), ("b", hi)]
    elif scheme == "constant":
        values = [("val", _num(kw, "val"))]
    elif scheme == "orthogonal":
        values = [("gain", _num(kw, "gain"))]
    elif scheme in ("xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal"):
        fan_in, fan_out = fans(tensor)
        if scheme.startswith("xavier"):
            std = _num(kw, "gain") * math.sqrt(2.0 / (fan_in + fan_out))
        else:
            std = _kaiming_gain(kw) / math.sqrt(fan_in if kw["mode"] == "fan_in" else fan_out)
        uniform = scheme.endswith("uniform")
        values = [("2 * bound", 2 * math.sqrt(3.0) * std) if uniform else ("std", std)]
    largest = torch.finfo(tensor.dtype).max
    for label, value in values:
        if abs(value) > largest:
            return (
                f"would need {label}={value:.6g}, beyond {tensor.dtype}'s largest value "
                f"{largest:.6g}"
            )
    return None


def _orthogonal(gain: float) -> Fill:
    def fill(t: torch.Tensor, g: torch.Generator) -> None:
        if t.dtype in (torch.float32, torch.float64):
            init.orthogonal_(t, gain, generator=g)
            return
        # QR has no half-precision kernel: draw the float32 matrix, then round it.
        buf = torch.empty(tuple(t.shape), dtype=torch.float32, device="cpu")
        init.orthogonal_(buf, gain, generator=g)
        with torch.no_grad():
            t.copy_(buf)

    return fill


def _sparse(sparsity: float, std: float) -> Fill:
    def fill(t: torch.Tensor, g: torch.Generator) -> None:
        rows, cols = t.shape
        num_zeros = math.ceil(sparsity * rows)
        with torch.no_grad():
            t.normal_(0, std, generator=g)
            for col in range(cols):
                rows_perm = torch.randperm(rows, generator=g, device=g.device)
                t[rows_perm[:num_zeros].to(t.device), col] = 0

    return fill


def _num(kw: Mapping[str, KwValue], key: str) -> float:
    value = kw[key]
    assert isinstance(value, int | float)
    return float(value)


def make_fill(scheme: str, kw: Mapping[str, KwValue]) -> Fill | None:
    """The fill of a named scheme; None for ``default``, which each layer type defines."""
    if scheme == "uniform":
        return Uniform(_num(kw, "a"), _num(kw, "b"))
    if scheme == "normal":
        return Normal(_num(kw, "mean"), _num(kw, "std"))
    if scheme == "trunc_normal":
        lo, hi = trunc_bounds(kw)
        mean, std = _num(kw, "mean"), _num(kw, "std")
        return lambda t, g: init.trunc_normal_(t, mean, std, lo, hi, generator=g)
    if scheme == "orthogonal":
        return _orthogonal(_num(kw, "gain"))
    if scheme in ("xavier_uniform", "xavier_normal"):
        gain = _num(kw, "gain")
        xavier = init.xavier_uniform_ if scheme == "xavier_uniform" else init.xavier_normal_
        return lambda t, g: xavier(t, gain, generator=g)
    if scheme in ("kaiming_uniform", "kaiming_normal"):
        slope = _num(kw, "a")
        mode: FanMode = "fan_out" if kw["mode"] == "fan_out" else "fan_in"
        nonlinearity = _NONLINEARITIES[str(kw["nonlinearity"])]
        if scheme == "kaiming_uniform":
            return KaimingUniform(slope, mode, nonlinearity)
        return lambda t, g: init.kaiming_normal_(t, slope, mode, nonlinearity, generator=g)
    if scheme == "sparse":
        return _sparse(_num(kw, "sparsity"), _num(kw, "std"))
    if scheme == "zeros":
        return Zeros()
    if scheme == "ones":
        return Ones()
    if scheme == "constant":
        return Constant(_num(kw, "val"))
    if scheme == "eye":
        return lambda t, g: init.eye_(t)
    if scheme == "dirac":
        groups = int(_num(kw, "groups"))
        return lambda t, g: init.dirac_(t, groups)
    return None


def rule_text(scheme: str, kw: Mapping[str, KwValue]) -> str:
    """``scheme(k=v, ...)`` showing only the keywords that differ from their defaults."""
    info = SCHEMES[scheme]
    parts = [
        f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v!r}"
        for k, v in kw.items()
        if info.kwargs[k].default != v
    ]
    return f"{scheme}({', '.join(parts)})" if parts else scheme
