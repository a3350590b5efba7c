"""The parts of ``nn.Module`` seeded-init reads below its public methods, in one place.

A module's own tensors and children live in its ``_parameters``, ``_buffers`` and ``_modules``
dictionaries (``named_parameters(recurse=False)`` walks the same, slower); torch leaves some of
these, and a few functions, without full type information, which strict type checkers would
otherwise carry into every module here.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from typing import Any, cast

import torch
from torch import nn
from torch.nn.modules import batchnorm, conv

__all__ = [
    "ConvNd",
    "NormBase",
    "buffers",
    "children",
    "cuda_ready",
    "extent",
    "fan_in",
    "fans",
    "forward_pre_hooks",
    "internal_overlap",
    "is_lazy",
    "local_part",
    "named_modules",
    "params",
    "placement_problem",
    "pruned_names",
    "span",
    "torch_function_mode",
    "uninitialized",
]


def params(m: nn.Module) -> dict[str, nn.Parameter | None]:
    """``m``'s own parameters by name (None for a registered ``None``), the live dictionary."""
    table: dict[str, nn.Parameter | None] = m._parameters  # pyright: ignore[reportPrivateUsage]
    return table


def buffers(m: nn.Module) -> dict[str, torch.Tensor | None]:
    """``m``'s own buffers by name, the live dictionary."""
    table: dict[str, torch.Tensor | None] = m._buffers  # pyright: ignore[reportPrivateUsage]
    return table


def children(m: nn.Module) -> dict[str, nn.Module | None]:
    """``m``'s direct children by name, the live dictionary."""
    table: dict[str, nn.Module | None] = m._modules  # pyright: ignore[reportPrivateUsage]
    return table


def named_modules(m: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    """``m.named_modules(prefix=prefix)``, each module once."""
    modules = m.named_modules(prefix=prefix)  # pyright: ignore[reportUnknownVariableType]
    return cast("Iterator[tuple[str, nn.Module]]", modules)


def forward_pre_hooks(m: nn.Module) -> list[object]:
    """The forward pre-hooks of ``m`` (the old weight_norm/spectral_norm live there)."""
    hooks = m._forward_pre_hooks  # pyright: ignore[reportPrivateUsage, reportUnknownMemberType, reportUnknownVariableType]
    return list(cast("Mapping[int, object]", hooks).values())


def pruned_names(m: nn.Module) -> list[str]:
    """The names of ``m``'s tensors pruned by ``torch.nn.utils.prune`` (kept as ``<name>_orig``)."""
    from torch.nn.utils.prune import BasePruningMethod

    return [
        hook._tensor_name  # pyright: ignore[reportPrivateUsage]
        for hook in forward_pre_hooks(m)
        if isinstance(hook, BasePruningMethod)
    ]


def fans(weight: torch.Tensor) -> tuple[int, int]:
    """PyTorch's (fan_in, fan_out) of a weight (as ``torch.nn.init`` computes them)."""
    return nn.init._calculate_fan_in_and_fan_out(weight)  # pyright: ignore[reportPrivateUsage]


def fan_in(weight: torch.Tensor) -> int:
    """PyTorch's fan_in of a weight (as ``torch.nn.init`` computes it)."""
    return fans(weight)[0]


#: The bases of PyTorch's batch and instance norms, and of its convolutions (private in torch).
NormBase: type[nn.Module] = batchnorm._NormBase  # pyright: ignore[reportPrivateUsage]
ConvNd: type[nn.Module] = conv._ConvNd  # pyright: ignore[reportPrivateUsage]


def internal_overlap(t: torch.Tensor) -> bool:
    """Whether two elements of ``t`` are one place in memory (an ``as_strided`` view, say)."""
    # torch says 0: no, 1: yes, 2: too hard to tell; then fewer places than elements is a yes
    verdict: int = torch._debug_has_internal_overlap(t)  # pyright: ignore[reportPrivateImportUsage, reportPrivateUsage]
    if verdict != 2:
        return verdict == 1
    return extent(t) < t.numel()


def extent(t: torch.Tensor) -> int:
    """How many elements of storage ``t`` spans, from its first to its last."""
    if t.is_contiguous():
        return t.numel()
    return sum((int(n) - 1) * int(s) for n, s in zip(t.shape, t.stride(), strict=True)) + 1


def span(t: torch.Tensor) -> tuple[tuple[str, int], int, int]:
    """Where a (local) tensor lies in memory: (device, storage) and its first and past-last
    byte in that storage."""
    size = t.element_size()
    start = int(t.storage_offset()) * size
    return (str(t.device), t.untyped_storage().data_ptr()), start, start + extent(t) * size


def is_lazy(m: nn.Module) -> bool:
    """Whether ``m`` is a lazy layer (its parameters wait for the first forward)."""
    from torch.nn.modules.lazy import LazyModuleMixin

    return isinstance(m, LazyModuleMixin)


def uninitialized(t: torch.Tensor) -> bool:
    """A lazy layer's parameter or buffer, whose shape is not known until its first forward.

    Not ``isinstance(t, UninitializedParameter)``: before torch 2.5 that holds for every
    ``nn.Parameter`` whose data is a tensor subclass, a DTensor's among them.
    """
    mixin: type = nn.parameter.UninitializedTensorMixin  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType, reportUnknownVariableType]
    return isinstance(t, mixin)


