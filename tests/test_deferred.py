"""Deferred and device-invariant init: meta -> to_empty -> reset_parameters() equals eager
construction; where and in which dtype values are drawn (draw_on=, draw_dtype=); models
wrapped by torch.compile; CUDA (C12, C13) where a GPU exists."""

from __future__ import annotations

from typing import Any, get_args

import pytest
import torch
from torch import nn

from seeded_init import DrawOn, PlanError, SchemeName, SeededModule, seeded_init

from .helpers import assert_same, garbage, gpt_example, manual_seed, nn_init, reference, snapshot
from .test_default_parity import LAYERS

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA device")


# -- meta device ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", list(LAYERS))
def test_meta_to_empty_reset_is_pytorchs_eager_init(name: str, dtype: torch.dtype) -> None:
    """Every "default" parity layer, BatchNorm buffers, padding rows and channels_last
    included: built on meta, to_empty, garbage, reset == manual_seed(11); Layer()."""
    make = LAYERS[name]

    class One(SeededModule):
        @seeded_init(scheme="default", seed=11)
        def layer(self) -> nn.Module:
            return make(dtype)

    manual_seed(4)
    with torch.device("meta"):
        m = One()
    assert all(t.is_meta for t in m.state_dict().values())
    m.to_empty(device="cpu")
    garbage(m)
    m.reset_parameters()
    want = reference(11, lambda: make(dtype))
    assert_same(snapshot(m.layer), snapshot(want))
    for (key, got), ref in zip(
        m.layer.state_dict().items(), want.state_dict().values(), strict=True
    ):
        assert got.stride() == ref.stride(), key  # channels_last stays channels_last


def test_gpt2_small_from_meta_equals_eager_and_ties_again() -> None:
    """The GPT-2-small-shaped example (124M parameters): meta -> to_empty -> reset gives the
    eager model's state_dict bitwise, and lm_head is tied to wte again."""
    gpt = gpt_example()
    manual_seed(1)
    eager = gpt.GPT(gpt.GPT2_SMALL)
    manual_seed(2)
    with torch.device("meta"):
        model = gpt.GPT(gpt.GPT2_SMALL)
    model.to_empty(device="cpu")
    assert model.lm_head.weight is not model.wte.weight  # to_empty unties
    model.reset_parameters()
    assert model.lm_head.weight is model.wte.weight
    assert_same(snapshot(model), snapshot(eager))


# -- draw_on= and draw_dtype= ----------------------------------------------------------------


class Mixed(SeededModule):
    @seeded_init(scheme="kaiming_normal", seed=1)
    def fc(self) -> nn.Linear:
        return nn.Linear(8, 8)

    @seeded_init(scheme="normal", seed=2)
    def emb(self) -> nn.Embedding:
        return nn.Embedding(10, 10)  # 100 values: bfloat16 draws differ from float32 rounded

    @seeded_init(scheme="orthogonal", seed=4)
    def conv(self) -> nn.Conv2d:
        return nn.Conv2d(3, 8, 3)

    @seeded_init(scheme="default", seed=5)
    def lin(self) -> nn.Linear:
        return nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.lin(torch.relu(self.fc(x)))
        return out


