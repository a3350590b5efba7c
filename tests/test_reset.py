"""reset_parameters(): reproducible, local, in place, validated before it writes."""

from __future__ import annotations

import copy
import io
import pickle
import random
import warnings
from collections.abc import Callable
from typing import Annotated

import numpy as np
import pytest
import torch
from torch import nn

from seeded_init import PlanError, SeededModule, declarations, seeded_init
from tests.helpers import assert_same, forked_rng, manual_seed, nn_init, reference, snapshot


class C01A(SeededModule):
    enc: Annotated[nn.Linear, seeded_init(scheme="kaiming_normal", seed=3)]
    dec: Annotated[nn.Linear, seeded_init(scheme="xavier_uniform", seed=4)]

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Linear(16, 8)
        self.dec = nn.Linear(8, 4)


class C01B(C01A):
    enc: Annotated[nn.Linear, seeded_init(scheme="kaiming_normal", seed=5)]


def test_c01_reproducible_without_global_seeding() -> None:
    """C01: two builds under different global seeds are equal; only the reseeded layer differs."""
    manual_seed(0)
    a1 = C01A()
    a1.reset_parameters()
    manual_seed(1)
    a2 = C01A()
    a2.reset_parameters()
    b = C01B()
    b.reset_parameters()
    assert_same(snapshot(a1), snapshot(a2))
    assert not torch.equal(b.enc.weight, a1.enc.weight)
    assert torch.equal(b.dec.weight, a1.dec.weight)


class C17(SeededModule):
    fc: Annotated[nn.Linear, seeded_init(scheme="kaiming_uniform", seed=1)]
    gru: Annotated[nn.GRU, seeded_init(scheme="orthogonal", seed=2)]

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.gru = nn.GRU(3, 5)
        self.drop = nn.Dropout(0.5)


def _draws() -> tuple[torch.Tensor, float, float]:
    return torch.rand(5), random.random(), float(np.random.rand())


def test_c17_reset_leaves_every_global_stream_untouched() -> None:
    """C17: torch, random and numpy streams after a reset equal those without it."""
    m = C17()
    manual_seed(123)
    random.seed(123)
    np.random.seed(123)
    state = torch.get_rng_state()
    m.reset_parameters()
    assert torch.equal(state, torch.get_rng_state())
    after_reset = _draws()
    manual_seed(123)
    random.seed(123)
    np.random.seed(123)
    plain = _draws()
    assert torch.equal(after_reset[0], plain[0]) and after_reset[1:] == plain[1:]


def test_construction_leaves_the_global_rng_as_it_found_it(global_rng_guard: None) -> None:
    """Building a model (which initializes it) does not move the global RNG."""
    C17()
    C01A()


class _CountGlobalDraws(torch.overrides.TorchFunctionMode):
    """Counts random fills of parameters that use the global RNG (no generator)."""

    def __init__(self) -> None:
        super().__init__()
        self.global_draws = 0

    def __torch_function__(
        self,
        func: Callable[..., object],
        types: object,
        args: tuple[object, ...] = (),
        kwargs: dict[str, object] | None = None,
    ) -> object:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in ("uniform_", "normal_") and kwargs.get("generator") is None:
            self.global_draws += 1
        return func(*args, **kwargs)


def test_construction_skips_pytorchs_throwaway_init() -> None:
    """Construction does not run the layers' own global-RNG init that the reset replaces."""
    with _CountGlobalDraws() as counter:
        C17()
    assert counter.global_draws == 0
    with _CountGlobalDraws() as counter:
        nn.Linear(4, 4)
    assert counter.global_draws > 0  # the counter does see PyTorch's own init


def test_reset_is_bitwise_idempotent() -> None:
    """Every call gives the same bits."""
    m = C17()
    first = snapshot(m)
    for _ in range(3):
        m.reset_parameters()
        assert_same(snapshot(m), first)


def test_reset_works_with_and_without_no_grad() -> None:
    """Inside torch.no_grad() or not, the values are the same and no graph is recorded."""
    m = C17()
    first = snapshot(m)
    with torch.no_grad():
        m.reset_parameters()
    assert_same(snapshot(m), first)
    m.reset_parameters()
    assert all(p.grad_fn is None and p.requires_grad for p in m.parameters())


