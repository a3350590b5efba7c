"""Every named scheme is bitwise the torch.nn.init function called with a generator seeded the
same; biases, per-parameter rules, user functions and padding rows follow the documented rules."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any

import pytest
import scipy.stats
import torch
from torch import nn

from seeded_init import (
    Constant,
    InitSpec,
    KaimingNormal,
    KaimingUniform,
    Normal,
    Orthogonal,
    PlanError,
    Scheme,
    SchemeName,
    SeededModule,
    TruncNormal,
    Uniform,
    XavierNormal,
    XavierUniform,
    seeded_init,
)
from tests.helpers import declared, forked_rng, manual_seed, nn_init, snapshot

init = nn.init

# (scheme, as its type or its name; reference fill of the (4, 6) weight given a generator)
Case = tuple[Scheme | SchemeName, Callable[[torch.Tensor, torch.Generator], object]]
CASES: dict[str, Case] = {
    "uniform": (
        Uniform(a=-0.5, b=2.0),
        lambda t, g: init.uniform_(t, -0.5, 2.0, generator=g),
    ),
    "normal": (
        Normal(mean=1.0, std=0.3),
        lambda t, g: init.normal_(t, 1.0, 0.3, generator=g),
    ),
    "trunc_normal-relative": (
        TruncNormal(std=0.02),
        lambda t, g: init.trunc_normal_(t, 0.0, 0.02, -0.04, 0.04, generator=g),
    ),
    "trunc_normal-absolute": (
        TruncNormal(mean=0.1, std=0.5, a=-0.2, b=1.0),
        lambda t, g: init.trunc_normal_(t, 0.1, 0.5, -0.2, 1.0, generator=g),
    ),
    "xavier_uniform": (
        XavierUniform(gain=2.0),
        lambda t, g: init.xavier_uniform_(t, 2.0, generator=g),
    ),
    "xavier_normal": (
        XavierNormal(gain=0.5),
        lambda t, g: init.xavier_normal_(t, 0.5, generator=g),
    ),
    "kaiming_uniform": (
        KaimingUniform(a=0.1, mode="fan_out"),
        lambda t, g: init.kaiming_uniform_(t, 0.1, "fan_out", generator=g),
    ),
    "kaiming_normal": (
        KaimingNormal(nonlinearity="relu"),
        lambda t, g: init.kaiming_normal_(t, nonlinearity="relu", generator=g),
    ),
    "kaiming_normal-selu": (
        KaimingNormal(nonlinearity="selu"),
        lambda t, g: init.kaiming_normal_(t, nonlinearity="selu", generator=g),
    ),
    "orthogonal": (
        Orthogonal(gain=1.5),
        lambda t, g: init.orthogonal_(t, 1.5, generator=g),
    ),
    "zeros": ("zeros", lambda t, g: init.zeros_(t)),
    "ones": ("ones", lambda t, g: init.ones_(t)),
    "constant": (Constant(val=0.3), lambda t, g: init.constant_(t, 0.3)),
    "eye": ("eye", lambda t, g: init.eye_(t)),
}


def _with_seed(scheme: Scheme | SchemeName, seed: int) -> InitSpec:
    return seeded_init(scheme=scheme, seed=seed)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("seed", [0, 12345])
@pytest.mark.parametrize("name", list(CASES))
def test_scheme_matches_nn_init_with_a_generator(name: str, seed: int, dtype: torch.dtype) -> None:
    """The weight equals torch.nn.init.<scheme>_ with Generator().manual_seed(seed); bias zeros."""
    spec, ref = CASES[name]
    layer = declared(lambda: nn.Linear(6, 4, dtype=dtype), _with_seed(spec, seed))
    want = torch.empty(4, 6, dtype=dtype)
    if name == "orthogonal" and dtype == torch.bfloat16:
        # PyTorch has no bfloat16 QR; seeded-init draws in float32 and rounds.
        want.copy_(nn_init(init.orthogonal_, (4, 6), seed, 1.5))
    else:
        ref(want, torch.Generator().manual_seed(seed))
    assert torch.equal(layer.get_parameter("weight"), want)
    assert torch.equal(layer.get_parameter("bias"), torch.zeros(4, dtype=dtype))


def test_dirac_matches_nn_init() -> None:
    """dirac with groups on a conv weight equals torch.nn.init.dirac_."""
    layer = declared(lambda: nn.Conv2d(2, 4, 3), seeded_init(scheme="dirac", groups=2, seed=1))
    want = torch.empty(4, 2, 3, 3)
    init.dirac_(want, 2)
    assert torch.equal(layer.get_parameter("weight"), want)


def _torch_sparse_with_mask_from(
    seed: int, shape: tuple[int, int], sparsity: float, std: float
) -> torch.Tensor:
    """torch.nn.init.sparse_, made to take its zero mask from the same stream as its values.

    PyTorch draws the values from the generator and the mask from the global RNG; here the
    global RNG is set to the generator's state after the values, which is what seeded-init's
    sparse does with one generator.
    """
    after_values = torch.Generator().manual_seed(seed)
    torch.empty(shape).normal_(0, std, generator=after_values)
    with forked_rng():
        torch.default_generator.set_state(after_values.get_state())
        t = torch.empty(shape)
        init.sparse_(t, sparsity, std, generator=torch.Generator().manual_seed(seed))
    return t


def test_sparse_takes_its_mask_from_the_layer_generator() -> None:
    """sparse equals PyTorch's sparse_ whose mask is drawn from the layer's stream, and the
    global RNG neither changes nor matters."""
    spec = seeded_init(scheme="sparse", sparsity=0.5, std=0.1, seed=8)
    with forked_rng():
        manual_seed(1)
        state = torch.get_rng_state()
        a = declared(lambda: nn.Linear(5, 6), spec).get_parameter("weight")
        assert torch.equal(state, torch.get_rng_state())
        manual_seed(2)
        b = declared(lambda: nn.Linear(5, 6), spec).get_parameter("weight")
    assert torch.equal(a, b)
    assert torch.equal(a, _torch_sparse_with_mask_from(8, (6, 5), 0.5, 0.1))
    assert ((a == 0).sum(dim=0) == math.ceil(0.5 * 6)).all()


def test_bias_rule_defaults_to_zeros_and_takes_any_rule() -> None:
    """bias= draws from the layer's generator right after the weight."""
    spec = seeded_init(
        scheme="kaiming_uniform", seed=3, bias=seeded_init(scheme="uniform", a=-1.0, b=1.0)
    )
    layer = declared(lambda: nn.Linear(6, 4), spec)
    g = torch.Generator().manual_seed(3)
    w, b = torch.empty(4, 6), torch.empty(4)
    init.kaiming_uniform_(w, generator=g)
    init.uniform_(b, -1.0, 1.0, generator=g)
    assert torch.equal(layer.get_parameter("weight"), w)
    assert torch.equal(layer.get_parameter("bias"), b)


