"""Seeds: validation, and the stable rule that derives a layer's seed from (root seed, path).

The rule is part of the public contract, because it decides every derived value:

    digest = sha256(b"seeded-init/v1\\0" + root.to_bytes(8, "big") + path.encode("utf-8"))
    seed   = int.from_bytes(digest[:8], "big")

The root seed has a fixed width and the path comes last, so no two (root, path) pairs share an
encoding. It never uses Python's ``hash()``, whose value for a string changes between processes.
"""

from __future__ import annotations

import hashlib

from ._errors import SeedError

__all__ = ["DEFAULT_ROOT_SEED", "SEED_LIMIT", "check_seed", "derive_seed"]

#: Seeds are unsigned 64-bit integers, as ``torch.Generator.manual_seed`` takes them.
SEED_LIMIT = 2**64

#: The root seed of a model that was given none.
DEFAULT_ROOT_SEED = 0

_DOMAIN = b"seeded-init/v1\x00"


def check_seed(value: object, where: str) -> int:
    """Return ``value`` if it is an int in ``[0, 2**64)``, else raise :class:`SeedError`.

    Args:
        value: what the user gave.
        where: the place to name in the message, e.g. ``"Net.fc1: seed="``.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise SeedError(
            f"{where} got {value!r} ({type(value).__name__}); a seed is an int in "
            f"[0, 2**64), e.g. seed=1"
        )
    if not 0 <= value < SEED_LIMIT:
        raise SeedError(f"{where} got {value}, outside [0, 2**64); pick a seed in that range")
    return value


def derive_seed(root: int, path: str) -> int:
    """The seed of the layer at dotted ``path`` under root seed ``root``.

    Stable across processes, machines and Python versions.

    Example:
        >>> derive_seed(0, "blocks.0.attn") == derive_seed(0, "blocks.0.attn")
        True
    """
    check_seed(root, "derive_seed: root=")
    digest = hashlib.sha256(_DOMAIN + root.to_bytes(8, "big") + path.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")
