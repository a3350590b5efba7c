"""The distribution check (issue 6): theoretical moments against scipy.stats, tensors that
PyTorch itself or torch.nn.init drew pass against a SeededModule's plan of the same schemes
and fail once scaled or shifted, the standard errors against Monte Carlo, a pass against
scipy's Kolmogorov-Smirnov test, bad input, and the PNG of histograms."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Protocol, cast

import pytest
import scipy.stats
import torch
from torch import nn
from torch.nn.utils import parametrizations

from seeded_init import InitPlan, Nonlinearity, ParamInit, SeededModule, seeded_init
from seeded_init._plot import plot_distributions
from seeded_init._stats import (
    DistributionCheck,
    Expected,
    check_distributions,
    expected_moments,
    trunc_normal_moments,
)

from .helpers import forked_rng, manual_seed, snapshot

# -- scipy.stats, typed for what these tests call (stubs/scipy declares mean and std only) ----


class _Frozen(Protocol):
    def mean(self) -> float: ...
    def std(self) -> float: ...
    def stats(self, moments: str) -> float: ...
    def cdf(self, x: object) -> object: ...


class _KsResult(Protocol):
    statistic: float
    pvalue: float


class _Kstest(Protocol):
    def __call__(self, rvs: object, cdf: Callable[[object], object]) -> _KsResult: ...


KSTEST = cast(_Kstest, vars(scipy.stats)["kstest"])


def frozen(family: str, *args: float, loc: float = 0.0, scale: float = 1.0) -> _Frozen:
    dist = {"uniform": scipy.stats.uniform, "normal": scipy.stats.norm}
    return cast(_Frozen, dist.get(family, scipy.stats.truncnorm)(*args, loc=loc, scale=scale))


def scipy_of(e: Expected) -> _Frozen:
    """scipy's distribution for a theory, from its support and parameters."""
    if e.family == "uniform":
        return frozen("uniform", loc=e.low, scale=e.high - e.low)
    if e.family == "truncated normal":
        lo, hi = (e.low - e.loc) / e.scale, (e.high - e.loc) / e.scale
        return frozen("truncated normal", lo, hi, loc=e.loc, scale=e.scale)
    return frozen("normal", loc=e.mean, scale=e.std)


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """torch.nn.init's own fans."""
    return nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))  # pyright: ignore[reportPrivateUsage]


def record(
    rule: str,
    keywords: Mapping[str, float | int | str | None],
    shape: tuple[int, ...] = (64, 32),
    *,
    path: str = "w",
    fallback: bool = False,
    tied_to: str | None = None,
) -> ParamInit:
    """A plan record as seeded-init writes them, with torch's fans of ``shape``."""
    fan_in, fan_out = fans(shape) if len(shape) >= 2 else (None, None)
    return ParamInit(
        path,
        "",
        "x",
        rule,
        0,
        "derived",
        None,
        shape,
        torch.float32,
        tied_to=tied_to,
        fan_in=fan_in,
        fan_out=fan_out,
        keywords=MappingProxyType(dict(keywords)),
        fallback=fallback,
    )


def assert_matches(got: Expected | None, want: _Frozen) -> None:
    assert got is not None
    assert got.mean == pytest.approx(want.mean(), rel=1e-9, abs=1e-12)
    assert got.std == pytest.approx(want.std(), rel=1e-9)
    assert got.kurtosis == pytest.approx(float(want.stats(moments="k")), rel=1e-7, abs=1e-9)


# -- theoretical moments against scipy.stats -------------------------------------------------


@pytest.mark.parametrize(("a", "b"), [(-0.25, 0.25), (0.0, 1.0), (-3.0, 7.0)])
def test_uniform_moments_are_scipys(a: float, b: float) -> None:
    got = expected_moments(record(f"uniform(a={a}, b={b})", {"a": a, "b": b}))
    assert got is not None and got.family == "uniform" and (got.low, got.high) == (a, b)
    assert_matches(got, frozen("uniform", loc=a, scale=b - a))


