"""DTensor, FSDP2 and DDP across spawned gloo processes, against one process (C19).

``tests/dist_worker.py`` runs every scenario on 1, 2 and 4 ranks; each rank saves what it saw
and the tests here compare it with models built and reset in this single process, and with
PyTorch itself where a layer's values have a direct reference.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from seeded_init import fingerprint

from .helpers import (
    assert_same,
    gpt_example,
    manual_seed,
    nn_init,
    public_fsdp2,
    reference,
    snapshot,
)

if not public_fsdp2():
    pytest.skip("needs torch>=2.6: public FSDP2 and DTensor", allow_module_level=True)

# dist_worker imports FSDP2 and DTensor by their public names.
from .dist_worker import LAYOUTS, Sharded

ROOT = Path(__file__).resolve().parent.parent
WORLDS = (1, 2, 4)

Seen = dict[str, object]


def _spawn(world: int, where: Path) -> list[Seen]:
    """Run ``world`` ranks of the worker to the end; what each rank saved, by rank."""
    store = where / "store"
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.dist_worker", str(r), str(world), str(store), str(where)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(world)
    ]
    logs = [p.communicate(timeout=240)[0] for p in procs]
    for r, p in enumerate(procs):
        assert p.returncode == 0, f"rank {r} of {world} failed:\n{logs[r]}"
    seen: list[Seen] = []
    for r in range(world):
        loaded: Seen = torch.load(where / f"rank{r}.pt", weights_only=True)
        seen.append(loaded)
    return seen


@pytest.fixture(scope="module", params=WORLDS, ids=lambda w: f"world{w}")
def ranks(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> list[Seen]:
    world: int = request.param
    return _spawn(world, tmp_path_factory.mktemp(f"world{world}"))


def _tensors(seen: Seen, key: str) -> dict[str, torch.Tensor]:
    value = seen[key]
    assert isinstance(value, dict)
    items: dict[object, object] = value  # pyright: ignore[reportUnknownVariableType]
    tensors = {str(k): v for k, v in items.items() if isinstance(v, torch.Tensor)}
    assert len(tensors) == len(items)
    return tensors


def _single_process() -> dict[str, torch.Tensor]:
    manual_seed(77)
    model = Sharded()
    model.reset_parameters()
    return snapshot(model)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_dtensor_parameters_reset_to_the_single_process_values(
    ranks: list[Seen], layout: str
) -> None:
    """Shard(0), Shard(1) (uneven where 5 rows or 6 columns meet 4 ranks) and Replicate:
    every rank's full_tensor() is bitwise the single-process init."""
    want = _single_process()
    for seen in ranks:
        assert_same(_tensors(seen, f"{layout}/full"), want)


def test_sharded_values_are_pytorchs_own(ranks: list[Seen]) -> None:
    """Independent references: nn.init with the layer's generator, and PyTorch's Linear and
    Embedding under torch.manual_seed(seed), so fans came from the global shape."""
    got = _tensors(ranks[0], "shard1/full")
    torch.testing.assert_close(
        got["fc.weight"], nn_init(nn.init.normal_, (8, 16), 3, std=0.02), rtol=0, atol=0
    )
    lin = snapshot(reference(5, lambda: nn.Linear(16, 8)))
    assert torch.equal(got["lin.weight"], lin["weight"])
    assert torch.equal(got["lin.bias"], lin["bias"])
    emb = snapshot(reference(7, lambda: nn.Embedding(10, 6, padding_idx=9)))
    assert torch.equal(got["emb.weight"], emb["weight"])
    assert not got["emb.weight"][9].any()
    bound = math.sqrt(6 / 6)  # kaiming_uniform, fan_in 6 (the full width, not a shard's)
    assert got["odd.weight"].abs().max() <= bound
    assert got["odd.weight"].abs().max() > bound / 2


@pytest.mark.parametrize("layout", ["shard0", "shard1"])
def test_no_shard_is_a_copy_of_another(ranks: list[Seen], layout: str) -> None:
    """C19: the ranks' local parts of fc.weight differ, and together are the full weight."""
    parts = [seen[f"{layout}/local"] for seen in ranks]
    assert all(isinstance(p, torch.Tensor) for p in parts)
    tensors = [p for p in parts if isinstance(p, torch.Tensor)]
    for i, a in enumerate(tensors):
        for b in tensors[i + 1 :]:
            assert not torch.equal(a, b)
    dim = 0 if layout == "shard0" else 1
    assert torch.equal(torch.cat(tensors, dim=dim), _single_process()["fc.weight"])


def test_fsdp2_recipe_matches_eager_init_and_forward(ranks: list[Seen]) -> None:
    """meta -> fully_shard -> to_empty -> reset_parameters(): the example GPT's full state,
    its tie and its forward pass equal the model built eagerly in one process."""
    gpt = gpt_example()
    manual_seed(5)
    eager = gpt.GPT(gpt.TINY)
    with torch.no_grad():
        want = eager(torch.arange(16).reshape(2, 8))
    for seen in ranks:
        assert seen["fsdp/class"] == "FSDPGPT"  # fully_shard's dynamic subclass
        assert seen["fsdp/tied"] is True
        got = _tensors(seen, "fsdp/full")
        assert_same(got, snapshot(eager))
        assert seen["fsdp/fingerprint"] == fingerprint(eager).digest
        forward = seen["fsdp/forward"]
        assert isinstance(forward, torch.Tensor)
        assert torch.equal(forward, want)


def test_ddp_wrapped_module_resets_to_the_plain_values(ranks: list[Seen]) -> None:
    """ddp.module.reset_parameters() on every rank: the single-process values."""
    for seen in ranks:
        assert_same(_tensors(seen, "ddp/full"), _single_process())


def test_own_reset_on_dtensor_parameters_is_refused(ranks: list[Seen]) -> None:
    """A third-party layer's own reset would draw each shard from the global RNG alike: a
    PlanError naming it and saying what to write, nothing changed."""
    for seen in ranks:
        message = seen["foreign/error"]
        assert isinstance(message, str)
        assert "'ext' (_OwnReset)" in message
        assert "DTensor" in message and "declare it with a scheme" in message
        assert seen["foreign/unchanged"] is True


def test_partial_placement_is_refused(ranks: list[Seen]) -> None:
    """Partial placements hold no slice of a full draw: a PlanError naming the tensor."""
    for seen in ranks:
        message = seen["partial/error"]
        assert isinstance(message, str)
        assert "'fc.weight'" in message and "Partial" in message
        assert "Shard(dim) and Replicate() only" in message
        assert seen["partial/unchanged"] is True
