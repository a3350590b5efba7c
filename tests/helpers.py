"""Helpers shared by the tests: one-layer models, bitwise comparisons, references."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Generator, Mapping
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import cast

import torch
from torch import nn

from seeded_init import InitSpec, SeededModule

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def declared(make: Callable[[], nn.Module], spec: InitSpec) -> nn.Module:
    """The layer ``make()`` built and initialized as the one declared layer of a model."""

    class One(SeededModule):
        @spec
        def layer(self) -> nn.Module:
            return make()

    return One().layer


def channels_last(m: nn.Module) -> nn.Module:
    """``m.to(memory_format=torch.channels_last)``, which torch's type hints do not list."""
    out = m.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportUnknownVariableType]
    return cast(nn.Module, out)


def snapshot(m: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of every state_dict entry."""
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def assert_same(got: Mapping[str, torch.Tensor], want: Mapping[str, torch.Tensor]) -> None:
    """Same keys, dtypes, shapes and bits."""
    assert list(got) == list(want)
    for key in want:
        a, b = got[key], want[key]
        assert a.dtype == b.dtype, key
        if a.is_floating_point() and a.element_size() == 1:  # float8: torch < 2.5 cannot compare
            a, b = a.view(torch.uint8), b.view(torch.uint8)
        assert torch.equal(a, b), f"{key} differs"


def manual_seed(seed: int) -> None:
    """``torch.manual_seed``, whose type hints are incomplete for strict checkers."""
    torch.manual_seed(seed)  # pyright: ignore[reportUnknownMemberType]


@contextmanager
def forked_rng() -> Generator[None, None, None]:
    """``torch.random.fork_rng(devices=[])``: the global CPU RNG state is restored on exit."""
    with torch.random.fork_rng(devices=[]):  # pyright: ignore[reportUnknownMemberType]
        yield


def reference(seed: int, make: Callable[[], nn.Module]) -> nn.Module:
    """PyTorch itself: ``torch.manual_seed(seed); make()``, the global RNG restored after."""
    with forked_rng():
        manual_seed(seed)
        return make()


def nn_init(
    fn: Callable[..., object],
    shape: tuple[int, ...],
    seed: int,
    *args: object,
    dtype: torch.dtype = torch.float32,
    **kwargs: object,
) -> torch.Tensor:
    """``torch.nn.init`` function ``fn`` on a fresh tensor, with a generator seeded ``seed``."""
    t = torch.empty(shape, dtype=dtype)
    fn(t, *args, generator=torch.Generator().manual_seed(seed), **kwargs)
    return t


@cache
def gpt_example() -> ModuleType:
    """examples/02_gpt2.py as a module (its GPT and TINY config)."""
    spec = importlib.util.spec_from_file_location("gpt2_example", EXAMPLES / "02_gpt2.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def public_fsdp2() -> bool:
    """Whether torch has FSDP2 and DTensor under their public names (torch 2.6 and later),
    which the distributed tests and examples/04_fsdp.py use; before that FSDP2 also needs
    CUDA for a forward pass."""
    if not torch.distributed.is_available():
        return False
    fsdp = importlib.import_module("torch.distributed.fsdp")
    tensor = importlib.import_module("torch.distributed.tensor")
    return hasattr(fsdp, "fully_shard") and hasattr(tensor, "DTensor")


def garbage(m: nn.Module) -> None:
    """Fill every tensor of ``m`` with what uninitialized memory may hold: 123.0 in floats,
    7 in integer buffers."""
    with torch.no_grad():
        for t in m.state_dict().values():
            t.fill_(123.0 if t.is_floating_point() else 7)