@pytest.mark.parametrize(("mean", "std"), [(0.0, 1.0), (0.5, 0.02), (-3.0, 7.0)])
def test_normal_moments_are_scipys(mean: float, std: float) -> None:
    got = expected_moments(record("normal(mean=..., std=...)", {"mean": mean, "std": std}))
    assert got is not None and got.family == "normal"
    assert_matches(got, frozen("normal", loc=mean, scale=std))


@pytest.mark.parametrize(
    ("mean", "std", "a", "b"),
    [
        (0.0, 0.02, None, None),  # seeded-init's default: mean -+ 2 std
        (1.0, 2.0, None, None),
        (1.0, 2.0, -1.0, 4.0),  # asymmetric
        (0.0, 1.0, 0.5, None),  # one side beyond the mean
        (0.0, 1.0, 2.0, 5.0),  # in the tail
        (0.0, 1.0, -2.0, 2.0),  # PyTorch's absolute defaults
    ],
)
def test_trunc_normal_moments_are_scipys(
    mean: float, std: float, a: float | None, b: float | None
) -> None:
    got = expected_moments(record("trunc_normal(...)", {"mean": mean, "std": std, "a": a, "b": b}))
    lo = mean - 2 * std if a is None else a
    hi = mean + 2 * std if b is None else b
    assert got is not None and got.family == "truncated normal"
    assert (got.low, got.high) == (lo, hi)
    want = frozen("truncated normal", (lo - mean) / std, (hi - mean) / std, loc=mean, scale=std)
    assert_matches(got, want)


@pytest.mark.parametrize(
    ("a", "b"), [(-math.inf, 0.0), (1.0, math.inf), (-math.inf, math.inf), (-0.1, 0.3)]
)
def test_trunc_normal_moments_with_open_bounds(a: float, b: float) -> None:
    m, s, k, mass = trunc_normal_moments(0.5, 1.5, a, b)
    want = frozen("truncated normal", (a - 0.5) / 1.5, (b - 0.5) / 1.5, loc=0.5, scale=1.5)
    assert m == pytest.approx(want.mean(), rel=1e-9, abs=1e-12)
    assert s == pytest.approx(want.std(), rel=1e-9)
    assert k == pytest.approx(float(want.stats(moments="k")), rel=1e-7, abs=1e-9)
    assert 0 < mass <= 1


KAIMING: list[tuple[tuple[int, ...], float, str, Nonlinearity]] = [
    ((512, 256), math.sqrt(5), "fan_in", "leaky_relu"),  # nn.Linear's own
    ((64, 32, 3, 3), 0.0, "fan_out", "relu"),
    ((10, 20), 0.0, "fan_in", "tanh"),
    ((7, 5, 4), 0.2, "fan_out", "leaky_relu"),
    ((30, 40), 0.0, "fan_in", "selu"),
]


@pytest.mark.parametrize(("shape", "a", "mode", "nonlinearity"), KAIMING)
@pytest.mark.parametrize("uniform", [True, False])
def test_kaiming_moments_are_scipys(
    shape: tuple[int, ...], a: float, mode: str, nonlinearity: Nonlinearity, uniform: bool
) -> None:
    scheme = "kaiming_uniform" if uniform else "kaiming_normal"
    kw: dict[str, float | int | str | None] = {"a": a, "mode": mode, "nonlinearity": nonlinearity}
    got = expected_moments(record(f"{scheme}(...)", kw, shape))
    fan_in, fan_out = fans(shape)
    std = nn.init.calculate_gain(nonlinearity, a) / math.sqrt(
        fan_in if mode == "fan_in" else fan_out
    )
    bound = math.sqrt(3.0) * std  # torch's kaiming_uniform_
    want = (
        frozen("uniform", loc=-bound, scale=2 * bound) if uniform else frozen("normal", scale=std)
    )
    assert_matches(got, want)