def test_bias_default_rule_is_pytorchs_own_bound() -> None:
    """bias="default" under another scheme gives PyTorch's uniform(+-1/sqrt(fan_in)), drawn
    after the weight."""
    layer = declared(
        lambda: nn.Linear(6, 4), seeded_init(scheme="xavier_normal", seed=2, bias="default")
    )
    g = torch.Generator().manual_seed(2)
    w, b = torch.empty(4, 6), torch.empty(4)
    init.xavier_normal_(w, generator=g)
    init.uniform_(b, -1 / math.sqrt(6), 1 / math.sqrt(6), generator=g)
    assert torch.equal(layer.get_parameter("weight"), w)
    assert torch.equal(layer.get_parameter("bias"), b)


def test_default_scheme_with_a_bias_rule() -> None:
    """scheme="default", bias="zeros": PyTorch's weight, zero bias."""
    layer = declared(lambda: nn.Linear(6, 4), seeded_init(seed=2, bias="zeros"))
    want = nn_init(init.kaiming_uniform_, (4, 6), 2, a=math.sqrt(5))
    assert torch.equal(layer.get_parameter("weight"), want)
    assert not layer.get_parameter("bias").any()


def test_per_parameter_rule_on_an_lstm() -> None:
    """params={"weight_hh_l0": "orthogonal"}: that weight orthogonal, the rest by the scheme, in
    registration order from one generator."""
    spec = seeded_init(scheme="xavier_uniform", seed=4, params={"weight_hh_l0": "orthogonal"})
    lstm = declared(lambda: nn.LSTM(3, 5), spec)
    g = torch.Generator().manual_seed(4)
    w_ih, w_hh = torch.empty(20, 3), torch.empty(20, 5)
    init.xavier_uniform_(w_ih, generator=g)
    init.orthogonal_(w_hh, generator=g)
    assert torch.equal(lstm.get_parameter("weight_ih_l0"), w_ih)
    assert torch.equal(lstm.get_parameter("weight_hh_l0"), w_hh)
    assert not lstm.get_parameter("bias_ih_l0").any()
    assert not lstm.get_parameter("bias_hh_l0").any()


