"""scheme="default" replays each layer type's PyTorch algorithm: bitwise equal to
``manual_seed(s); Layer(...)`` for every type in the parity list, dtype and seed."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from seeded_init import SeededModule, derive_seed, seeded_init
from tests.helpers import assert_same, channels_last, declared, reference, snapshot

Maker = Callable[[torch.dtype], nn.Module]

LAYERS: dict[str, Maker] = {
    "Linear": lambda dt: nn.Linear(5, 3, dtype=dt),
    "Linear-nobias": lambda dt: nn.Linear(5, 3, bias=False, dtype=dt),
    "Bilinear": lambda dt: nn.Bilinear(3, 4, 2, dtype=dt),
    "Conv1d": lambda dt: nn.Conv1d(2, 4, 3, dtype=dt),
    "Conv2d": lambda dt: nn.Conv2d(3, 4, (3, 2), groups=1, dtype=dt),
    "Conv2d-channels_last": lambda dt: channels_last(nn.Conv2d(3, 4, 3, dtype=dt)),
    "Conv3d": lambda dt: nn.Conv3d(2, 4, 2, groups=2, dtype=dt),
    "ConvTranspose1d": lambda dt: nn.ConvTranspose1d(2, 4, 3, dtype=dt),
    "ConvTranspose2d": lambda dt: nn.ConvTranspose2d(4, 2, 3, groups=2, dtype=dt),
    "ConvTranspose3d": lambda dt: nn.ConvTranspose3d(2, 3, 2, dtype=dt),
    "Embedding": lambda dt: nn.Embedding(10, 4, dtype=dt),
    "Embedding-padding": lambda dt: nn.Embedding(10, 4, padding_idx=-2, dtype=dt),
    "EmbeddingBag": lambda dt: nn.EmbeddingBag(10, 4, padding_idx=1, dtype=dt),
    "LayerNorm": lambda dt: nn.LayerNorm([3, 4], dtype=dt),
    "GroupNorm": lambda dt: nn.GroupNorm(2, 4, dtype=dt),
    "BatchNorm1d": lambda dt: nn.BatchNorm1d(4, dtype=dt),
    "BatchNorm2d": lambda dt: nn.BatchNorm2d(4, dtype=dt),
    "BatchNorm3d": lambda dt: nn.BatchNorm3d(4, dtype=dt),
    "RNN": lambda dt: nn.RNN(4, 6, num_layers=2, nonlinearity="relu", dtype=dt),
    "LSTM-bidirectional-proj": lambda dt: nn.LSTM(
        4, 6, num_layers=2, bidirectional=True, proj_size=3, dtype=dt
    ),
    "GRU": lambda dt: nn.GRU(4, 6, bidirectional=True, dtype=dt),
    "MultiheadAttention": lambda dt: nn.MultiheadAttention(8, 2, dtype=dt),
    "MultiheadAttention-kdim-vdim-bias_kv": lambda dt: nn.MultiheadAttention(
        8, 2, kdim=5, vdim=3, add_bias_kv=True, dtype=dt
    ),
    "TransformerEncoderLayer": lambda dt: nn.TransformerEncoderLayer(8, 2, 16, dtype=dt),
    "TransformerDecoderLayer": lambda dt: nn.TransformerDecoderLayer(8, 2, 16, dtype=dt),
}
if hasattr(nn, "RMSNorm"):  # torch >= 2.4
    LAYERS["RMSNorm"] = lambda dt: nn.RMSNorm(4, dtype=dt)
DTYPES = [torch.float32, torch.float64, torch.bfloat16]
SEEDS = [0, 7, 2**63 + 11]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", list(LAYERS))
def test_declared_default_matches_pytorch(name: str, dtype: torch.dtype, seed: int) -> None:
    """A declared layer under "default" equals manual_seed(s); Layer(...) bitwise."""
    make = LAYERS[name]
    ours = declared(lambda: make(dtype), seeded_init(scheme="default", seed=seed))
    want = reference(seed, lambda: make(dtype))
    assert_same(snapshot(ours), snapshot(want))


@pytest.mark.parametrize("name", list(LAYERS))
def test_reset_restores_the_default_values(name: str) -> None:
    """After the parameters are overwritten, reset_parameters() gives the same values again."""

    class One(SeededModule):
        @seeded_init(scheme="default", seed=3)
        def layer(self) -> nn.Module:
            return LAYERS[name](torch.float32)

    m = One()
    before = snapshot(m)
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(123.0)
        for b in m.buffers():
            b.fill_(7)
    m.reset_parameters()
    assert_same(snapshot(m), before)


def test_channels_last_weight_keeps_its_memory_format() -> None:
    """A channels_last conv weight is refilled in logical order and stays channels_last."""
    layer = declared(
        lambda: channels_last(nn.Conv2d(3, 4, 3)), seeded_init(scheme="default", seed=5)
    )
    weight = layer.get_parameter("weight")
    assert weight.is_contiguous(memory_format=torch.channels_last)
    want = reference(5, lambda: nn.Conv2d(3, 4, 3))
    assert torch.equal(weight, want.get_parameter("weight"))


@pytest.mark.parametrize(
    "name",
    [
        "Linear",
        "Conv2d",
        "Embedding-padding",
        "LSTM-bidirectional-proj",
        "MultiheadAttention",
        "BatchNorm2d",
    ],
)
def test_undeclared_child_draws_default_from_its_path_seed(name: str) -> None:
    """An undeclared child equals PyTorch's layer under manual_seed(derive_seed(root, path))."""
    make = LAYERS[name]

    class Host(SeededModule):
        def __init__(self) -> None:
            super().__init__(seed=42)
            self.child = make(torch.float32)

    host = Host()
    want = reference(derive_seed(42, "child"), lambda: make(torch.float32))
    assert_same(snapshot(host.child), snapshot(want))


def test_composite_default_is_one_stream_in_registration_order() -> None:
    """A declared nn.Sequential under "default" equals manual_seed(s); Sequential(...)."""

    def make() -> nn.Module:
        return nn.Sequential(
            nn.Linear(4, 8), nn.ReLU(), nn.LayerNorm(8), nn.Linear(8, 2), nn.GRU(2, 3)
        )

    ours = declared(make, seeded_init(seed=9))
    assert_same(snapshot(ours), snapshot(reference(9, make)))


class ThirdParty(nn.Module):
    """A layer seeded-init does not know, whose reset only uses the global RNG."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.empty(6))
        self.inner = nn.Linear(3, 2)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.scale.copy_(torch.randn(6))


def test_unknown_layer_runs_its_own_reset_under_a_seeded_global_rng(
    global_rng_guard: object,
) -> None:
    """A third-party reset_parameters() runs on the layer's stream; the global RNG is restored."""
    ours = declared(ThirdParty, seeded_init(seed=4))
    want = reference(4, ThirdParty)
    assert_same(snapshot(ours), snapshot(want))