@pytest.mark.parametrize(
    ("shape", "gain"), [((30, 50), 1.0), ((16, 8, 5), math.sqrt(2)), ((4, 9), 0.3)]
)
@pytest.mark.parametrize("uniform", [True, False])
def test_xavier_moments_are_scipys(shape: tuple[int, ...], gain: float, uniform: bool) -> None:
    scheme = "xavier_uniform" if uniform else "xavier_normal"
    got = expected_moments(record(f"{scheme}(gain={gain})", {"gain": gain}, shape))
    fan_in, fan_out = fans(shape)
    if uniform:
        bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
        want = frozen("uniform", loc=-bound, scale=2 * bound)
    else:
        want = frozen("normal", scale=gain * math.sqrt(2.0 / (fan_in + fan_out)))
    assert_matches(got, want)


def test_rules_the_records_write_are_read_as_torch_nn_init_means_them() -> None:
    """Bare names take torch's defaults; a chain's last rule wins; constants are constants."""
    bare = expected_moments(record("xavier_uniform", {}, (24, 8)))
    assert bare is not None and bare.high == pytest.approx(math.sqrt(6.0 / 32))
    chain = expected_moments(record("uniform(+-0.25) -> zeros", {}, (8,)))
    assert chain is not None and (chain.family, chain.mean, chain.std) == ("constant", 0.0, 0.0)
    const = expected_moments(record("constant(0.25)", {"val": 0.25}, (3,)))
    assert const is not None and (const.family, const.mean) == ("constant", 0.25)
    ones = expected_moments(record("ones", {}, (3,)))
    assert ones is not None and ones.mean == 1.0
    unchecked: list[tuple[str, dict[str, float | int | str | None]]] = [
        ("sparse(sparsity=0.1)", {"sparsity": 0.1, "std": 0.01}),
        ("eye", {}),
        ("dirac", {"groups": 1}),
        ("fn:my_init", {}),
        ("Own.reset_parameters", {}),
        ("uniform(+-0.25)", {}),  # arguments in the rule, but no keywords to read them from
    ]
    for rule, kw in unchecked:
        assert expected_moments(record(rule, kw)) is None, rule
    assert (
        expected_moments(record("normal(std=1)", {"mean": 0.0, "std": 1.0}, fallback=True)) is None
    )
    assert expected_moments(record("normal(std=1)", {}, tied_to="emb.weight")) is None


# -- models: a SeededModule's plan, tensors PyTorch drew ---------------------------------------


class Declared(SeededModule):
    """Every random scheme, and PyTorch's own init of undeclared layers."""

    def __init__(self) -> None:
        super().__init__()
        self.plain = nn.Linear(256, 512)
        self.emb = nn.Embedding(2000, 64, padding_idx=3)
        self.mha = nn.MultiheadAttention(64, 4)

    @seeded_init(scheme="kaiming_normal", mode="fan_out", nonlinearity="relu")
    def conv(self) -> nn.Conv2d:
        return nn.Conv2d(32, 64, 3, bias=False)

    @seeded_init(scheme="kaiming_uniform", a=0.1)
    def ku(self) -> nn.Linear:
        return nn.Linear(300, 200, bias=False)

    @seeded_init(scheme="xavier_uniform", gain=math.sqrt(2))
    def xu(self) -> nn.Linear:
        return nn.Linear(300, 200, bias=False)

    @seeded_init(scheme="xavier_normal", gain=0.5)
    def xn(self) -> nn.Linear:
        return nn.Linear(200, 300, bias=False)

    @seeded_init(scheme="trunc_normal", std=0.02)
    def tn(self) -> nn.Linear:
        return nn.Linear(384, 256)

    @seeded_init(scheme="uniform", a=-0.3, b=0.1)
    def un(self) -> nn.Linear:
        return nn.Linear(100, 200, bias=False)

    @seeded_init(scheme="normal", mean=0.5, std=2.0)
    def no(self) -> nn.Linear:
        return nn.Linear(100, 200, bias=False)

    @seeded_init(scheme="orthogonal", gain=1.5)
    def orth(self) -> nn.Linear:
        return nn.Linear(200, 100, bias=False)

    @seeded_init(scheme="constant", val=0.1, bias="ones")
    def const(self) -> nn.Linear:
        return nn.Linear(10, 20)


