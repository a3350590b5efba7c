"""The distribution check as a picture: per-tensor histograms against the theoretical density.

matplotlib is an optional dependency (the ``plot`` extra), imported only when a picture is
drawn. The figure is drawn on matplotlib's Agg canvas directly, without
pyplot, so the caller's matplotlib backend and pyplot state are left as they are.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Protocol, cast

import torch
from torch import nn

from ._records import InitPlan
from ._stats import Drawn, Expected, ParamCheck, check_drawn, gather, theory_of

__all__ = ["plot_distributions"]


class _Axes(Protocol):
    """The calls made on a matplotlib ``Axes`` (whose ``**kwargs`` are untyped), typed."""

    def hist(self, x: object, *, bins: Sequence[float], density: bool, color: str) -> object: ...
    def plot(
        self, x: Sequence[float], y: Sequence[float], *, color: str, linewidth: float, label: str
    ) -> object: ...
    def legend(self, *, fontsize: float, loc: str) -> object: ...
    def set_title(self, label: str, *, fontsize: float, color: str) -> object: ...
    def set_xlabel(self, xlabel: str, *, fontsize: float) -> object: ...
    def tick_params(self, *, labelsize: float) -> object: ...
    def text(self, x: float, y: float, s: str, *, ha: str, va: str) -> object: ...
    def set_axis_off(self) -> object: ...


class _Saves(Protocol):
    """A matplotlib ``Figure``'s ``savefig``, typed."""

    def savefig(self, fname: str, *, format: str, dpi: int) -> object: ...


_BINS = 60
_POINTS = 400
_MAX_SAMPLE = 200_000  # values per histogram (a fixed-seed subsample of larger tensors)
_COLUMNS = 4


def _sample(v: Drawn) -> torch.Tensor:
    """At most ``_MAX_SAMPLE`` of the drawn values, in float64 on the CPU (a subsample by a
    generator of its own, so the global RNG is untouched and the picture is reproducible)."""
    flat = torch.cat([p.reshape(-1).to(device="cpu", dtype=torch.float64) for p in v.parts])
    if flat.numel() > _MAX_SAMPLE:
        g = torch.Generator().manual_seed(0)
        flat = flat[torch.randint(flat.numel(), (_MAX_SAMPLE,), generator=g)]
    return flat


def _edges(theory: Expected, low: float, high: float, n: int) -> list[float]:
    """Histogram bin edges over ``[low, high]``; a bounded support's ends are edges, so that
    no bin straddles them."""
    k = min(_BINS, max(8, math.isqrt(n)))
    if math.isfinite(theory.low) and math.isfinite(theory.high):
        width = (theory.high - theory.low) / k
        below = math.ceil((theory.low - low) / width - 1e-9)
        above = math.ceil((high - theory.high) / width - 1e-9)
        if below + above <= 2 * k:  # else values far outside: plain bins over their range
            return [theory.low + width * i for i in range(-below, k + above + 1)]
    return [low + (high - low) * i / k for i in range(k + 1)]


def _curve(theory: Expected, low: float, high: float) -> tuple[list[float], list[float]]:
    """The density over ``[low, high]``; where the support ends inside it (a uniform's or a
    truncated normal's bounds), the jump to zero is drawn as a vertical edge."""
    start, stop = max(low, theory.low), min(high, theory.high)
    xs = [start + (stop - start) * i / (_POINTS - 1) for i in range(_POINTS)]
    ys = [theory.density(x) for x in xs]
    if theory.low > low:
        xs, ys = [theory.low, *xs], [0.0, *ys]
    if theory.high < high:
        xs, ys = [*xs, theory.high], [*ys, 0.0]
    return xs, ys


def plot_distributions(
    model: nn.Module, plan: InitPlan, path: str | os.PathLike[str], *, max_layers: int = 12
) -> None:
    """Write a PNG at ``path``: a grid of histograms (density) of each checked tensor's values,
    the rule's theoretical density drawn over each, titled with the tensor's path and rule.

    Tensors the check does not cover (see :func:`check_distributions`) and constant rules are
    left out; the first ``max_layers`` of the others are drawn, in the plan's order. A tensor
    that fails the check has its title in red. Larger tensors are drawn from a fixed-seed
    subsample of 200,000 values.

    Raises:
        ImportError: matplotlib is not installed.
        ValueError: as :func:`check_distributions`; ``max_layers`` below 1.
    """
    if isinstance(max_layers, bool) or not isinstance(max_layers, int) or max_layers < 1:  # pyright: ignore[reportUnnecessaryIsInstance]  # untyped callers
        raise ValueError(
            f"plot_distributions: max_layers={max_layers!r} must be a positive int, e.g. "
            f"max_layers=12"
        )
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            "plot_distributions needs matplotlib: install the plot extra "
            '(pip install -e ".[plot]" in a clone of seeded-init)'
        ) from exc
    drawn = gather(model, plan, "plot_distributions")
    check = check_drawn(drawn, 5.0)
    values = {v.record.path: v for v in drawn}
    shown: list[tuple[ParamCheck, Expected, Drawn]] = []
    for entry in check:
        theory = theory_of(values[entry.path].record)
        if (
            entry.ok is None
            or entry.mean is None  # NaN or infinite values: nothing to draw
            or not isinstance(theory, Expected)
            or theory.family == "constant"
        ):
            continue
        shown.append((entry, theory, values[entry.path]))
        if len(shown) == max_layers:
            break
    columns = max(1, min(_COLUMNS, len(shown)))
    rows = max(1, math.ceil(len(shown) / columns))
    fig = Figure(figsize=(4.2 * columns, 3.2 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    if not shown:
        ax = cast(_Axes, fig.add_subplot(1, 1, 1))
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no tensor with a random rule to draw", ha="center", va="center")
    for i, (entry, theory, v) in enumerate(shown):
        ax = cast(_Axes, fig.add_subplot(rows, columns, i + 1))
        data = _sample(v)
        if math.isfinite(theory.low) and math.isfinite(theory.high):
            margin = 0.05 * (theory.high - theory.low)
            lo, hi = theory.low - margin, theory.high + margin
        else:
            lo, hi = theory.mean - 4 * theory.std, theory.mean + 4 * theory.std
        # the values' own range too, so that a failing tensor is drawn whole
        lo, hi = min(lo, float(data.min())), max(hi, float(data.max()))
        edges = _edges(theory, lo, hi, data.numel())
        ax.hist(data.numpy(), bins=edges, density=True, color="#9ecae1")
        xs, ys = _curve(theory, lo, hi)
        label = theory.family + (" (normal approx.)" if theory.family == "orthogonal" else "")
        ax.plot(xs, ys, color="#d62728", linewidth=1.5, label=label)
        ax.legend(fontsize=7, loc="upper right")
        z = " ".join(
            f"{name}={value:+.2f}"
            for name, value in (("z_mean", entry.z_mean), ("z_std", entry.z_std))
            if value is not None
        )
        color = "#d62728" if entry.ok is False else "black"
        ax.set_title(f"{entry.path}\n{entry.rule}", fontsize=8, color=color)
        ax.set_xlabel(f"n={entry.n}  {z}", fontsize=7)
        ax.tick_params(labelsize=7)
    cast(_Saves, fig).savefig(os.fspath(path), format="png", dpi=100)
