"""Build on meta, shard with FSDP2, initialize: the same model as in one process.

The GPT-2-small-shaped model of ``02_gpt2.py`` is built under ``torch.device("meta")`` (no
memory), every block and the model are sharded with ``fully_shard`` on a 2-process gloo
(CPU) mesh, storage is allocated with ``to_empty`` and ``reset_parameters()`` fills it. Each
rank holds only its shards, yet the gathered state_dict and the forward pass are bitwise
those of the model built eagerly in one process: the values depend on (seed, path, shape,
dtype) only, not on the world size or the shard layout.

Run: ``python examples/04_fsdp.py`` (124M parameters) or ``--small`` (a tiny model);
``--world N`` for another number of processes.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
gpt2: Any = importlib.import_module("02_gpt2")  # the model of examples/02_gpt2.py

TOKENS = torch.arange(32).reshape(2, 16)


def gathered(model: nn.Module) -> dict[str, torch.Tensor]:
    """The full state_dict: every sharded tensor gathered from all ranks."""
    return {
        key: t.full_tensor() if isinstance(t, DTensor) else t
        for key, t in model.state_dict().items()
    }


def digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the tensors' bytes, in key order (02_gpt2.py's state_digest)."""
    holder = nn.Module()
    for i, t in enumerate(tensors.values()):
        holder.register_buffer(f"t{i}", t)
    result: str = gpt2.state_digest(holder)
    return result


def rank_main(rank: int, world: int, small: bool, where: str) -> None:
    """One rank: meta -> fully_shard -> to_empty -> reset_parameters -> forward."""
    config = gpt2.TINY if small else gpt2.GPT2_SMALL
    dist.init_process_group(
        "gloo",
        init_method=f"file://{where}/store",
        rank=rank,
        world_size=world,
        timeout=timedelta(minutes=5),  # a failed rank does not leave the others waiting long
    )
    mesh = init_device_mesh("cpu", (world,))
    torch.randn(1000 * (rank + 1))  # the ranks' global RNGs differ; the init never reads them
    with torch.device("meta"):
        model = gpt2.GPT(config)
    for block in model.blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    model.to_empty(device="cpu")
    model.reset_parameters()

    local = sum(t.to_local().numel() for t in model.parameters() if isinstance(t, DTensor))
    state = digest(gathered(model))
    with torch.no_grad():
        logits = model(TOKENS)
    out = digest({"logits": logits})
    Path(where, f"rank{rank}.txt").write_text(f"{state}\n{out}\n{local}\n")
    dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--small", action="store_true", help="a tiny model, in seconds")
    parser.add_argument("--world", type=int, default=2, help="number of processes (2)")
    parser.add_argument("--rank", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--where", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rank is not None:
        rank_main(args.rank, args.world, args.small, args.where)
        return 0
    config = gpt2.TINY if args.small else gpt2.GPT2_SMALL

    eager = gpt2.GPT(config)
    total = sum(p.numel() for p in eager.parameters())
    want_state = digest(dict(eager.state_dict()))
    with torch.no_grad():
        want_out = digest({"logits": eager(TOKENS)})
    del eager
    print(f"one process:     state {want_state[:16]}  forward {want_out[:16]}")

    with tempfile.TemporaryDirectory() as where:
        size = ["--small"] if args.small else []
        ranks = [
            subprocess.Popen(
                [sys.executable, __file__, *size, f"--world={args.world}", f"--rank={r}",
                 f"--where={where}"]
            )
            for r in range(args.world)
        ]  # fmt: skip
        codes = [p.wait() for p in ranks]
        if any(codes):
            print("FAILED: a rank exited with an error")
            return 1
        rows = [Path(where, f"rank{r}.txt").read_text().split() for r in range(args.world)]

    failures: list[str] = []
    for rank, (state, out, local) in enumerate(rows):
        print(
            f"rank {rank} of {args.world}: state {state[:16]}  forward {out[:16]}  "
            f"(holds {int(local):,} of {total:,} parameters)"
        )
        if state != want_state:
            failures.append(f"rank {rank}'s gathered state_dict differs")
        if out != want_out:
            failures.append(f"rank {rank}'s forward pass differs")
    print(f"state_dict identical: {not any('state' in f for f in failures)}")
    print(f"forward identical: {not any('forward' in f for f in failures)}")
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