@cache
def declared_plan() -> InitPlan:
    """The plan of ``Declared``, made on the meta device (no values drawn)."""
    with torch.device("meta"):
        return Declared().init_plan()


def torch_twin() -> nn.Module:
    """``Declared``'s tensors drawn by PyTorch: its constructors under ``torch.manual_seed``,
    and ``torch.nn.init`` functions with a generator of their own."""
    g = torch.Generator().manual_seed(1)
    with forked_rng():
        manual_seed(0)
        layers: dict[str, nn.Module] = {
            "plain": nn.Linear(256, 512),
            "emb": nn.Embedding(2000, 64, padding_idx=3),
            "mha": nn.MultiheadAttention(64, 4),
        }
        conv, ku = nn.Conv2d(32, 64, 3, bias=False), nn.Linear(300, 200, bias=False)
        xu, xn = nn.Linear(300, 200, bias=False), nn.Linear(200, 300, bias=False)
        tn, un = nn.Linear(384, 256), nn.Linear(100, 200, bias=False)
        no, orth = nn.Linear(100, 200, bias=False), nn.Linear(200, 100, bias=False)
        const = nn.Linear(10, 20)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu", generator=g)
    nn.init.kaiming_uniform_(ku.weight, a=0.1, generator=g)
    nn.init.xavier_uniform_(xu.weight, gain=math.sqrt(2), generator=g)
    nn.init.xavier_normal_(xn.weight, gain=0.5, generator=g)
    nn.init.trunc_normal_(tn.weight, std=0.02, a=-0.04, b=0.04, generator=g)
    nn.init.zeros_(tn.bias)
    nn.init.uniform_(un.weight, -0.3, 0.1, generator=g)
    nn.init.normal_(no.weight, 0.5, 2.0, generator=g)
    nn.init.orthogonal_(orth.weight, gain=1.5, generator=g)
    nn.init.constant_(const.weight, 0.1)
    nn.init.ones_(const.bias)
    layers.update(conv=conv, ku=ku, xu=xu, xn=xn, tn=tn, un=un, no=no, orth=orth, const=const)
    return nn.ModuleDict(layers)


def tensor(model: nn.Module, path: str) -> torch.Tensor:
    t: torch.Tensor = model.state_dict(keep_vars=True)[path]
    return t


RANDOM = [
    "plain.weight",
    "plain.bias",
    "emb.weight",
    "mha.in_proj_weight",
    "mha.out_proj.weight",
    "conv.weight",
    "ku.weight",
    "xu.weight",
    "xn.weight",
    "tn.weight",
    "un.weight",
    "no.weight",
    "orth.weight",
]


def test_pytorchs_own_draws_pass_against_the_plan(global_rng_guard: None) -> None:
    plan = declared_plan()
    assert plan["plain.weight"].rule == "kaiming_uniform(a=sqrt(5))"
    assert plan["mha.out_proj.bias"].rule.endswith("-> zeros")
    twin = torch_twin()
    before = snapshot(twin)
    check = check_distributions(twin, plan)
    assert check.ok, str(check)
    assert not check.failures and not check.unchecked
    assert [e.path for e in check] == [e.path for e in plan]
    for path in RANDOM:
        entry = check[path]
        assert entry.ok is True and entry.z_mean is not None, path
        assert abs(entry.z_mean) <= 5
        if entry.family != "orthogonal":
            assert entry.z_std is not None and abs(entry.z_std) <= 5
    assert check["plain.weight"].family == "uniform"
    assert check["conv.weight"].family == "normal"
    assert check["tn.weight"].family == "truncated normal"
    assert check["orth.weight"].family == "orthogonal" and check["orth.weight"].z_std is None
    assert check["const.weight"].family == "constant" and check["const.weight"].ok is True
    assert check["mha.out_proj.bias"].family == "constant"
    emb = check["emb.weight"]
    assert emb.n == 1999 * 64 and "padding row 3" in emb.note
    values = tensor(twin, "plain.weight").detach().double()
    assert check["plain.weight"].mean == pytest.approx(float(values.mean()), rel=1e-9)
    assert check["plain.weight"].std == pytest.approx(float(values.std()), rel=1e-9)
    after = snapshot(twin)
    assert all(torch.equal(before[k], after[k]) for k in before)  # nothing written