def torch_function_mode() -> bool:
    """Whether a ``TorchFunctionMode`` is active on this thread (True if torch cannot say)."""
    check = getattr(torch._C, "_is_torch_function_mode_enabled", None)  # pyright: ignore[reportPrivateUsage]
    return True if check is None else bool(check())


def cuda_ready() -> bool:
    """Whether CUDA is there and initialized (whose RNG states are then saved and restored)."""
    initialized: bool = torch.cuda.is_available() and torch.cuda.is_initialized()  # type: ignore[no-untyped-call]
    return initialized


def _distributed(name: str, module: str) -> Any:
    """``torch.distributed.tensor.<module>.<name>`` (``_tensor`` before torch 2.5)."""
    import importlib

    for package in ("torch.distributed.tensor", "torch.distributed._tensor"):
        try:
            return getattr(importlib.import_module(f"{package}{module}"), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"torch.distributed.tensor{module}.{name}")


_dtensor: list[type[torch.Tensor]] = []  # the class, once found


def _dtensor_type() -> type[torch.Tensor] | None:
    """torch's DTensor class, or None while it is not imported (no tensor can be one then):
    a reset in a program that never touches torch.distributed does not import it."""
    if _dtensor:
        return _dtensor[0]
    for package in ("torch.distributed.tensor", "torch.distributed._tensor"):
        found: type[torch.Tensor] | None = getattr(sys.modules.get(package), "DTensor", None)
        if found is not None:
            _dtensor.append(found)
            return found
    return None


def local_part(t: torch.Tensor) -> tuple[torch.Tensor, tuple[slice, ...] | None]:
    """For a DTensor: its local tensor and the slices of the global tensor it holds.

    Any other tensor is its own local tensor (``None`` slices). Only Shard and Replicate
    placements are valid here (see :func:`placement_problem`).
    """
    dtensor = _dtensor_type()
    if dtensor is None or not isinstance(t, dtensor):
        return t, None
    d: Any = t
    local: torch.Tensor = d.to_local()
    where = _distributed("compute_local_shape_and_global_offset", "._utils")
    shape: tuple[int, ...]
    offset: tuple[int, ...]
    shape, offset = where(tuple(t.shape), d.device_mesh, d.placements)
    return local, tuple(slice(o, o + n) for o, n in zip(offset, shape, strict=True))


def placement_problem(t: torch.Tensor) -> str | None:
    """Why a DTensor's layout cannot take a slice of a full draw, or None (any other tensor)."""
    dtensor = _dtensor_type()
    if dtensor is None or not isinstance(t, dtensor):
        return None
    kinds = (
        _distributed("Shard", ".placement_types"),
        _distributed("Replicate", ".placement_types"),
    )
    d: Any = t
    placements: tuple[object, ...] = tuple(d.placements)
    odd = [p for p in placements if type(p) not in kinds]
    if odd:
        return (
            f"has placements {placements}; seeded-init writes DTensors placed with Shard(dim) "
            f"and Replicate() only ({odd[0]} is neither): shard it with those placements "
            f"(fully_shard does), or reset it before sharding"
        )
    local, part = local_part(t)
    assert part is not None
    if tuple(local.shape) != tuple(s.stop - s.start for s in part):
        return (
            f"holds a local tensor of shape {tuple(local.shape)} where its placements "
            f"{placements} give {tuple(s.stop - s.start for s in part)}: make it with "
            f"distribute_tensor or fully_shard, or DTensor.from_local(..., shape=, stride=) "
            f"with the global shape"
        )
    return None