class C13(SeededModule):
    fc: Annotated[nn.Linear, seeded_init(scheme="kaiming_normal", seed=1)]
    emb: Annotated[nn.Embedding, seeded_init(scheme="normal", seed=2)]

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.emb = nn.Embedding(10, 8)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16], ids=str)
def test_c13_identity_dtype_device_grad_and_optimizer_kept(dtype: torch.dtype) -> None:
    """C13: in-place: same Parameter objects, device, dtype, requires_grad; optimizer intact."""
    m = C13().to(dtype)
    m.emb.weight.requires_grad_(False)
    params = list(m.parameters())
    flags = [p.requires_grad for p in params]
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    with torch.no_grad():
        for p in params:
            p.zero_()
    m.reset_parameters()
    assert all(a is b for a, b in zip(m.parameters(), params, strict=True))
    assert all(p is q for p, q in zip(opt.param_groups[0]["params"], params, strict=True))
    assert [p.requires_grad for p in params] == flags
    assert all(p.dtype == dtype and p.device.type == "cpu" and p.grad_fn is None for p in params)
    assert m.fc.weight.any() and m.emb.weight.any()
    twin = C13().to(dtype)
    twin.reset_parameters()
    assert_same(snapshot(m), snapshot(twin))


def test_reset_in_dtype_matches_pytorch_in_that_dtype() -> None:
    """Drawn in the parameter's dtype: a float64 layer equals nn.init on a float64 tensor."""
    m = C13().to(torch.float64)
    m.reset_parameters()
    want = nn_init(nn.init.kaiming_normal_, (8, 8), 1, dtype=torch.float64)
    assert torch.equal(m.fc.weight, want)


class C23T1(SeededModule):
    emb: Annotated[nn.Embedding, seeded_init(scheme="normal", seed=1)]
    head: Annotated[nn.Linear, seeded_init(scheme="kaiming_uniform", seed=2)]

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(100, 16)
        self.head = nn.Linear(16, 100, bias=False)
        self.head.weight = self.emb.weight


class C23T2(SeededModule):
    emb: Annotated[nn.Embedding, seeded_init(scheme="normal", seed=1)]

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(100, 16)
        self.head = nn.Linear(16, 100, bias=False)
        self.head.weight = self.emb.weight


class C23T3(SeededModule):
    emb: Annotated[nn.Embedding, seeded_init(scheme="normal", seed=1)]

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(16, 100, bias=False)
        self.emb = nn.Embedding(100, 16)
        self.head.weight = self.emb.weight


def test_c23_tied_weight_declared_twice_is_an_error() -> None:
    """C23 T1: both sides declared: an error naming both attributes and their schemes."""
    with pytest.raises(PlanError) as info:
        C23T1()
    message = str(info.value)
    for part in ("emb", "head", "normal", "kaiming_uniform"):
        assert part in message


def test_c23_tied_weight_follows_the_declared_side() -> None:
    """C23 T2/T3: the tie holds, the shared weight is the embedding's declared init."""
    want = nn_init(nn.init.normal_, (100, 16), 1)
    t2, t3 = C23T2(), C23T3()
    for m in (t2, t3):
        m.reset_parameters()
        assert m.head.weight is m.emb.weight
        assert torch.equal(m.emb.weight, want)
    s2, s3 = snapshot(t2), snapshot(t3)
    assert sorted(s2) == sorted(s3)
    assert all(torch.equal(s2[k], s3[k]) for k in s2)


BOOM = [False]


def _boom(t: torch.Tensor, g: torch.Generator) -> None:
    if BOOM[0]:
        raise RuntimeError("boom")
    t.uniform_(generator=g)


def _fine(t: torch.Tensor, g: torch.Generator) -> None:
    t.uniform_(generator=g)