def test_a_seeded_module_passes_its_own_plan_in_float32_and_bfloat16() -> None:
    model = Declared()
    assert check_distributions(model, model.init_plan()).ok
    half = torch_twin().to(torch.bfloat16)  # rounded values stay inside their supports
    check = check_distributions(half, declared_plan())
    assert check.ok, str(check)


def _scale(model: nn.Module, path: str, factor: float) -> None:
    with torch.no_grad():
        tensor(model, path).mul_(factor)


@pytest.mark.parametrize("path", RANDOM)
def test_a_weight_scaled_by_1_5_fails(path: str) -> None:
    twin = torch_twin()
    _scale(twin, path, 1.5)
    check = check_distributions(twin, declared_plan())
    assert not check.ok and not check
    assert [e.path for e in check.failures] == [path]
    assert check[path].ok is False and check[path].note


@pytest.mark.parametrize("path", RANDOM)
def test_a_weight_shifted_by_8_standard_errors_fails(path: str) -> None:
    plan = declared_plan()
    twin = torch_twin()
    theory = expected_moments(plan[path])
    assert theory is not None
    w = tensor(twin, path)
    n = w.numel() - (64 if path == "emb.weight" else 0)
    with torch.no_grad():
        w.add_(8 * theory.se_mean(n))
        if path == "emb.weight":
            w[3].zero_()  # the padding row stays zero
    check = check_distributions(twin, plan)
    assert [e.path for e in check.failures] == [path]
    z = check[path].z_mean
    assert z is not None and 5 < z < 12
    assert "mean is" in check[path].note


def test_a_constant_off_by_one_value_and_a_nonzero_padding_row_fail() -> None:
    twin = torch_twin()
    with torch.no_grad():
        tensor(twin, "const.weight")[0, 0] = 0.1000001
        tensor(twin, "emb.weight")[3, 5] = 1.0
    check = check_distributions(twin, declared_plan())
    assert [e.path for e in check.failures] == ["emb.weight", "const.weight"]
    assert "1 of 200 values are not 0.1" in check["const.weight"].note
    assert "padding row 3 holds 1 nonzero" in check["emb.weight"].note


def test_orthogonal_mean_square_is_checked_exactly() -> None:
    """Orthogonal's std is not a sample statistic: 0.1% off fails, and a normal matrix of the
    same std (which a z-test of the std would pass) fails too."""
    twin = torch_twin()
    _scale(twin, "orth.weight", 1.001)
    assert [e.path for e in check_distributions(twin, declared_plan()).failures] == ["orth.weight"]
    twin = torch_twin()
    with torch.no_grad():
        tensor(twin, "orth.weight").normal_(0, 1.5 / math.sqrt(200))
    check = check_distributions(twin, declared_plan())
    assert [e.path for e in check.failures] == ["orth.weight"]
    assert "root mean square" in check["orth.weight"].note


@pytest.mark.parametrize("shape", [(16, 24), (24, 16), (8, 3, 2, 2)])
def test_orthogonal_passes_for_wide_tall_and_conv_shapes(shape: tuple[int, ...]) -> None:
    w = torch.empty(shape)
    nn.init.orthogonal_(w, 0.7, generator=torch.Generator().manual_seed(3))
    rec = record("orthogonal(gain=0.7)", {"gain": 0.7}, shape, path="weight")
    model = nn.Module()
    model.register_parameter("weight", nn.Parameter(w))
    check = check_distributions(model, InitPlan(0, (rec,)))
    assert check.ok, str(check)