def _rounded(dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The float32 model's values, rounded to ``dtype``."""
    return {k: v.to(dtype) for k, v in snapshot(Mixed()).items()}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_draw_dtype_float32_gives_the_float32_twin_rounded(dtype: torch.dtype) -> None:
    """draw_dtype=torch.float32, on the model or per call: a half-precision model holds its
    float32 twin's values rounded; independent references: nn.init and PyTorch's Linear."""
    held = Mixed(draw_dtype=torch.float32).to(dtype)
    garbage(held)
    held.reset_parameters()
    per_call = Mixed().to(dtype)
    per_call.reset_parameters(draw_dtype=torch.float32)
    want = _rounded(dtype)
    assert_same(snapshot(held), want)
    assert_same(snapshot(per_call), want)
    assert torch.equal(held.fc.weight, nn_init(nn.init.kaiming_normal_, (8, 8), 1).to(dtype))
    assert torch.equal(held.emb.weight, nn_init(nn.init.normal_, (10, 10), 2).to(dtype))
    linear = snapshot(reference(5, lambda: nn.Linear(8, 4)))
    assert torch.equal(held.lin.weight, linear["weight"].to(dtype))
    assert torch.equal(held.lin.bias, linear["bias"].to(dtype))


def test_by_default_half_precision_is_drawn_in_its_own_dtype_as_pytorch_does() -> None:
    """The default stays PyTorch's parity: bfloat16 draws, not float32 draws rounded."""
    m = Mixed().to(torch.bfloat16)
    m.reset_parameters()
    linear = snapshot(reference(5, lambda: nn.Linear(8, 4, dtype=torch.bfloat16)))
    assert torch.equal(m.lin.weight, linear["weight"])
    want = nn_init(nn.init.normal_, (10, 10), 2, dtype=torch.bfloat16)
    assert torch.equal(m.emb.weight, want)
    assert not torch.equal(m.emb.weight, _rounded(torch.bfloat16)["emb.weight"])


def test_per_call_draw_settings_do_not_stick() -> None:
    """reset_parameters(draw_dtype=...) applies to that call; the next one draws as before."""
    m = Mixed().to(torch.bfloat16)
    m.reset_parameters(draw_dtype=torch.float32)
    assert torch.equal(m.emb.weight, _rounded(torch.bfloat16)["emb.weight"])
    m.reset_parameters()
    want = nn_init(nn.init.normal_, (10, 10), 2, dtype=torch.bfloat16)
    assert torch.equal(m.emb.weight, want)


def test_nested_model_draws_as_its_outermost_model() -> None:
    """A nested SeededModule's reset follows the outermost model's draw settings."""

    class Outer(SeededModule):
        @seeded_init()
        def inner(self) -> Mixed:
            return Mixed()

    m = Outer(draw_dtype=torch.float32).to(torch.bfloat16)
    m.inner.reset_parameters()
    want = _rounded(torch.bfloat16)
    assert_same(snapshot(m.inner), want)


def test_draw_on_device_on_the_cpu_is_the_cpu_draw() -> None:
    """On a CPU model both modes draw on the CPU generator: the same values."""
    m = Mixed(draw_on="device")
    garbage(m)
    m.reset_parameters()
    assert_same(snapshot(m), snapshot(Mixed()))


BAD_DRAWS: list[tuple[dict[str, Any], str]] = [
    ({"draw_on": "gpu"}, r"draw_on='gpu'; write draw_on=\"cpu\""),
    ({"draw_on": "cuda"}, r"draw_on='cuda'; write draw_on=\"cpu\""),
    ({"draw_on": None, "draw_dtype": torch.float16}, r"draw_dtype=torch\.float16; write "),
    ({"draw_dtype": torch.int64}, r"draw_dtype=torch\.int64; write draw_dtype=torch\.float32"),
    ({"draw_dtype": "float32"}, r"draw_dtype='float32'; write draw_dtype=torch\.float32"),
]


@pytest.mark.parametrize(("kwargs", "match"), BAD_DRAWS)
def test_bad_draw_settings_are_a_plan_error_and_change_nothing(
    kwargs: dict[str, Any], match: str
) -> None:
    """Per call: PlanError naming the model and what to write; no value changed."""
    m = Mixed()
    garbage(m)
    before = snapshot(m)
    with pytest.raises(PlanError, match=r"Mixed\.reset_parameters: " + match):
        m.reset_parameters(**kwargs)
    assert_same(snapshot(m), before)


@pytest.mark.parametrize(("kwargs", "match"), [b for b in BAD_DRAWS if b[0].get("draw_on")])
def test_bad_draw_settings_at_construction_are_a_plan_error(
    kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(PlanError, match=r"Mixed\(\.\.\.\): " + match):
        Mixed(**kwargs)


# -- torch.compile ---------------------------------------------------------------------------


def test_compiled_model_resets_to_the_plain_values() -> None:
    """torch.compile's wrapper forwards reset_parameters() to the model; the compiled
    forward then computes with the new values."""
    model = Mixed()
    # torch.compile is typed as returning a function; at runtime it is an OptimizedModule.
    compiled: Any = torch.compile(model, backend="eager")  # pyright: ignore[reportUnknownMemberType]
    x = torch.linspace(-1, 1, 16).reshape(2, 8)
    first = compiled(x)
    assert torch.equal(first, model(x))
    garbage(model)
    assert not torch.equal(compiled(x), first)
    compiled.reset_parameters()
    assert_same(snapshot(model), snapshot(Mixed()))
    assert torch.equal(compiled(x), first)


# -- CUDA (C12, C13): run where a GPU exists -------------------------------------------------


class C12(SeededModule):
    @seeded_init(scheme="kaiming_normal", seed=3)
    def small(self) -> nn.Linear:
        return nn.Linear(16, 8)

    @seeded_init(scheme="normal", std=0.02, seed=5)
    def big(self) -> nn.Linear:
        return nn.Linear(4096, 1024)

    @seeded_init(scheme="orthogonal", seed=4)
    def conv(self) -> nn.Conv2d:
        return nn.Conv2d(3, 8, 3)


@needs_cuda
def test_c12_cpu_cuda_and_meta_to_cuda_are_bitwise_equal() -> None:
    """C12 steps 2-4: moved to CUDA, built under a CUDA device, meta -> to_empty(cuda)."""
    want = snapshot(C12())
    moved = C12().to("cuda")
    moved.reset_parameters()
    with torch.device("cuda"):
        direct = C12()
    with torch.device("meta"):
        deferred = C12()
    deferred.to_empty(device="cuda")
    deferred.reset_parameters()
    for m in (moved, direct, deferred):
        assert all(t.is_cuda for t in m.state_dict().values())
        assert_same({k: v.cpu() for k, v in snapshot(m).items()}, want)


@needs_cuda
@pytest.mark.parametrize("draw_on", get_args(DrawOn))
def test_c13_cuda_keeps_identity_and_never_mismatches_generators(draw_on: DrawOn) -> None:
    """C13 on CUDA, both modes: no generator/device error, same objects, reproducible."""

    class C13(SeededModule):
        @seeded_init(scheme="kaiming_normal", seed=1)
        def fc(self) -> nn.Linear:
            return nn.Linear(8, 8)

        @seeded_init(scheme="normal", seed=2)
        def emb(self) -> nn.Embedding:
            return nn.Embedding(10, 8)

    runs: list[dict[str, torch.Tensor]] = []
    for _ in range(2):
        m = C13().to("cuda")
        garbage(m)
        params = list(m.parameters())
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        before = snapshot(m)
        m.reset_parameters(draw_on=draw_on)
        assert [p is q for p, q in zip(m.parameters(), params, strict=True)] == [True] * len(params)
        assert opt.param_groups[0]["params"] == params
        for p in params:
            assert p.is_cuda and p.dtype == torch.float32 and p.requires_grad
            assert p.grad_fn is None
        got = snapshot(m)
        assert not torch.equal(got["fc.weight"], before["fc.weight"])
        assert not torch.equal(got["emb.weight"], before["emb.weight"])
        runs.append(got)
    assert_same(runs[0], runs[1])
    if draw_on == "cpu":
        assert_same({k: v.cpu() for k, v in runs[0].items()}, snapshot(C13()))


# -- lazy layers (C07) -----------------------------------------------------------------------


LAZY_SCHEMES: list[SchemeName] = ["orthogonal", "default"]


@pytest.mark.parametrize("scheme", LAZY_SCHEMES)
def test_lazy_layers_materialize_to_their_eager_twins(scheme: SchemeName) -> None:
    """LazyLinear and LazyConv2d, reset before the first forward: after it they hold what the
    eager layers declared the same way hold, bitwise."""

    class Lazy(SeededModule):
        @seeded_init(scheme=scheme, seed=3)
        def proj(self) -> nn.Module:
            return nn.LazyLinear(4)

        @seeded_init(scheme=scheme, seed=4)
        def conv(self) -> nn.Module:
            return nn.LazyConv2d(5, 3)

    class Eager(SeededModule):
        @seeded_init(scheme=scheme, seed=3)
        def proj(self) -> nn.Module:
            return nn.Linear(8, 4)

        @seeded_init(scheme=scheme, seed=4)
        def conv(self) -> nn.Module:
            return nn.Conv2d(2, 5, 3)

    m = Lazy()
    m.reset_parameters()
    m.proj(torch.ones(2, 8))
    m.conv(torch.ones(1, 2, 6, 6))
    assert_same(snapshot(m), snapshot(Eager()))
    if scheme == "default":
        linear = reference(3, lambda: nn.Linear(8, 4))
        assert torch.equal(m.get_parameter("proj.weight"), linear.get_parameter("weight"))


@pytest.mark.parametrize("name", list(LAYERS))
def test_draw_dtype_float32_rounds_pytorchs_own_float32_init(name: str) -> None:
    """Every "default" parity layer in bfloat16 with draw_dtype=torch.float32: PyTorch's
    float32 layer (manual_seed(11); Layer()) rounded to bfloat16, bitwise."""
    make = LAYERS[name]

    class One(SeededModule):
        @seeded_init(scheme="default", seed=11)
        def layer(self) -> nn.Module:
            return make(torch.bfloat16)

    m = One(draw_dtype=torch.float32)
    m.reset_parameters()
    fp32 = snapshot(reference(11, lambda: make(torch.float32)))
    want = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in fp32.items()}
    assert_same(snapshot(m.layer), want)