def test_error_in_user_code_leaves_every_parameter_unchanged() -> None:
    """A function scheme that raises: PlanError naming the layer, every tensor as before."""

    class Fragile(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.first = nn.Linear(3, 3)
            self.flag = False

        @seeded_init(scheme=_fine)
        def a(self) -> nn.Linear:
            return nn.Linear(4, 4)

        @seeded_init(scheme="normal", seed=3)
        def b(self) -> nn.Linear:
            return nn.Linear(4, 4)

        @seeded_init(scheme="uniform", bias=_boom)
        def c(self) -> nn.Linear:
            return nn.Linear(4, 4)

    m = Fragile()
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(0.5)
    before = snapshot(m)
    BOOM[0] = True  # the bias function fails from now on
    try:
        with pytest.raises(PlanError, match=r"'c'.*boom.*restored"):
            m.reset_parameters()
    finally:
        BOOM[0] = False
    assert_same(snapshot(m), before)


def test_plan_errors_are_raised_before_any_write() -> None:
    """A fan scheme on a 1-D parameter added later: PlanError, nothing written."""

    class Late(SeededModule):
        @seeded_init(scheme="normal", seed=4)
        def early(self) -> nn.Linear:
            return nn.Linear(3, 3)

        @seeded_init(scheme="xavier_uniform", seed=5)
        def late(self) -> nn.Sequential:
            return nn.Sequential(nn.Linear(3, 3))

    m = Late()
    m.late.append(nn.LayerNorm(3))
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(2.0)
    before = snapshot(m)
    with pytest.raises(PlanError, match=r"'1\.weight'"):
        m.reset_parameters()
    assert_same(snapshot(m), before)


def test_reset_on_meta_parameters_says_to_call_to_empty() -> None:
    """Construction on meta raises nothing; reset_parameters() then says to call to_empty."""
    with torch.device("meta"):
        m = C17()
    assert m.fc.weight.is_meta
    with pytest.raises(PlanError, match="to_empty"):
        m.reset_parameters()
    m.to_empty(device="cpu")
    m.reset_parameters()
    assert_same(snapshot(m), snapshot(C17()))


class C04(SeededModule):
    head: Annotated[nn.Linear, seeded_init(scheme="kaiming_uniform", seed=1)]
    tail: Annotated[nn.Linear, seeded_init(scheme="orthogonal", seed=2)]

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(0, 4)
        self.tail = nn.Linear(4, 0)


def test_c04_zero_element_layers_raise_and_warn_nothing() -> None:
    """C04: with warnings as errors, zero-element layers build and reset silently."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m1, m2 = C04(), C04()
        state = torch.get_rng_state()
        m1.reset_parameters()
        m2.reset_parameters()
        assert torch.equal(state, torch.get_rng_state())
    assert m1.head.weight.shape == (4, 0) and m1.tail.weight.shape == (0, 4)
    assert m1.tail.bias.shape == (0,)
    assert torch.isfinite(m1.head.bias).all()
    assert torch.equal(m1.head.bias, m2.head.bias)


def test_zero_element_default_matches_pytorch() -> None:
    """Linear(0, 3) under "default" equals PyTorch's (its bias bound collapses to 0)."""

    class Z(SeededModule):
        @seeded_init(seed=3)
        def z(self) -> nn.Linear:
            return nn.Linear(0, 3)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = reference(3, lambda: nn.Linear(0, 3))
    assert_same(snapshot(Z().z), snapshot(want))


class C21(SeededModule):
    fc: Annotated[nn.Linear, seeded_init(scheme="kaiming_uniform", seed=11)]
    emb: Annotated[nn.Embedding, seeded_init(scheme="normal", seed=12)]

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)
        self.emb = nn.Embedding(5, 4)
        self.free = nn.Linear(4, 4)


def test_c21_deepcopy_pickle_and_save() -> None:
    """C21: copies reset to the same values, keep the metadata; the state_dict is tensors only."""
    m = C21()
    s1 = snapshot(m)
    m.reset_parameters()  # it now holds a cached plan (functions): copies leave it out
    buffer = io.BytesIO()
    torch.save(m, buffer)
    buffer.seek(0)
    copies: list[C21] = [
        copy.deepcopy(m),
        pickle.loads(pickle.dumps(m)),
        torch.load(buffer, weights_only=False),
    ]
    for c in copies:
        assert "_seeded_plan_cache" not in vars(c)
        with torch.no_grad():
            for p in c.parameters():
                p.zero_()
        c.reset_parameters()
        assert_same(snapshot(c), s1)
        found = declarations(c)
        assert found["fc"].spec.seed == 11 and found["emb"].spec.scheme == "normal"
        # a copy's layers reset within the copy, never the original
        c.free.reset_parameters()
        assert_same(snapshot(c), s1)
    m.reset_parameters()
    m.reset_parameters()
    assert_same(snapshot(m), s1)
    buffer = io.BytesIO()
    torch.save(m.state_dict(), buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in loaded.values())
    assert_same(loaded, s1)