def test_the_check_agrees_with_scipys_kolmogorov_smirnov_test() -> None:
    """A pass of the moment check is a pass of KS against the same theoretical CDF; the
    scaled tensors the check fails are far from it under KS too."""
    plan = declared_plan()
    twin = torch_twin()
    check = check_distributions(twin, plan)
    for path in ["plain.weight", "ku.weight", "conv.weight", "xn.weight", "tn.weight", "un.weight"]:
        theory = expected_moments(plan[path])
        assert theory is not None and check[path].ok
        values = tensor(twin, path).detach().double().reshape(-1).numpy()
        assert KSTEST(values, scipy_of(theory).cdf).pvalue > 1e-3, path
        assert KSTEST(values * 1.5, scipy_of(theory).cdf).pvalue < 1e-12, path


# -- the standard errors against Monte Carlo ---------------------------------------------------


@pytest.mark.parametrize("n", [20, 200])
def test_standard_errors_match_the_spread_over_many_draws(n: int) -> None:
    """Over 2000 independent draws of n values, the spread of the sample mean and of the
    sample std is the formulas' SE within 8% (the estimate's own error is about 1.6%)."""
    g = torch.Generator().manual_seed(2024)
    cases: list[tuple[ParamInit, Callable[[torch.Tensor], object]]] = [
        (
            record("uniform(a=-1, b=3)", {"a": -1.0, "b": 3.0}),
            lambda t: nn.init.uniform_(t, -1.0, 3.0, generator=g),
        ),
        (
            record("normal(mean=0.5, std=2)", {"mean": 0.5, "std": 2.0}),
            lambda t: nn.init.normal_(t, 0.5, 2.0, generator=g),
        ),
        (
            record("trunc_normal(...)", {"mean": 0.0, "std": 1.0, "a": -0.5, "b": 2.0}),
            lambda t: nn.init.trunc_normal_(t, 0.0, 1.0, -0.5, 2.0, generator=g),
        ),
    ]
    for rec, fill in cases:
        theory = expected_moments(rec)
        assert theory is not None
        x = torch.empty(2000, n, dtype=torch.float64)
        fill(x)
        spread_std = float(x.std(dim=1).std()) / theory.se_std(n)
        spread_mean = float(x.mean(dim=1).std()) / theory.se_mean(n)
        assert 0.92 < spread_std < 1.08, (rec.rule, spread_std)
        assert 0.92 < spread_mean < 1.08, (rec.rule, spread_mean)


def test_orthogonal_mean_standard_error_matches_monte_carlo() -> None:
    """SE(mean) = std / sqrt(n) holds for Haar-random (semi-)orthogonal matrices too."""
    g = torch.Generator().manual_seed(5)
    theory = expected_moments(record("orthogonal(gain=2)", {"gain": 2.0}, (16, 24)))
    assert theory is not None
    w = torch.empty(16, 24)
    means: list[float] = []
    for _ in range(600):
        nn.init.orthogonal_(w, 2.0, generator=g)
        means.append(float(w.double().mean()))
    ratio = float(torch.tensor(means).std()) / theory.se_mean(16 * 24)
    assert 0.88 < ratio < 1.12


# -- what is not checked, and the records ------------------------------------------------------