def test_per_part_rule_with_its_own_seed_on_a_sub_layer() -> None:
    """A params= rule with a seed draws that sub-layer from its own generator."""
    spec = seeded_init(scheme="normal", params={"1": seeded_init(scheme="kaiming_normal", seed=77)})
    seq = declared(lambda: nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 5)), spec)
    want = nn_init(init.kaiming_normal_, (5, 3), 77)
    assert torch.equal(seq.get_parameter("1.weight"), want)
    assert not seq.get_parameter("1.bias").any()


def _half_normal(t: torch.Tensor, g: torch.Generator) -> None:
    t.normal_(0.0, 0.5, generator=g)


def test_user_function_gets_the_tensor_and_the_layer_generator() -> None:
    """A function scheme draws from the layer's generator."""
    layer = declared(lambda: nn.Linear(6, 4), seeded_init(scheme=_half_normal, seed=6))
    want = torch.empty(4, 6).normal_(0.0, 0.5, generator=torch.Generator().manual_seed(6))
    assert torch.equal(layer.get_parameter("weight"), want)
    assert not layer.get_parameter("bias").any()


def test_parameter_factory_gets_the_scheme() -> None:
    """A factory returning an nn.Parameter (a positional embedding) is drawn by its scheme."""

    class Pos(SeededModule):
        @seeded_init(scheme="trunc_normal", std=0.02, seed=5)
        def pos(self) -> nn.Parameter:
            return nn.Parameter(torch.empty(1, 8, 4))

    want = nn_init(init.trunc_normal_, (1, 8, 4), 5, 0.0, 0.02, -0.04, 0.04)
    assert torch.equal(Pos().pos, want)


@pytest.mark.parametrize("name", [n for n in CASES if n not in ("eye",)])
def test_padding_row_stays_zero_under_every_scheme(name: str) -> None:
    """C05 for every scheme: an Embedding's padding row is zero after the reset."""
    spec, _ = CASES[name]
    emb = declared(lambda: nn.Embedding(10, 4, padding_idx=3), _with_seed(spec, 1))
    assert not emb.get_parameter("weight")[3].any()


class C05(SeededModule):
    tok: Annotated[nn.Embedding, seeded_init(scheme="normal", std=1.0, seed=7)]
    pos: Annotated[nn.Embedding, seeded_init(scheme="normal", seed=8)]
    cls: Annotated[nn.Embedding, seeded_init(scheme="normal", seed=9)]

    def __init__(self) -> None:
        super().__init__()
        self.tok = nn.Embedding(10, 4, padding_idx=0)
        self.pos = nn.Embedding(10, 4, padding_idx=-1)
        self.cls = nn.Embedding(10, 4)


def test_c05_padding_rows() -> None:
    """C05: padding rows zero (also a negative index), lookups of them zero, others equal."""
    m1, m2 = C05(), C05()
    m1.reset_parameters()
    m2.reset_parameters()
    assert not m1.tok.weight[0].any()
    assert not m1.tok(torch.tensor([0])).any()
    assert not m1.pos.weight[9].any()
    assert m1.cls.weight.ne(0).any(dim=1).all()
    for a, b in zip(snapshot(m1).values(), snapshot(m2).values(), strict=True):
        assert torch.equal(a, b)
    assert m1.tok.weight[1:].ne(0).all()


class C25(SeededModule):
    @seeded_init(scheme="trunc_normal", std=0.02, seed=0)
    def fc(self) -> nn.Linear:
        return nn.Linear(1000, 1000)