def test_copy_layer_reset_does_not_touch_the_original() -> None:
    """A layer's own reset in a deepcopy writes the copy only."""
    m = C21()
    c = copy.deepcopy(m)
    with torch.no_grad():
        m.free.weight.fill_(3.0)
    c.free.reset_parameters()
    assert (m.free.weight == 3.0).all()


class Inner(SeededModule):
    lin: Annotated[nn.Linear, seeded_init(scheme="kaiming_normal", seed=2)]

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)
        self.norm = nn.LayerNorm(3)
        self.free = nn.Linear(3, 3)


class Outer(SeededModule):
    lin: Annotated[nn.Linear, seeded_init(scheme="xavier_uniform", seed=1)]

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.inner = Inner()


def test_nested_seeded_module_uses_its_declarations_and_outer_paths() -> None:
    """A nested SeededModule keeps its declarations; its undeclared layers derive from the
    outer root seed and their full path."""
    m = Outer()
    assert torch.equal(m.inner.lin.weight, nn_init(nn.init.kaiming_normal_, (3, 4), 2))
    from seeded_init import derive_seed

    want = reference(derive_seed(0, "inner.free"), lambda: nn.Linear(3, 3))
    assert_same(snapshot(m.inner.free), snapshot(want))


@pytest.mark.parametrize("order", ["forward", "reverse", "twice", "inner-only"])
def test_c18_per_module_resets_reproduce_the_model_reset(order: str) -> None:
    """C18: meta -> to_empty -> resetting modules one by one, in any order, equals eager."""
    eager = snapshot(Outer())
    manual_seed(hash(order) % 1000)
    with torch.device("meta"):
        m = Outer()
    m.to_empty(device="cpu")
    mods = list(m.modules())
    if order in ("forward", "reverse"):
        for mod in mods if order == "forward" else reversed(mods):
            reset = getattr(mod, "reset_parameters", None)
            if callable(reset):
                reset()
    elif order == "twice":
        m.reset_parameters()
        m.reset_parameters()
    else:
        m.reset_parameters()
        with torch.no_grad():
            m.inner.free.weight.fill_(9.0)
            m.lin.weight.fill_(9.0)
        m.inner.reset_parameters()  # re-draws the inner part only
        assert (m.lin.weight == 9.0).all()
        m.lin.reset_parameters()
    got = snapshot(m)
    assert_same(got, eager)
    assert torch.equal(m.inner.norm.weight, torch.ones(3))
    assert torch.equal(m.inner.norm.bias, torch.zeros(3))
    assert all(torch.isfinite(v).all() for v in got.values())


def test_layer_leaving_the_model_gets_its_own_reset_back() -> None:
    """A layer taken out of the model resets as PyTorch's layer again (global RNG)."""
    m = Outer()
    free = m.inner.free
    del m.inner.free
    with forked_rng():
        manual_seed(5)
        free.reset_parameters()
        manual_seed(5)
        want = nn.Linear(3, 3)
    assert_same(snapshot(free), snapshot(want))


class NoReset(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.randn(3))