class Own(nn.Module):
    """A layer type seeded-init does not know: its own reset_parameters() draws."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.empty(30, 20))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.w)


def my_init(t: torch.Tensor, g: torch.Generator) -> None:
    with torch.no_grad():
        t.uniform_(-1, 1, generator=g)


class Unchecked(SeededModule):
    def __init__(self) -> None:
        super().__init__()
        self.own = Own()
        self.prelu = nn.PReLU()
        self.emb = nn.Embedding(50, 8)
        self.head = nn.Linear(8, 50, bias=False)
        self.head.weight = self.emb.weight

    @seeded_init(scheme="sparse", sparsity=0.5)
    def sp(self) -> nn.Linear:
        return nn.Linear(20, 30, bias=False)

    @seeded_init(scheme="eye")
    def eye(self) -> nn.Linear:
        return nn.Linear(8, 8, bias=False)

    @seeded_init(scheme="dirac")
    def dirac(self) -> nn.Conv2d:
        return nn.Conv2d(4, 4, 3, bias=False)

    @seeded_init(scheme=my_init)
    def fn(self) -> nn.Linear:
        return nn.Linear(8, 8, bias=False)


class Normed(SeededModule):
    @seeded_init(scheme="normal", std=0.5)
    def fc(self) -> nn.Linear:
        layer = nn.Linear(200, 300)
        parametrizations.weight_norm(layer)  # registered in place
        return layer


def test_a_parametrized_weight_is_checked_as_the_layer_returns_it() -> None:
    """The record names the effective weight (fc.weight), which state_dict does not hold."""
    model = Normed()
    assert "fc.weight" not in model.state_dict()
    check = check_distributions(model, model.init_plan())
    assert check.ok and check["fc.weight"].ok is True and check["fc.weight"].n == 60_000
    with torch.no_grad():
        tensor(model, "fc.parametrizations.weight.original0").mul_(2.0)  # the weight doubles
    assert [e.path for e in check_distributions(model, model.init_plan()).failures] == ["fc.weight"]


def test_what_is_not_checked_says_why() -> None:
    model = Unchecked()
    check = check_distributions(model, model.init_plan())
    assert check.ok and not check.failures
    reasons = {
        "own.w": "reset_parameters",
        "prelu.weight": "1 value",
        "head.weight": "tied to emb.weight",
        "sp.weight": "sparse",
        "eye.weight": "eye",
        "dirac.weight": "dirac",
        "fn.weight": "function scheme",
    }
    for path, word in reasons.items():
        assert check[path].ok is None and word in check[path].note, (path, check[path].note)
    assert {e.path for e in check.unchecked} == set(reasons)
    assert check["emb.weight"].ok is True
    assert check["own.w"].mean is not None  # measured, though not judged


def test_the_table_and_the_lookups() -> None:
    twin = torch_twin()
    _scale(twin, "tn.weight", 1.5)
    check = check_distributions(twin, declared_plan(), tolerance=4)
    assert isinstance(check, DistributionCheck) and check.tolerance == 4.0
    assert len(check) == len(declared_plan())
    with pytest.raises(KeyError, match="nope"):
        check["nope"]
    lines = str(check).splitlines()
    n_ok = len(check) - 1
    assert lines[0] == f"distribution check (|z| <= 4): {n_ok} ok, 1 failed, 0 not checked"
    assert lines[1].split() == [
        "tensor", "rule", "distribution", "n", "mean", "expected", "z", "std", "expected", "z",
        "result",
    ]  # fmt: skip
    starts = [i for i, c in enumerate(lines[2]) if c == "-" and (i == 0 or lines[2][i - 1] == " ")]
    for entry, line in zip(check, lines[3:], strict=True):
        assert line.startswith(entry.path)
        assert line[starts[1] :].startswith(entry.rule)  # columns aligned
    assert "FAIL" in lines[3 + [e.path for e in check].index("tn.weight")]


# -- bad input ---------------------------------------------------------------------------------


def test_meta_tensors_raise_and_change_nothing() -> None:
    with torch.device("meta"):
        model = Declared()
    plan = model.init_plan()
    with pytest.raises(ValueError, match=r"'plain\.weight' is on the meta device.*to_empty"):
        check_distributions(model, plan)
    assert all(t.is_meta for t in model.state_dict().values())
    twin = torch_twin()
    twin.get_submodule("tn").to_empty(device="meta")
    before = {k: v.clone() for k, v in snapshot(twin).items() if not v.is_meta}
    with pytest.raises(ValueError, match=r"'tn\.weight' is on the meta device"):
        check_distributions(twin, plan)
    after = snapshot(twin)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_record_of_another_model_raises_naming_it() -> None:
    twin = torch_twin()
    del cast(nn.ModuleDict, twin)["un"]
    with pytest.raises(ValueError, match=r"record 'un\.weight'.*names no tensor.*init_plan"):
        check_distributions(twin, declared_plan())
    twin = torch_twin()
    cast(nn.ModuleDict, twin)["un"] = nn.Linear(100, 201, bias=False)
    with pytest.raises(ValueError, match=r"'un\.weight' has shape \(201, 100\).*\(200, 100\)"):
        check_distributions(twin, declared_plan())


@pytest.mark.parametrize(
    ("keywords", "word"),
    [
        ({"mean": 0.0, "std": "wide", "a": None, "b": None}, "std='wide'"),
        ({"mean": 0.0, "std": -1.0, "a": None, "b": None}, "std=-1.0"),
        ({"mean": 0.0, "std": 0.02, "gain": 1.0}, "gain="),
    ],
)
def test_keywords_that_do_not_fit_the_rule_raise_naming_the_record(
    keywords: dict[str, float | int | str | None], word: str
) -> None:
    plan = declared_plan()
    bad = replace(plan["tn.weight"], keywords=MappingProxyType(keywords))
    plan = InitPlan(plan.root_seed, tuple(bad if e.path == "tn.weight" else e for e in plan))
    with pytest.raises(ValueError, match=r"'tn\.weight'") as info:
        check_distributions(torch_twin(), plan)
    assert word in str(info.value)


@pytest.mark.parametrize("tolerance", [0.0, -1.0, math.nan, math.inf])
def test_a_bad_tolerance_raises(tolerance: float) -> None:
    with pytest.raises(ValueError, match="tolerance"):
        check_distributions(torch_twin(), declared_plan(), tolerance=tolerance)


# -- the picture -------------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n"


def test_plot_writes_a_png(tmp_path: Path, global_rng_guard: None) -> None:
    twin = torch_twin()
    _scale(twin, "tn.weight", 1.5)  # drawn with a red title
    out = tmp_path / "dist.png"
    plot_distributions(twin, declared_plan(), out, max_layers=6)
    data = out.read_bytes()
    assert data.startswith(PNG) and len(data) > 20_000
    few = tmp_path / "few.png"
    plot_distributions(twin, declared_plan(), str(few), max_layers=1)
    assert few.read_bytes().startswith(PNG) and few.stat().st_size < len(data)


def test_plot_of_a_model_without_random_rules_and_bad_arguments(tmp_path: Path) -> None:
    model = nn.LayerNorm(16)
    plan = InitPlan(0, (record("ones", {}, (16,), path="weight"),))
    plot_distributions(model, plan, tmp_path / "none.png")
    assert (tmp_path / "none.png").read_bytes().startswith(PNG)
    with pytest.raises(ValueError, match="max_layers=0"):
        plot_distributions(model, plan, tmp_path / "x.png", max_layers=0)


def test_plot_without_matplotlib_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r'the plot extra \(pip install -e "\.\[plot\]"'):
        plot_distributions(torch_twin(), declared_plan(), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_a_narrow_truncated_normal_is_nearly_uniform_and_checks() -> None:
    """Found by the breaker: the closed-form recurrence lost every digit on [-1e-3, 1e-3]."""
    from seeded_init import InitRules, TruncNormal, check_distributions

    for half in (1e-3, 1e-4):
        mean, std, kurtosis, _ = trunc_normal_moments(0.0, 1.0, -half, half)
        assert abs(mean) < 1e-15
        assert std == pytest.approx(2 * half / math.sqrt(12), rel=1e-6)  # the uniform's
        assert kurtosis == pytest.approx(-1.2, abs=1e-5)
    model = nn.Sequential(nn.Linear(256, 256))
    rules = InitRules({nn.Linear: TruncNormal(std=1.0, a=-1e-3, b=1e-3)})
    rules.reset_parameters(model)
    assert check_distributions(model, rules.init_plan(model)).ok
