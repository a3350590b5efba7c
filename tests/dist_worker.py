"""One rank of the distributed tests: ``python -m tests.dist_worker RANK WORLD STORE OUT``.

Each rank joins a gloo process group through a file store, runs every scenario of
``test_distributed.py`` and saves what it saw to ``OUT/rank{RANK}.pt``: full tensors
gathered from DTensors, its own local shards, forward outputs and error messages. The
test process compares them with models it builds in a single process.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor, Partial, Replicate, Shard, distribute_tensor
from torch.nn.parallel import DistributedDataParallel

from seeded_init import PlanError, SeededModule, fingerprint, seeded_init

from .helpers import gpt_example, manual_seed

LAYOUTS = ("shard0", "shard1", "replicate")


class Sharded(SeededModule):
    """C19's layer, a "default" Linear whose fans must come from the global shape, a layer
    whose rows and columns do not divide by 2 or 4 ranks, and an Embedding's padding row."""

    @seeded_init(scheme="normal", std=0.02, seed=3)
    def fc(self) -> nn.Linear:
        return nn.Linear(16, 8)

    @seeded_init(scheme="default", seed=5)
    def lin(self) -> nn.Linear:
        return nn.Linear(16, 8)

    @seeded_init(scheme="kaiming_uniform", seed=6)
    def odd(self) -> nn.Linear:
        return nn.Linear(6, 5)

    @seeded_init(scheme="default", seed=7)
    def emb(self) -> nn.Embedding:
        return nn.Embedding(10, 6, padding_idx=9)  # on the last rank's shard

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h: torch.Tensor = self.fc(x) + self.lin(x)
        return h


class _OwnReset(nn.Module):
    """A third-party layer that initializes itself from the global RNG."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(4, 4))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.uniform_(self.weight)


class Foreign(SeededModule):
    def __init__(self) -> None:
        super().__init__()
        self.ext = _OwnReset()


class Declared(SeededModule):
    @seeded_init(scheme="normal", seed=2)
    def fc(self) -> nn.Linear:
        return nn.Linear(4, 4)


def distribute(model: nn.Module, mesh: DeviceMesh, layout: str) -> None:
    """Replace every parameter by a DTensor: dim 0 or dim 1 (1-d: dim 0) sharded, or replicated."""
    for module in model.modules():
        for name, p in list(module.named_parameters(recurse=False)):
            if layout == "replicate":
                placement: Shard | Replicate = Replicate()
            else:
                placement = Shard(1 if layout == "shard1" and p.dim() > 1 else 0)
            d = distribute_tensor(p.detach(), mesh, [placement])
            setattr(module, name, nn.Parameter(d, requires_grad=p.requires_grad))


def full(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer as a plain full tensor, gathered where it is a DTensor."""
    out: dict[str, torch.Tensor] = {}
    for key, t in model.state_dict(keep_vars=True).items():
        value = t.full_tensor() if isinstance(t, DTensor) else t
        out[key] = value.detach().clone()
    return out


def error_of(call: Callable[[], object]) -> str:
    """The PlanError message that ``call`` raises ('' if it raises none)."""
    try:
        call()
    except PlanError as e:
        return str(e)
    return ""


def main(argv: list[str]) -> int:
    rank, world, store, out = int(argv[0]), int(argv[1]), argv[2], Path(argv[3])
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    mesh = init_device_mesh("cpu", (world,))
    seen: dict[str, object] = {}

    # DTensor layouts; each rank consumes other global random numbers first.
    for layout in LAYOUTS:
        manual_seed(1000 + rank)
        model = Sharded()
        distribute(model, mesh, layout)
        model.reset_parameters()
        seen[f"{layout}/full"] = full(model)
        weight = model.fc.weight
        assert isinstance(weight, DTensor)
        seen[f"{layout}/local"] = weight.to_local().detach().clone()

    # The documented recipe: meta, fully_shard, to_empty, reset_parameters, forward.
    gpt = gpt_example()
    manual_seed(2000 + rank)
    with torch.device("meta"):
        model = gpt.GPT(gpt.TINY)
    for block in model.blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    model.to_empty(device="cpu")
    model.reset_parameters()
    seen["fsdp/class"] = type(model).__name__
    seen["fsdp/full"] = full(model)
    seen["fsdp/fingerprint"] = fingerprint(model).digest  # each shard's full tensor, gathered
    seen["fsdp/tied"] = model.lm_head.weight is model.wte.weight
    with torch.no_grad():
        seen["fsdp/forward"] = model(torch.arange(16).reshape(2, 8)).detach().clone()

    # DDP: the wrapped module resets to the plain model's values on every rank.
    manual_seed(3000 + rank)
    ddp = DistributedDataParallel(Sharded())
    inner: object = ddp.module  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    assert isinstance(inner, Sharded)
    inner.reset_parameters()
    seen["ddp/full"] = full(inner)

    # Refusals: a layer's own reset on DTensor parameters, and a Partial placement.
    foreign = Foreign()
    distribute(foreign, mesh, "shard0")
    before = full(foreign)
    seen["foreign/error"] = error_of(foreign.reset_parameters)
    seen["foreign/unchanged"] = all(torch.equal(before[k], v) for k, v in full(foreign).items())
    declared = Declared()
    local = declared.fc.weight.detach().clone()
    partial = DTensor.from_local(local, mesh, [Partial()])
    declared.fc.weight = nn.Parameter(partial)
    seen["partial/error"] = error_of(declared.reset_parameters)
    seen["partial/unchanged"] = torch.equal(partial.to_local(), local)

    torch.save(seen, out / f"rank{rank}.pt")
    dist.barrier()  # pyright: ignore[reportUnknownMemberType]
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