def test_layer_that_cannot_be_initialized_is_reported() -> None:
    """An undeclared layer with parameters and no reset_parameters(): a PlanError naming it."""

    class Host(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.odd = NoReset()

    with pytest.raises(PlanError, match=r"odd.*NoReset.*scale.*reset_parameters"):
        Host()


def test_undeclared_own_parameter_is_reported() -> None:
    """A SeededModule's own undeclared parameter: a PlanError saying how to declare it."""

    class Host(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.ones(3))

    with pytest.raises(PlanError, match=r"scale.*Annotated\[nn\.Parameter"):
        Host()


def test_init_plan_matches_what_reset_writes() -> None:
    """init_plan() lists every tensor with its rule and seed, without writing."""
    m = C21()
    with torch.no_grad():
        m.fc.weight.fill_(4.0)
    plan = m.init_plan()
    assert (m.fc.weight == 4.0).all()
    assert [e.path for e in plan] == list(m.state_dict())
    entry = plan["fc.weight"]
    assert (entry.rule, entry.seed, entry.seed_source, entry.declared_by) == (
        "kaiming_uniform",
        11,
        "explicit",
        "C21.fc",
    )
    assert plan["free.bias"].seed_source == "derived"
    assert "fc.weight" in str(plan) and "kaiming_uniform" in str(plan)


class TiedLM(SeededModule):
    emb: Annotated[nn.Embedding, seeded_init(scheme="normal", std=0.02)]

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(100, 16)
        self.out = nn.Linear(16, 100, bias=False)
        self.out.weight = self.emb.weight


def test_reset_of_the_undeclared_side_of_a_tie_keeps_the_declared_values(
    global_rng_guard: None,
) -> None:
    """out.reset_parameters() on a layer holding only a tied weight redraws it by the
    declaration, not by PyTorch's global-RNG init."""
    m = TiedLM()
    before = snapshot(m)
    with torch.no_grad():
        m.emb.weight.fill_(1.0)
    m.out.reset_parameters()
    assert_same(snapshot(m), before)


def test_to_empty_unties_and_the_reset_ties_again() -> None:
    """meta -> to_empty unties the shared weight; the reset restores the tie and eager values."""
    eager = TiedLM()
    with torch.device("meta"):
        m = TiedLM()
    m.to_empty(device="cpu")
    assert m.out.weight is not m.emb.weight  # PyTorch's to_empty
    m.reset_parameters()
    assert m.out.weight is m.emb.weight
    assert torch.equal(m.emb.weight, eager.emb.weight)
    copied = copy.deepcopy(m)
    copied.to_empty(device="cpu")
    copied.reset_parameters()
    assert copied.out.weight is copied.emb.weight and m.out.weight is m.emb.weight


def test_a_failed_reset_after_to_empty_leaves_the_tie_undone() -> None:
    """A reset that raises after to_empty changes nothing: both sides keep their objects and
    values; once the error is fixed, the reset ties them again with the eager values."""
    eager = TiedLM()
    with torch.device("meta"):
        m = TiedLM()
    m.to_empty(device="cpu")
    with torch.no_grad():
        m.emb.weight.fill_(1.0)
        m.out.weight.fill_(2.0)
    emb, out = m.emb.weight, m.out.weight
    m.bad = nn.Module()
    m.bad.register_parameter("p", nn.Parameter(torch.zeros(2)))  # no rule and no reset
    with pytest.raises(PlanError, match="bad"):
        m.reset_parameters()
    assert m.emb.weight is emb and m.out.weight is out
    assert bool((emb == 1.0).all()) and bool((out == 2.0).all())
    del m.bad
    m.reset_parameters()
    assert m.out.weight is m.emb.weight
    assert torch.equal(m.emb.weight, eager.emb.weight)


def test_a_tie_undone_by_the_user_stays_undone() -> None:
    """Assigning a new parameter to one side is respected by later resets."""
    m = TiedLM()
    m.out.weight = nn.Parameter(torch.zeros(100, 16))
    m.reset_parameters()
    assert m.out.weight is not m.emb.weight


class C10(SeededModule):
    attn: Annotated[nn.MultiheadAttention, seeded_init(scheme="xavier_uniform", seed=4)]

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2)


def test_c10_multihead_attention_is_fully_reinitialized() -> None:
    """C10: in_proj_weight and out_proj.weight change on reset; meta + sentinel 123 -> equal;
    biases zeros; MultiheadAttention gets a reset_parameters of its own."""
    m1 = C10()
    with torch.no_grad():
        for p in m1.parameters():
            p.fill_(0.5)
    m1.reset_parameters()
    assert not (m1.attn.in_proj_weight == 0.5).any()
    assert not (m1.attn.out_proj.weight == 0.5).any()
    m2 = C10()
    with torch.device("meta"):
        m3 = C10()
    m3.to_empty(device="cpu")
    with torch.no_grad():
        for p in m3.parameters():
            p.fill_(123.0)
    for mod in m3.modules():
        reset = getattr(mod, "reset_parameters", None)
        if callable(reset):
            reset()
    for m in (m1, m2, m3):
        assert_same(snapshot(m), snapshot(m2))
        assert not m.attn.in_proj_bias.any() and not m.attn.out_proj.bias.any()
