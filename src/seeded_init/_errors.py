"""The exceptions seeded-init raises. Every message names the layer, what was given and the fix."""

from __future__ import annotations

__all__ = [
    "ConstructionError",
    "DeclarationError",
    "PlanError",
    "ProvenanceError",
    "SeedCollisionError",
    "SeedError",
    "SeededInitError",
]


class SeededInitError(Exception):
    """Base class of every error seeded-init raises on purpose."""


class DeclarationError(SeededInitError, TypeError):
    """A declaration in a class body is wrong; raised when the class is defined."""


class SeedError(DeclarationError, ValueError):
    """A seed is not an ``int`` in ``[0, 2**64)``."""


class ConstructionError(SeededInitError, TypeError):
    """Building a declared layer failed: the factory returned the wrong thing, or an
    annotated layer was never assigned in ``__init__``."""


class PlanError(SeededInitError, ValueError):
    """The init plan cannot be carried out; raised before any tensor is touched."""


class SeedCollisionError(PlanError):
    """Two different layers of one model were given the same explicit seed."""


class ProvenanceError(SeededInitError, ValueError):
    """A model does not match the provenance it is checked or re-initialized against."""
