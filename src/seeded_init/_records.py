"""The public records of an init plan: what each parameter gets, and from which seed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch

__all__ = ["InitPlan", "ParamInit"]


@dataclass(frozen=True)
class ParamInit:
    """What one tensor of a model gets from a reset.

    Attributes:
        path: the tensor's dotted path, as in ``state_dict()``.
        layer: the path of the layer whose generator it draws from.
        scheme: the layer's declared scheme (``"default"`` for undeclared layers).
        rule: what is concretely applied, e.g. ``kaiming_uniform(a=sqrt(5))``.
        seed: the seed of the layer's generator.
        seed_source: ``"explicit"`` (given in the declaration) or ``"derived"`` (root, path).
        declared_by: ``Class.attr`` of the declaration, or None for an undeclared layer.
        shape: the tensor's shape.
        dtype: the tensor's dtype.
        tied_to: for a second name of a tied tensor (a head sharing the embedding's weight),
            the path whose record says how it is drawn; None otherwise.
    """

    path: str
    layer: str
    scheme: str
    rule: str
    seed: int
    seed_source: Literal["explicit", "derived"]
    declared_by: str | None
    shape: tuple[int, ...]
    dtype: torch.dtype
    tied_to: str | None = None


@dataclass(frozen=True)
class InitPlan:
    """Every tensor a reset writes, in the order of the model's ``state_dict()``.

    Attributes:
        root_seed: the root seed the derived seeds come from.
        entries: one record per tensor.
    """

    root_seed: int
    entries: tuple[ParamInit, ...]

    def __iter__(self) -> Iterator[ParamInit]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, path: str) -> ParamInit:
        """The record of the tensor at ``path``."""
        for entry in self.entries:
            if entry.path == path:
                return entry
        raise KeyError(f"no tensor {path!r} in this plan; known: {[e.path for e in self.entries]}")

    def __str__(self) -> str:
        rows = [("tensor", "shape", "rule", "seed", "declared by")]
        for e in self.entries:
            seed = f"{e.seed} ({e.seed_source})"
            rule = e.rule if e.tied_to is None else f"tied to {e.tied_to}"
            rows.append(
                (e.path, "x".join(map(str, e.shape)) or "()", rule, seed, e.declared_by or "-")
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join([f"root seed {self.root_seed}", *lines])
