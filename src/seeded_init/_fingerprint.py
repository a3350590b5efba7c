"""Fingerprints: digests of a model's values, the same in every process and on every machine.

A tensor's digest is the SHA-256 of a tag, its dtype, its shape and its elements' bytes in
row-major order and little-endian byte order, whatever its device, strides or memory format;
the model's is the SHA-256 of the tag and, for each ``state_dict()`` tensor in order, its name's
length (8 bytes, big-endian), its name (UTF-8) and its digest (64 hexadecimal characters).
Extra state (``get_extra_state``) is not a tensor and not part of it. Two runs that print the
same model digest started from the same weights.
"""

from __future__ import annotations

import ctypes
import hashlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, cast

import torch
from torch import nn

from ._torch import local_part, uninitialized

__all__ = ["Fingerprint", "fingerprint"]

_TAG = b"seeded-init/fingerprint/v1\0"


@dataclass(frozen=True)
class Fingerprint:
    """The digests of a model's tensors and of the whole model (SHA-256, hexadecimal).

    Attributes:
        digest: of the whole model: every ``state_dict()`` tensor's name and digest, in order.
        tensors: each tensor's digest by its ``state_dict()`` name.
    """

    digest: str
    tensors: Mapping[str, str]

    def __str__(self) -> str:
        return self.digest

    def differences(self, other: Fingerprint) -> tuple[str, ...]:
        """The names whose tensors differ between the two, or that only one of them has (in
        this one's order, then the other's)."""
        mine = [n for n, d in self.tensors.items() if other.tensors.get(n) != d]
        return (*mine, *(n for n in other.tensors if n not in self.tensors))


def fingerprint(model: nn.Module) -> Fingerprint:
    """The fingerprint of ``model``'s values: a digest per ``state_dict()`` entry and one for
    the whole model, the same in every process, on every device and machine.

    A DTensor is digested whole (its ``full_tensor()``, which every rank must call at once).

    Raises:
        ValueError: a tensor is on the meta device, which holds no values, or quantized.
    """
    tensors: dict[str, str] = {}
    whole = hashlib.sha256(_TAG + b"model\0")
    for name, t in model.state_dict(keep_vars=True).items():
        if not isinstance(t, torch.Tensor):
            continue  # a module's extra state (get_extra_state), not a tensor
        tensors[name] = digest = tensor_digest(t, name)
        key = name.encode("utf-8", "surrogatepass")
        whole.update(len(key).to_bytes(8, "big") + key + digest.encode())
    return Fingerprint(whole.hexdigest(), MappingProxyType(tensors))


def tensor_digest(t: torch.Tensor, name: str = "tensor") -> str:
    """The digest of one tensor's dtype, shape and values."""
    if uninitialized(t):
        raise ValueError(
            f"fingerprint: {name!r} is a lazy layer's parameter, which holds no values before "
            f"the layer's first forward; run one forward pass (model(example)) first"
        )
    t = t.detach()
    if local_part(t)[1] is not None:
        sharded: Any = t
        t = cast(torch.Tensor, sharded.full_tensor())  # a collective: every rank calls it
    if t.is_meta:
        raise ValueError(
            f"fingerprint: {name!r} is on the meta device, which holds no values; take the "
            f"fingerprint after model.to_empty(...) and reset_parameters()"
        )
    if t.is_quantized:
        raise ValueError(
            f"fingerprint: {name!r} is a quantized tensor, whose values are not digested here; "
            f"take the fingerprint before quantizing the model"
        )
    if t.layout != torch.strided:
        t = t.to_dense()
    h = hashlib.sha256(_TAG + f"{t.dtype}\0{tuple(t.shape)}\0".encode())
    flat = t.resolve_conj().resolve_neg().to("cpu").contiguous().reshape(-1)
    if flat.numel():
        raw = flat.view(torch.uint8)
        part = flat.element_size() // (2 if flat.is_complex() else 1)  # a complex's halves
        if sys.byteorder == "big" and part > 1:
            raw = raw.reshape(-1, part).flip(1).contiguous().reshape(-1)
        view = (ctypes.c_ubyte * raw.numel()).from_address(raw.data_ptr())
        h.update(memoryview(view))
    return h.hexdigest()
