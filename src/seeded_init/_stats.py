"""The distribution check: each tensor's empirical mean and std against its rule's theory.

For every record of an init plan whose rule is a known distribution, the tensor's values are
taken as ``n`` independent draws from it, and the sample mean and the sample std (with
Bessel's correction) are compared with the theoretical mean ``mu`` and std ``sigma`` in units
of their standard errors:

- ``SE(mean) = sigma / sqrt(n)``.
- ``SE(std) = (sigma / 2) * sqrt(kappa / n + 2 / (n - 1))``, ``kappa`` the excess kurtosis.
  For i.i.d. draws the sample variance ``s**2`` has, exactly,
  ``Var(s**2) = sigma**4 * (kappa / n + 2 / (n - 1))`` (``mu4 / n - sigma**4 (n - 3) /
  (n (n - 1))`` with ``mu4 = (kappa + 3) sigma**4``); by the delta method,
  ``s = sqrt(s**2)`` has ``Var(s) ~= Var(s**2) / (4 sigma**2)``. For large ``n`` it is
  ``sigma * sqrt((kappa + 2) / (4 n))``: ``sigma / sqrt(2 n)`` for a normal, and
  ``sigma * sqrt(0.2 / n)`` for a uniform (``kappa = -6/5``).

A tensor passes when ``|z| <= tolerance`` for both, and when its values lie in the support of
the distribution (a uniform's or truncated normal's ``[a, b]``, to the dtype's rounding).
Constant rules (``zeros``, ``ones``, ``constant``) pass when every value equals the constant.

``orthogonal`` is checked too, but not as i.i.d. draws: its ``rows x cols`` flattening has
orthonormal rows (or columns) scaled by ``gain``, so its mean square is exactly
``gain**2 / max(rows, cols)`` and is checked to the dtype's rounding, not against a sampling
error; its mean is z-tested with ``SE(mean) = sigma / sqrt(n)``, which is exact for a
Haar-random (semi-)orthogonal matrix: ``1^T W 1 = sqrt(rows cols) u^T W v`` for unit ``u, v``,
and ``W v`` is a uniform unit vector of ``R^max(rows, cols)``, so ``Var(sum W) = min(rows, cols)``
and ``Var(mean) = gain**2 / (max**2 min) = sigma**2 / n``.

An embedding's padding row (``padding_idx``, zero under every scheme) is not part of the drawn
distribution: it is left out of the statistics and must be exactly zero. Records carry no
padding index; it is read from the model (an ``nn.Embedding`` or ``nn.EmbeddingBag`` at the
record's layer whose ``weight`` the record is).

Not checked (``ok`` is None, with the reason in ``note``): tensors a layer's own
``reset_parameters()`` draws (``fallback``), function schemes, ``sparse``, ``eye``, ``dirac``,
rules of other names, second names of tied tensors (their origin is checked), tensors of fewer
than 2 elements, and complex tensors.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import torch
from torch import nn
from torch.nn import init

from ._errors import DeclarationError
from ._records import InitPlan, ParamInit
from ._schemes import KwValue, check_kwargs, trunc_bounds
from ._torch import local_part
from ._types import Nonlinearity

__all__ = [
    "DistributionCheck",
    "Expected",
    "Family",
    "ParamCheck",
    "check_distributions",
    "expected_moments",
    "trunc_normal_moments",
]

#: The distribution a rule draws from.
Family = Literal["uniform", "normal", "truncated normal", "constant", "orthogonal"]

_RANDOM: frozenset[str] = frozenset(
    {
        "uniform",
        "normal",
        "trunc_normal",
        "xavier_uniform",
        "xavier_normal",
        "kaiming_uniform",
        "kaiming_normal",
        "orthogonal",
    }
)
_CONSTANT: frozenset[str] = frozenset({"zeros", "ones", "constant"})
_NOT_CHECKED: Mapping[str, str] = {
    "sparse": "sparse zeroes a random share of each column: its values are not one distribution",
    "eye": "eye is a fixed pattern, not a distribution",
    "dirac": "dirac is a fixed pattern, not a distribution",
    "default": "the rule does not say which distribution the layer type draws",
}
_SQRT3 = math.sqrt(3.0)
_CHUNK = 1 << 22  # elements converted to float64 at a time


@dataclass(frozen=True)
class Expected:
    """The theoretical distribution of one plan record.

    Attributes:
        scheme: the ``torch.nn.init`` scheme the record's (last) rule names.
        family: the distribution: ``"uniform"``, ``"normal"``, ``"truncated normal"``,
            ``"constant"`` (every value is ``mean``) or ``"orthogonal"``.
        mean: its mean.
        std: its standard deviation (for ``orthogonal``, the root mean square of the entries).
        kurtosis: its excess kurtosis (``-6/5`` uniform, ``0`` normal; ``orthogonal``'s
            entries are near normal, ``0`` is given, and its std is not z-tested).
        low: the lower end of its support (``-inf`` for a normal).
        high: the upper end (``inf`` for a normal).
        loc: for a truncated normal, the mean of the normal it truncates (else ``mean``).
        scale: for a truncated normal, the std of the normal it truncates (else ``std``).
        mass: for a truncated normal, the probability ``[low, high]`` holds (else 1).
    """

    scheme: str
    family: Family
    mean: float
    std: float
    kurtosis: float
    low: float
    high: float
    loc: float
    scale: float
    mass: float = 1.0

    def se_mean(self, n: int) -> float:
        """The standard error of the mean of ``n`` draws: ``std / sqrt(n)``."""
        return self.std / math.sqrt(n)

    def se_std(self, n: int) -> float:
        """The standard error of the sample std (Bessel-corrected) of ``n >= 2`` i.i.d. draws:
        ``(std / 2) * sqrt(kurtosis / n + 2 / (n - 1))`` (see the module's docstring)."""
        return 0.5 * self.std * math.sqrt(self.kurtosis / n + 2.0 / (n - 1))

    def density(self, x: float) -> float:
        """The probability density at ``x`` (0 for a constant and outside the support;
        ``orthogonal``'s is its normal approximation)."""
        if self.family == "constant" or not self.low <= x <= self.high:
            return 0.0
        if self.family == "uniform":
            return 1.0 / (self.high - self.low)
        return _phi((x - self.loc) / self.scale) / (self.scale * self.mass)


def _phi(x: float) -> float:
    """The standard normal density (0 at infinity)."""
    if math.isinf(x):
        return 0.0
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def _mass(alpha: float, beta: float) -> float:
    """``Phi(beta) - Phi(alpha)``, by the complementary error function on the side where it
    does not cancel."""
    r = math.sqrt(2.0)
    if alpha > 0:
        return 0.5 * (math.erfc(alpha / r) - math.erfc(beta / r))
    return 0.5 * (math.erfc(-beta / r) - math.erfc(-alpha / r))


def trunc_normal_moments(
    mean: float, std: float, a: float, b: float
) -> tuple[float, float, float, float]:
    """The mean, std and excess kurtosis of a normal(mean, std) truncated to ``[a, b]``, and
    the probability mass ``[a, b]`` holds.

    The raw moments ``m_k`` of the standard normal truncated to ``[alpha, beta]`` follow
    ``m_0 = 1``, ``m_1 = (phi(alpha) - phi(beta)) / Z`` and
    ``m_k = (k - 1) m_(k-2) + (alpha**(k-1) phi(alpha) - beta**(k-1) phi(beta)) / Z``, with
    ``Z = Phi(beta) - Phi(alpha)``, but that recurrence cancels catastrophically for a narrow
    interval or one far in a tail; the moments are integrated numerically instead (see
    ``_truncated_moments``), to about 1e-12 for every interval. ``Z`` is ``Phi``'s.

    Raises:
        ValueError: the bounds are empty, or keep no computable mass.
    """
    if not (std > 0 and a < b):
        raise ValueError(f"a truncated normal needs std > 0 and a < b, got std={std}, [{a}, {b}]")
    alpha, beta = (a - mean) / std, (b - mean) / std
    z = _mass(alpha, beta)
    if not z > 0:
        raise ValueError(
            f"[{a}, {b}] is {max(abs(alpha), abs(beta)):.3g} std from the mean {mean}: too far "
            f"in the tail to compute its moments in float64"
        )

    mu, var, mu4 = _truncated_moments(max(alpha, -_REACH), min(beta, _REACH))
    if not var > 0:
        raise ValueError(f"[{a}, {b}] is too narrow for std={std} to compute its moments")
    return mean + std * mu, std * math.sqrt(var), mu4 / (var * var) - 3.0, z


_REACH = 40.0  # standard deviations: the density beyond holds no float64 mass
_STEPS = 4096  # Simpson intervals


def _truncated_moments(alpha: float, beta: float) -> tuple[float, float, float]:
    """Mean, variance and 4th central moment of the standard normal truncated to the finite
    ``[alpha, beta]``, by Simpson's rule on a density scaled to 1 at its peak in the interval
    (so no underflow far in a tail) and central moments taken about the mean (so no
    cancellation for a narrow interval, where the closed-form recurrence loses every digit)."""
    peak = min(max(0.0, alpha), beta)
    h = (beta - alpha) / _STEPS
    xs = [alpha + i * h for i in range(_STEPS + 1)]
    ws = [
        (1 if i in (0, _STEPS) else 4 if i % 2 else 2) * math.exp((peak * peak - x * x) / 2)
        for i, x in enumerate(xs)
    ]
    total = math.fsum(ws)
    mu = math.fsum(w * x for w, x in zip(ws, xs, strict=True)) / total
    var = math.fsum(w * (x - mu) ** 2 for w, x in zip(ws, xs, strict=True)) / total
    mu4 = math.fsum(w * (x - mu) ** 4 for w, x in zip(ws, xs, strict=True)) / total
    return mu, var, mu4


def _last_rule(rule: str) -> str:
    """The last rule of a chain ``uniform(+-0.25) -> zeros`` (the one that wins)."""
    return rule.rsplit(" -> ", 1)[-1].strip()


def _num(kw: Mapping[str, KwValue], key: str) -> float:
    value = kw[key]
    assert isinstance(value, int | float)
    return float(value)


def theory_of(record: ParamInit) -> Expected | str:
    """The theory of ``record``, or why it is not checked.

    Raises:
        ValueError: the record's keywords do not fit its scheme.
    """
    if record.tied_to is not None:
        return f"tied to {record.tied_to}: checked there"
    if record.fallback:
        return (
            "drawn by the layer's own reset_parameters(), whose distribution seeded-init does "
            "not know"
        )
    last = _last_rule(record.rule)
    scheme = last.split("(", 1)[0].strip()
    if scheme.startswith("fn:"):
        return f"a function scheme ({scheme[3:]}): its distribution is not known"
    if scheme in _NOT_CHECKED:
        return _NOT_CHECKED[scheme]
    if scheme not in _RANDOM and scheme not in _CONSTANT:
        return f"rule {last!r} is not a scheme the check knows"
    given = dict(record.keywords)
    if not given and "(" in last:
        return f"the record holds no keywords for rule {last!r}"
    try:
        kw = check_kwargs(scheme, given, f"plan record {record.path!r}")
    except DeclarationError as exc:
        raise ValueError(
            f"{exc}. The record's keywords {given} do not fit its rule {record.rule!r}: "
            f"pass the plan the model was initialized by (model.init_plan())"
        ) from None
    if scheme in _CONSTANT:
        value = {"zeros": 0.0, "ones": 1.0}.get(scheme)
        value = _num(kw, "val") if value is None else value
        return _constant(scheme, value)
    if scheme == "uniform":
        return _uniform(scheme, _num(kw, "a"), _num(kw, "b"))
    if scheme == "normal":
        return _normal(scheme, _num(kw, "mean"), _num(kw, "std"))
    if scheme == "trunc_normal":
        mean, std = _num(kw, "mean"), _num(kw, "std")
        lo, hi = trunc_bounds(kw)
        try:
            m, s, k, z = trunc_normal_moments(mean, std, lo, hi)
        except ValueError as exc:
            return str(exc)
        return Expected(scheme, "truncated normal", m, s, k, lo, hi, mean, std, z)
    if scheme == "orthogonal":  # torch flattens it to rows x cols
        rows = record.shape[0] if len(record.shape) >= 2 else 0
        cols = math.prod(record.shape) // rows if rows else 0
        if not rows or not cols:
            return "orthogonal needs a tensor of at least 2 dimensions and 1 element"
        rms = abs(_num(kw, "gain")) / math.sqrt(max(rows, cols))
        if rms == 0:
            return _constant(scheme, 0.0)
        return Expected(scheme, "orthogonal", 0.0, rms, 0.0, -math.inf, math.inf, 0.0, rms)
    fan_in, fan_out = record.fan_in, record.fan_out
    if fan_in is None or fan_out is None:
        return f"the record holds no fan_in and fan_out, which {scheme} needs"
    if scheme.startswith("xavier"):
        if fan_in + fan_out == 0:
            return "fan_in + fan_out is 0"
        std = _num(kw, "gain") * math.sqrt(2.0 / (fan_in + fan_out))
    else:
        fan = fan_in if kw["mode"] == "fan_in" else fan_out
        if fan == 0:
            return f"{kw['mode']} is 0"
        gain = init.calculate_gain(cast(Nonlinearity, kw["nonlinearity"]), _num(kw, "a"))
        std = gain / math.sqrt(fan)
    if scheme.endswith("uniform"):
        return _uniform(scheme, -_SQRT3 * std, _SQRT3 * std)
    return _normal(scheme, 0.0, std)


def _constant(scheme: str, value: float) -> Expected:
    return Expected(scheme, "constant", value, 0.0, 0.0, value, value, value, 0.0)


def _uniform(scheme: str, a: float, b: float) -> Expected:
    if a == b:
        return _constant(scheme, a)
    mean, std = 0.5 * (a + b), (b - a) / math.sqrt(12.0)
    return Expected(scheme, "uniform", mean, std, -1.2, a, b, mean, std)


def _normal(scheme: str, mean: float, std: float) -> Expected:
    if std == 0:
        return _constant(scheme, mean)
    return Expected(scheme, "normal", mean, std, 0.0, -math.inf, math.inf, mean, std)


def expected_moments(record: ParamInit) -> Expected | None:
    """The theoretical distribution of one plan record, or None where it is not checked
    (see the module's docstring for which and why).

    Raises:
        ValueError: the record's keywords do not fit its scheme.
    """
    theory = theory_of(record)
    return theory if isinstance(theory, Expected) else None


@dataclass(frozen=True)
class ParamCheck:
    """The distribution check of one tensor.

    Attributes:
        path: the tensor's path, as in the plan.
        rule: the plan's rule for it.
        family: the distribution its rule draws from (None where not checked).
        n: the number of values the statistics cover (an embedding's padding row left out).
        expected_mean: the rule's mean (None where not checked).
        expected_std: the rule's std (None where not checked).
        mean: the values' mean, in float64 (None for fewer than 2 values).
        std: the values' sample std, with Bessel's correction, in float64.
        z_mean: ``(mean - expected_mean) / SE(mean)`` (None where not z-tested: constants).
        z_std: ``(std - expected_std) / SE(std)`` (None for constants and ``orthogonal``,
            whose mean square is checked exactly instead).
        ok: whether it passed; None where it is not checked.
        note: why it failed or is not checked, or what else was checked.
    """

    path: str
    rule: str
    family: Family | None
    n: int
    expected_mean: float | None
    expected_std: float | None
    mean: float | None
    std: float | None
    z_mean: float | None
    z_std: float | None
    ok: bool | None
    note: str = ""


@dataclass(frozen=True)
class DistributionCheck:
    """The distribution check of every tensor of a plan, in the plan's order.

    Attributes:
        entries: one check per plan record.
        tolerance: the largest ``|z|`` that passes.
    """

    entries: tuple[ParamCheck, ...]
    tolerance: float = 5.0

    @property
    def ok(self) -> bool:
        """True when no checked tensor failed (also when none was checked)."""
        return all(e.ok is not False for e in self.entries)

    @property
    def failures(self) -> tuple[ParamCheck, ...]:
        """The tensors that failed."""
        return tuple(e for e in self.entries if e.ok is False)

    @property
    def unchecked(self) -> tuple[ParamCheck, ...]:
        """The tensors not checked, each with its reason in ``note``."""
        return tuple(e for e in self.entries if e.ok is None)

    def __bool__(self) -> bool:
        return self.ok

    def __iter__(self) -> Iterator[ParamCheck]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, path: str) -> ParamCheck:
        """The check of the tensor at ``path``."""
        for entry in self.entries:
            if entry.path == path:
                return entry
        raise KeyError(f"no tensor {path!r} in this check; known: {[e.path for e in self]}")

    def __str__(self) -> str:
        passed = sum(e.ok is True for e in self.entries)
        head = (
            f"distribution check (|z| <= {self.tolerance:g}): {passed} ok, "
            f"{len(self.failures)} failed, {len(self.unchecked)} not checked"
        )
        rows: list[tuple[str, ...]] = [
            ("tensor", "rule", "distribution", "n", "mean", "expected", "z", "std", "expected")
        ]
        rows[0] += ("z", "result")
        for e in self.entries:
            if e.ok is None:
                result = f"not checked: {e.note}"
            else:
                result = ("ok" if e.ok else "FAIL") + (f": {e.note}" if e.note else "")
            rows.append(
                (
                    e.path,
                    e.rule,
                    e.family or "-",
                    str(e.n),
                    _g(e.mean),
                    _g(e.expected_mean),
                    _z(e.z_mean),
                    _g(e.std),
                    _g(e.expected_std),
                    _z(e.z_std),
                    result,
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join([head, *lines])


def _g(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def _z(x: float | None) -> str:
    return "-" if x is None else f"{x:+.2f}"


@dataclass(frozen=True)
class Drawn:
    """A record's tensor, as the statistics see it."""

    record: ParamInit
    parts: tuple[torch.Tensor, ...]  # the drawn values (an embedding's padding row left out)
    padding: torch.Tensor | None  # the padding row, which must be zero
    padding_idx: int | None


def _tensor_at(model: nn.Module, state: Mapping[str, Any], path: str) -> torch.Tensor | None:
    """The tensor at ``path``: its ``state_dict`` entry, or (for a parametrized layer, whose
    record names the effective weight) the attribute the path names."""
    found = state.get(path)
    if isinstance(found, torch.Tensor):
        return found
    prefix, _, name = path.rpartition(".")
    try:
        owner = model.get_submodule(prefix)
    except AttributeError:
        return None
    try:
        value: object = getattr(owner, name)
    except Exception:  # a parametrization that fails to compute, or no such attribute
        return None
    return value if isinstance(value, torch.Tensor) else None


def _padding_of(model: nn.Module, path: str) -> int | None:
    """The padding row of the embedding whose weight ``path`` is, or None."""
    prefix, _, name = path.rpartition(".")
    if name != "weight":
        return None
    try:
        owner = model.get_submodule(prefix)
    except AttributeError:
        return None
    if isinstance(owner, nn.Embedding | nn.EmbeddingBag) and owner.padding_idx is not None:
        return int(owner.padding_idx)
    return None


def gather(model: nn.Module, plan: InitPlan, caller: str) -> list[Drawn]:
    """Every record's tensor, found and validated before any statistic is computed.

    Raises:
        TypeError: ``model`` or ``plan`` is of the wrong type.
        ValueError: a record names no tensor of the model, of another shape, or on meta.
    """
    if not isinstance(model, nn.Module):  # pyright: ignore[reportUnnecessaryIsInstance]  # untyped callers
        raise TypeError(f"{caller}: model is {type(model).__name__}, not an nn.Module")
    if not isinstance(plan, InitPlan):  # pyright: ignore[reportUnnecessaryIsInstance]  # untyped callers
        raise TypeError(
            f"{caller}: plan is {type(plan).__name__}, not an InitPlan; pass model.init_plan()"
        )
    state = model.state_dict(keep_vars=True)
    out: list[Drawn] = []
    for record in plan:
        t = _tensor_at(model, state, record.path)
        if t is None:
            known = [k for k, v in state.items() if isinstance(v, torch.Tensor)]
            shown = ", ".join(repr(k) for k in known[:8]) + (", ..." if len(known) > 8 else "")
            raise ValueError(
                f"{caller}: the plan has a record {record.path!r}, which names no tensor of "
                f"the model ({type(model).__name__}, whose {len(known)} tensors are {shown}). "
                f"Pass the plan of this model (model.init_plan())"
            )
        t = t.detach()
        if t.is_meta or local_part(t)[0].is_meta:
            raise ValueError(
                f"{caller}: {record.path!r} is on the meta device, which holds no values; "
                f"allocate the model first (model.to_empty(device=...)), then reset it "
                f"(model.reset_parameters()), then check it"
            )
        if local_part(t)[1] is not None:
            sharded: Any = t
            t = cast(torch.Tensor, sharded.full_tensor())  # a collective: every rank calls it
        if tuple(t.shape) != tuple(record.shape):
            raise ValueError(
                f"{caller}: {record.path!r} has shape {tuple(t.shape)}, and the plan's record "
                f"says {tuple(record.shape)}; pass the plan of this model (model.init_plan())"
            )
        padding_idx = _padding_of(model, record.path) if record.tied_to is None else None
        if padding_idx is not None and t.dim() == 2 and 0 <= padding_idx < t.shape[0]:
            parts = (t[:padding_idx], t[padding_idx + 1 :])
            out.append(Drawn(record, parts, t[padding_idx], padding_idx))
        else:
            out.append(Drawn(record, (t,), None, None))
    return out


def _chunks(parts: Sequence[torch.Tensor]) -> Iterator[torch.Tensor]:
    """The values of ``parts``, in float64 pieces of at most ``_CHUNK`` elements."""
    for part in parts:
        flat = part.reshape(-1)
        for start in range(0, flat.numel(), _CHUNK):
            piece = flat[start : start + _CHUNK]
            device = piece.device if piece.device.type in ("cpu", "cuda") else torch.device("cpu")
            yield piece.to(device=device, dtype=torch.float64)


@dataclass(frozen=True)
class _Sample:
    n: int
    mean: float
    std: float  # Bessel-corrected
    rms: float
    low: float
    high: float
    finite: bool


def _summarize(parts: Sequence[torch.Tensor]) -> _Sample:
    """Count, mean, sample std, root mean square and range of the values (two passes)."""
    n, total, low, high = 0, 0.0, math.inf, -math.inf
    for c in _chunks(parts):
        if not bool(torch.isfinite(c).all()):
            return _Sample(n + c.numel(), math.nan, math.nan, math.nan, math.nan, math.nan, False)
        n += c.numel()
        total += float(c.sum())
        low, high = min(low, float(c.min())), max(high, float(c.max()))
    mean = total / n
    dev = squares = 0.0
    for c in _chunks(parts):
        dev += float((c - mean).square().sum())
        squares += float(c.square().sum())
    std = math.sqrt(dev / (n - 1)) if n > 1 else math.nan
    return _Sample(n, mean, std, math.sqrt(squares / n), low, high, True)


def _count_unequal(parts: Sequence[torch.Tensor], value: float) -> int:
    return sum(int((c != value).sum()) for c in _chunks(parts))


def _eps(dtype: torch.dtype) -> float:
    return float(torch.finfo(dtype).eps) if dtype.is_floating_point else 0.0


def _in_dtype(value: float, dtype: torch.dtype) -> float:
    """``value`` as the dtype holds it (the constant a tensor of that dtype can equal)."""
    return float(torch.tensor(value, dtype=torch.float64).to(dtype).to(torch.float64))


def _check_one(v: Drawn, tolerance: float) -> ParamCheck:
    record = v.record
    theory = theory_of(record)
    n = sum(p.numel() for p in v.parts)
    dtype = v.parts[0].dtype

    def entry(
        sample: _Sample | None,
        ok: bool | None,
        note: str,
        theory: Expected | None = None,
        z_mean: float | None = None,
        z_std: float | None = None,
    ) -> ParamCheck:
        return ParamCheck(
            record.path,
            record.rule,
            None if theory is None else theory.family,
            n,
            None if theory is None else theory.mean,
            None if theory is None else theory.std,
            None if sample is None or not sample.finite else sample.mean,
            None if sample is None or not sample.finite else sample.std,
            z_mean,
            z_std,
            ok,
            note,
        )

    if isinstance(theory, str) and record.tied_to is not None:
        return entry(None, None, theory)
    if dtype.is_complex:
        return entry(None, None, "a complex tensor")
    if n < 2:
        return entry(None, None, f"{n} value{'s' if n != 1 else ''}: too few for statistics")
    sample = _summarize(v.parts)
    if isinstance(theory, str):
        return entry(sample, None, theory)
    notes: list[str] = []
    if v.padding is not None:
        bad = _count_unequal((v.padding,), 0.0)
        if bad:
            return entry(
                sample, False, f"padding row {v.padding_idx} holds {bad} nonzero values", theory
            )
        notes.append(f"padding row {v.padding_idx} (zero) left out")
    if not sample.finite:
        return entry(sample, False, "holds NaN or infinite values", theory)
    if theory.family == "constant":
        want = _in_dtype(theory.mean, dtype)
        bad = _count_unequal(v.parts, want)
        if bad:
            return entry(sample, False, f"{bad} of {n} values are not {theory.mean:g}", theory)
        return entry(sample, True, "; ".join(notes), theory)
    z_mean = (sample.mean - theory.mean) / theory.se_mean(n)
    ok = abs(z_mean) <= tolerance
    if not ok:
        notes.append(f"mean is {z_mean:+.1f} SE from {theory.mean:.4g}")
    if theory.family == "orthogonal":
        if v.padding is not None:
            return entry(
                sample,
                None,
                "orthogonal with a zeroed padding row: its mean square is not fixed",
                theory,
            )
        # rounding: to the dtype (a half-precision tensor holds a float32 QR rounded), and
        # the QR's own (float32 or float64), which is near 1e-7 in float32 at any size
        qr = torch.float64 if dtype == torch.float64 else torch.float32
        limit = _eps(dtype) + 64 * _eps(qr)
        off = sample.rms / theory.std - 1.0
        if abs(off) > limit:
            ok = False
            notes.append(
                f"root mean square {sample.rms:.6g} is {off:+.3g} relative to "
                f"gain/sqrt(max(rows, cols)) = {theory.std:.6g} (rounding allows {limit:.2g})"
            )
        else:
            notes.append(f"mean square gain**2/max(rows, cols) to {abs(off):.2g}")
        return entry(sample, ok, "; ".join(notes), theory, z_mean)
    z_std = (sample.std - theory.std) / theory.se_std(n)
    if abs(z_std) > tolerance:
        ok = False
        notes.append(f"std is {z_std:+.1f} SE from {theory.std:.4g}")
    if math.isfinite(theory.low) or math.isfinite(theory.high):
        slack = 2 * _eps(dtype) * max(abs(theory.low), abs(theory.high))
        if sample.low < theory.low - slack or sample.high > theory.high + slack:
            ok = False
            notes.append(
                f"values [{sample.low:.4g}, {sample.high:.4g}] leave the support "
                f"[{theory.low:.4g}, {theory.high:.4g}]"
            )
    return entry(sample, ok, "; ".join(notes), theory, z_mean, z_std)


def check_distributions(
    model: nn.Module, plan: InitPlan, *, tolerance: float = 5.0
) -> DistributionCheck:
    """Check each tensor of ``model`` against the distribution ``plan`` gives it.

    Every record's tensor (found by its path in ``model.state_dict()``, a DTensor whole by its
    ``full_tensor()``, a collective every rank calls) has its mean and sample std compared with
    the rule's in units of their standard errors (see the module's docstring); it passes when
    both ``|z| <= tolerance`` and its values lie in the rule's support. Nothing is written.

    Args:
        model: the initialized model (``plan`` usually comes from ``model.init_plan()``).
        plan: its init plan.
        tolerance: the largest ``|z|`` that passes (5 SE: a false alarm about once in 1.7
            million tests of a correct init).

    Raises:
        ValueError: a record names no tensor of ``model`` or one of another shape; a tensor is
            on the meta device; a record's keywords do not fit its scheme; a bad tolerance.
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float):  # pyright: ignore[reportUnnecessaryIsInstance]  # untyped callers
        raise TypeError(
            f"check_distributions: tolerance={tolerance!r} is not a number; write e.g. "
            f"tolerance=5.0"
        )
    if not (math.isfinite(tolerance) and tolerance > 0):
        raise ValueError(
            f"check_distributions: tolerance={tolerance!r} must be a positive, finite number "
            f"of standard errors, e.g. tolerance=5.0"
        )
    return check_drawn(gather(model, plan, "check_distributions"), float(tolerance))


def check_drawn(values: Sequence[Drawn], tolerance: float) -> DistributionCheck:
    """``check_distributions`` of tensors already gathered.

    Raises:
        ValueError: a record's keywords do not fit its scheme (before any statistic).
    """
    for v in values:
        theory_of(v.record)
    return DistributionCheck(tuple(_check_one(v, tolerance) for v in values), tolerance)