def test_c25_trunc_normal_truncates_relative_to_std() -> None:
    """C25: default bounds are +-2 std; the std matches scipy's truncated normal."""
    w = C25().fc.weight.detach()
    assert w.abs().max().item() <= 0.04
    want_std = scipy.stats.truncnorm(-2.0, 2.0, scale=0.02).std()
    assert abs(w.std().item() - want_std) / want_std < 0.01
    assert torch.equal(w, C25().fc.weight)


def test_c25_trunc_normal_in_bfloat16() -> None:
    """C25: in bfloat16, no value beyond the bound rounded to bfloat16."""
    m = C25().to(torch.bfloat16)
    m.reset_parameters()
    assert m.fc.weight.abs().max().item() <= 0.0400390625


class C03A(SeededModule):
    @seeded_init(scheme="kaiming_normal", seed=3)
    def fc(self) -> nn.Linear:
        return nn.Linear(16, 8)


def test_c03_fan_scheme_on_a_linear_with_bias() -> None:
    """C03 A: a fan-based scheme on a Linear with a bias works; the bias follows the bias rule."""
    a1, a2 = C03A(), C03A()
    assert torch.equal(a1.fc.weight, a2.fc.weight)
    assert not a1.fc.bias.any()
    assert abs(a1.fc.weight.std().item() - math.sqrt(2 / 16)) < 0.1


@pytest.mark.parametrize(
    "scheme", ["kaiming_normal", "kaiming_uniform", "xavier_uniform", "xavier_normal", "orthogonal"]
)
def test_c03_fan_scheme_on_a_1d_parameter_names_it(scheme: Any) -> None:
    """C03 B/C: a 1-D parameter under a scheme that needs 2 dimensions is a PlanError naming the
    attribute and the scheme, not torch's bare ValueError."""
    spec = seeded_init(scheme=scheme, seed=3)

    class B(SeededModule):
        @spec
        def scale(self) -> nn.Parameter:
            return nn.Parameter(torch.ones(8))

    with pytest.raises(PlanError) as info:
        B()
    assert "scale" in str(info.value) and scheme in str(info.value)
    assert "Fan in and fan out" not in str(info.value)


def test_fan_scheme_on_a_composite_names_the_inner_parameter() -> None:
    """A LayerNorm weight inside a declared block under xavier is named, with the fix."""

    class Block(SeededModule):
        @seeded_init(scheme="xavier_uniform")
        def block(self) -> nn.Sequential:
            return nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))

    with pytest.raises(PlanError, match=r"'1\.weight'.*xavier_uniform.*params="):
        Block()

    class Fixed(SeededModule):
        @seeded_init(scheme="xavier_uniform", params={"1.weight": "ones"})
        def block(self) -> nn.Sequential:
            return nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))

    assert torch.equal(Fixed().block.get_parameter("1.weight"), torch.ones(4))


class Depth(SeededModule):
    def __init__(self, n_layer: int) -> None:
        super().__init__()
        self.n_layer = n_layer

    @seeded_init(scheme="normal", std=lambda m: 0.02 / math.sqrt(2 * m.n_layer), seed=3)
    def proj(self) -> nn.Linear:
        return nn.Linear(4, 4)


def test_keyword_may_be_a_function_of_the_declaring_module() -> None:
    """std=lambda m: ... is called on the declaring module when the plan is made."""
    m = Depth(8)
    want = nn_init(init.normal_, (4, 4), 3, 0.0, 0.02 / math.sqrt(16))
    assert torch.equal(m.proj.weight, want)
    assert m.init_plan()["proj.weight"].rule == f"normal(std={0.02 / math.sqrt(16):.6g})"


def test_keyword_function_returning_a_bad_value_is_a_plan_error() -> None:
    """A keyword function's value out of range: PlanError naming the layer, nothing written."""
    m = Depth(8)
    before = snapshot(m)
    m.n_layer = -1  # sqrt of a negative number
    with pytest.raises(PlanError, match=r"Depth\.proj: std= function raised"):
        m.reset_parameters()
    after = snapshot(m)
    assert all(torch.equal(after[k], before[k]) for k in before)
