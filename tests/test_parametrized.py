"""Layers under torch.nn.utils.parametrize: the effective weight gets the declared init (C08)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrizations, parametrize

from seeded_init import PlanError, SeededModule, seeded_init

from .helpers import assert_same, forked_rng, manual_seed, nn_init, reference, snapshot

_ORIGINAL1 = "parametrizations.weight.original1"


class Kaiming(SeededModule):
    @seeded_init(scheme="kaiming_normal", seed=3)
    def fc(self) -> nn.Linear:
        return nn.Linear(6, 6)


class Ortho(SeededModule):
    @seeded_init(scheme="orthogonal", seed=3)
    def fc(self) -> nn.Linear:
        return nn.Linear(6, 6)


class Default(SeededModule):
    @seeded_init(scheme="default", seed=9)
    def fc(self) -> nn.Linear:
        return nn.Linear(5, 7)


def _kaiming_reference() -> torch.Tensor:
    w = torch.empty(6, 6)
    nn.init.kaiming_normal_(w, generator=torch.Generator().manual_seed(3))
    return w


def test_c08_weight_norm_weight_gets_the_declared_init(global_rng_guard: None) -> None:
    """P1: the visible weight changes and equals the unparametrized model's (atol 1e-6)."""
    p1 = Kaiming()
    parametrizations.weight_norm(p1.fc, "weight")
    with torch.no_grad():
        p1.fc.get_parameter(_ORIGINAL1).mul_(3.0).add_(1.0)
    before = p1.fc.weight.detach().clone()
    p1.reset_parameters()
    r1 = Kaiming()
    assert not torch.equal(p1.fc.weight, before)
    torch.testing.assert_close(p1.fc.weight, r1.fc.weight, atol=1e-6, rtol=0)
    torch.testing.assert_close(p1.fc.weight, _kaiming_reference(), atol=1e-6, rtol=0)
    assert parametrize.is_parametrized(p1.fc, "weight")


def test_c08_orthogonal_parametrization_is_orthogonal_and_reproducible() -> None:
    """P2: orthogonal through the orthogonal parametrization, bitwise equal between twins."""
    twins: list[torch.Tensor] = []
    for _ in range(2):
        m = Ortho()
        parametrizations.orthogonal(m.fc, "weight")
        with torch.no_grad():  # another orthogonal weight than the declared one
            m.fc.get_parameter("parametrizations.weight.original").add_(0.3)
        before = m.fc.weight.detach().clone()
        m.reset_parameters()
        assert not torch.equal(m.fc.weight, before)
        w = m.fc.weight.detach()
        torch.testing.assert_close(w @ w.T, torch.eye(6), atol=1e-5, rtol=0)
        twins.append(w)
    assert torch.equal(twins[0], twins[1])
    want = torch.empty(6, 6)
    nn.init.orthogonal_(want, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(twins[0], want, atol=1e-5, rtol=0)


def test_spectral_norm_holds_the_declared_weight_over_its_spectral_norm() -> None:
    """spectral_norm's weight is the declared one divided by its largest singular value; its
    power-iteration vectors are drawn from the layer's seed, so twins are bitwise equal."""
    twins: list[dict[str, torch.Tensor]] = []
    for seed in (1, 2):
        manual_seed(seed)  # spectral_norm draws _u and _v from the global RNG
        m = Kaiming()
        parametrizations.spectral_norm(m.fc, "weight")
        m.reset_parameters()
        twins.append(snapshot(m))
        ref = _kaiming_reference()
        want = ref / torch.svd(ref).S[0]
        torch.testing.assert_close(m.fc.weight.detach(), want, atol=1e-4, rtol=0)
    for key in twins[0]:
        assert torch.equal(twins[0][key], twins[1][key]), key


def test_default_scheme_through_weight_norm_is_pytorchs_linear_init() -> None:
    """ "default" on a weight_norm'd Linear: the weight PyTorch's Linear(5, 7) gets."""

    class Normed(Default):
        def __init__(self) -> None:
            super().__init__()
            parametrizations.weight_norm(self.fc, "weight")

    m = Normed()
    m.reset_parameters()
    manual_seed(9)
    ref = nn.Linear(5, 7)
    torch.testing.assert_close(m.fc.weight, ref.weight, atol=1e-6, rtol=0)
    assert torch.equal(m.fc.bias, ref.bias)


def test_parametrization_registered_in_the_factory_is_initialized_at_construction() -> None:
    """A factory returning a parametrized layer: construction ends with the declared weight."""

    class P(SeededModule):
        @seeded_init(scheme="kaiming_normal", seed=3)
        def fc(self) -> nn.Module:
            layer: nn.Module = parametrizations.weight_norm(nn.Linear(6, 6))
            return layer

    m = P()
    torch.testing.assert_close(m.fc.weight, _kaiming_reference(), atol=1e-6, rtol=0)
    plan = m.init_plan()
    assert [e.path for e in plan] == ["fc.weight", "fc.bias"]
    assert plan["fc.weight"].rule == "kaiming_normal"


def test_undeclared_parametrized_layer_gets_pytorchs_init_through_it() -> None:
    """An undeclared weight_norm'd Linear resets like PyTorch's Linear, seed from its path."""

    class Host(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 3)

    plain = Host()
    m = Host()
    parametrizations.weight_norm(m.fc, "weight")
    m.reset_parameters()
    torch.testing.assert_close(m.fc.weight, plain.fc.weight, atol=1e-6, rtol=0)


class _Scale(nn.Module):
    """A parametrization without right_inverse: nothing can be assigned through it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * x


def test_parametrization_without_right_inverse_is_an_error_naming_it() -> None:
    """No right_inverse: a PlanError naming the layer and the parametrization; nothing changes."""
    m = Kaiming()
    parametrize.register_parametrization(m.fc, "weight", _Scale())
    before = snapshot(m)
    with pytest.raises(PlanError, match=r"'fc\.weight'.*_Scale.*right_inverse"):
        m.reset_parameters()
    after = snapshot(m)
    assert list(after) == list(before)
    for key in before:
        assert torch.equal(after[key], before[key]), key
    assert parametrize.is_parametrized(m.fc, "weight")


def test_reset_of_a_part_leaves_other_parametrized_layers_alone() -> None:
    """Resetting one layer does not write another layer's parametrization originals."""

    class Two(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 4)
            self.b = nn.Linear(4, 4)

    m = Two()
    parametrizations.weight_norm(m.b, "weight")
    with torch.no_grad():
        m.b.get_parameter(_ORIGINAL1).fill_(0.5)
    before = m.b.get_parameter(_ORIGINAL1).detach().clone()
    m.a.reset_parameters()
    assert torch.equal(m.b.get_parameter(_ORIGINAL1), before)
    m.b.reset_parameters()
    assert not torch.equal(m.b.get_parameter(_ORIGINAL1), before)


class _Failing(nn.Module):
    """A parametrization whose right_inverse misbehaves as ``how`` says."""

    def __init__(self) -> None:
        super().__init__()
        self.how = "ok"  # registering runs right_inverse once: it must work then

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def right_inverse(self, x: torch.Tensor) -> object:
        if self.how == "raises":
            raise RuntimeError("boom")
        if self.how == "shape":
            return x[:1]
        if self.how == "dtype":
            return x.to(torch.int32)
        if self.how == "none":
            return None
        if self.how == "tuple":
            return (x, x)  # two values for one original
        return x


class TwoLayers(SeededModule):
    @seeded_init(scheme="kaiming_normal", seed=3)
    def fc(self) -> nn.Linear:
        return nn.Linear(6, 6)

    @seeded_init(scheme="normal", seed=4)
    def other(self) -> nn.Linear:
        return nn.Linear(6, 6)


def _poked(m: nn.Module) -> dict[str, torch.Tensor]:
    """Every tensor set to values a reset would change; their snapshot."""
    with torch.no_grad():
        for t in m.state_dict().values():
            t.fill_(0.25)
    return snapshot(m)


@pytest.mark.parametrize(
    ("how", "match"),
    [
        ("raises", r"'fc\.weight' \(Linear\): handing .* right_inverse\(\) failed: RuntimeError"),
        (
            "shape",
            r"'fc\.weight' \(Linear\): .* gave original \(1, 6\) torch\.float32, not its \(6, 6\)",
        ),
        (
            "dtype",
            r"'fc\.weight' \(Linear\): .* gave original \(6, 6\) torch\.int32, not its \(6, 6\)",
        ),
        (
            "none",
            r"'fc\.weight' \(Linear\): .* gave a NoneType, where its originals are \['original'\]",
        ),
        (
            "tuple",
            r"'fc\.weight' \(Linear\): .* gave a tuple of 2, where its originals are \['origi",
        ),
    ],
)
@pytest.mark.parametrize("part", ["model", "layer"])
def test_failing_right_inverse_is_a_plan_error_and_every_tensor_is_restored(
    how: str, match: str, part: str
) -> None:
    """A right_inverse that raises or gives what the originals cannot take: PlanError naming
    the tensor, and every tensor the reset wrote (the other layer too) is put back."""
    m = TwoLayers()
    failing = _Failing()
    parametrize.register_parametrization(m.fc, "weight", failing, unsafe=True)
    failing.how = how
    before = _poked(m)
    with pytest.raises(PlanError, match=match + r".*restored"):
        if part == "model":
            m.reset_parameters()
        else:
            m.fc.reset_parameters()
    assert_same(snapshot(m), before)
    assert parametrize.is_parametrized(m.fc, "weight")


def test_failure_in_a_second_parametrized_layer_leaves_the_first_unchanged() -> None:
    """Two parametrized layers, the second's right_inverse raises: neither layer changed."""
    m = TwoLayers()
    parametrizations.weight_norm(m.fc, "weight")
    failing = _Failing()
    parametrize.register_parametrization(m.other, "weight", failing)
    failing.how = "raises"
    before = _poked(m)
    with pytest.raises(PlanError, match=r"'other\.weight'"):
        m.reset_parameters()
    assert_same(snapshot(m), before)


class _Drawing(nn.Module):
    """A parametrization whose forward draws from the global RNG (and changes nothing)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0 * torch.randn_like(x)

    def right_inverse(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0 * torch.randn_like(x)


def test_parametrization_code_leaves_the_global_rng_alone(global_rng_guard: None) -> None:
    """init_plan() and reset_parameters() run parametrizations' code without moving the
    global RNG; the weight is the declared one."""
    m = Kaiming()
    with forked_rng():  # registering runs right_inverse, which draws
        parametrize.register_parametrization(m.fc, "weight", _Drawing())
    m.init_plan()
    m.reset_parameters()
    original = m.fc.get_parameter("parametrizations.weight.original")  # reading .weight draws
    assert torch.equal(original, _kaiming_reference())


class _Raising(nn.Module):
    armed = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.armed:
            raise ValueError("forward boom")
        return x

    def right_inverse(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_parametrization_whose_forward_raises_is_a_plan_error() -> None:
    m = Kaiming()
    raising = _Raising()
    parametrize.register_parametrization(m.fc, "weight", raising, unsafe=True)
    raising.armed = True
    before = _poked(m)
    with pytest.raises(PlanError, match=r"'fc\.weight' \(Linear\): computing it .*forward boom"):
        m.reset_parameters()
    assert_same(snapshot(m), before)


class _Scaled(nn.Module):
    """A parametrization with a parameter of its own, which no rule can reach."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale

    def right_inverse(self, x: torch.Tensor) -> torch.Tensor:
        return x / self.scale


def test_parametrization_with_its_own_parameter_is_refused() -> None:
    """Its parameter would be skipped silently: a PlanError naming it; nothing changed."""
    m = Kaiming()
    parametrize.register_parametrization(m.fc, "weight", _Scaled())
    before = _poked(m)
    with pytest.raises(PlanError, match=r"'fc\.weight' \(Linear\) .* _Scaled, .* \('scale'\)"):
        m.reset_parameters()
    with pytest.raises(PlanError, match="'scale'"):
        m.init_plan()
    assert_same(snapshot(m), before)


def test_init_plan_and_failed_resets_leave_spectral_norm_vectors_alone() -> None:
    """Reading a spectral_norm'd weight in training mode advances its power iteration; the
    library's reads do not, and a reset refused for another reason changes nothing."""
    m = TwoLayers()
    parametrizations.spectral_norm(m.fc, "weight")
    m.train()
    before = snapshot(m)
    m.init_plan()
    assert_same(snapshot(m), before)
    m.other.bias = nn.Parameter(torch.empty(6, device="meta"))
    with pytest.raises(PlanError, match="meta"):
        m.reset_parameters()
    after = snapshot(m)
    for key in before:
        if key != "other.bias":
            assert torch.equal(after[key], before[key]), key


def test_every_module_reset_in_turn_equals_the_model_reset() -> None:
    """C18 with a parametrized layer: parametrize's own modules have no reset of their
    own, so resetting each module that has one, in any order, is the model's reset."""
    m = TwoLayers()
    parametrizations.weight_norm(m.fc, "weight")
    m.reset_parameters()
    want = snapshot(m)
    _poked(m)
    mods = list(m.modules())
    assert not callable(getattr(m.fc.parametrizations, "reset_parameters", None))
    for mod in reversed(mods):
        reset = getattr(mod, "reset_parameters", None)
        if callable(reset):
            reset()
    assert_same(snapshot(m), want)


class _Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def right_inverse(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Recurrent(SeededModule):
    @seeded_init(scheme="default", seed=1)
    def rnn(self) -> nn.LSTM:
        return nn.LSTM(4, 5)


@pytest.mark.parametrize("where", ["after", "factory"])
def test_a_parametrized_tensor_is_drawn_in_its_place(where: str) -> None:
    """weight_hh_l0 parametrized, after construction or in the factory: every tensor is
    bitwise PyTorch's LSTM (manual_seed(1); nn.LSTM(4, 5)), drawn in registration order."""
    rnn: nn.Module
    if where == "after":
        m = Recurrent()
        parametrize.register_parametrization(m.rnn, "weight_hh_l0", _Identity())
        _poked(m)
        m.reset_parameters()
        rnn = m.rnn
    else:

        class InFactory(SeededModule):
            @seeded_init(scheme="default", seed=1)
            def rnn(self) -> nn.Module:
                layer = nn.LSTM(4, 5)
                parametrize.register_parametrization(layer, "weight_hh_l0", _Identity())
                return layer

        rnn = InFactory().rnn
    want = snapshot(reference(1, lambda: nn.LSTM(4, 5)))
    for name, value in want.items():
        assert torch.equal(getattr(rnn, name), value), name


class TiedHead(SeededModule):
    @seeded_init(scheme="normal", std=0.02, seed=1)
    def emb(self) -> nn.Embedding:
        return nn.Embedding(10, 6)

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(6, 10, bias=False)
        self.head.weight = self.emb.weight


@pytest.mark.parametrize("kind", ["identity", "weight_norm"])
def test_parametrized_side_of_a_tie_is_refused(kind: str) -> None:
    """A tie whose one side is parametrized would take two inits into one storage: a
    PlanError naming both, nothing changed."""
    m = TiedHead()
    if kind == "identity":
        parametrize.register_parametrization(m.head, "weight", _Identity())
    else:
        parametrizations.weight_norm(m.head, "weight")
    before = _poked(m)
    with pytest.raises(PlanError, match=r"'head\.weight' \(Linear\) .* shares memory with"):
        m.reset_parameters()
    assert_same(snapshot(m), before)


def test_failed_reset_restores_the_buffers_of_every_parametrization() -> None:
    """orthogonal's right_inverse assigns a new base buffer: when a later layer's
    right_inverse fails, the earlier one's buffer is put back too."""
    m = TwoLayers()
    parametrizations.orthogonal(m.fc, "weight")
    parametrizations.orthogonal(
        m.other, "weight", orthogonal_map="cayley", use_trivialization=False
    )
    before = snapshot(m)
    with pytest.raises(PlanError, match=r"'other\.weight' \(Linear\): handing"):
        m.reset_parameters()
    assert_same(snapshot(m), before)


class _Counting(nn.Module):
    """A parametrization whose forward assigns a new buffer on every call."""

    calls: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls = self.calls + 1
        return x

    def right_inverse(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_init_plan_puts_back_a_buffer_a_parametrization_reassigns() -> None:
    m = Kaiming()
    counting = _Counting()
    parametrize.register_parametrization(m.fc, "weight", counting)
    buffer = counting.get_buffer("calls")
    before = snapshot(m)
    m.init_plan()
    assert counting.get_buffer("calls") is buffer
    assert_same(snapshot(m), before)


def test_parametrized_buffer_is_refused() -> None:
    class Normed(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.bn = nn.BatchNorm1d(3)

    m = Normed()
    parametrize.register_parametrization(m.bn, "running_var", _Identity())
    before = snapshot(m)
    with pytest.raises(PlanError, match=r"'bn\.running_var' \(BatchNorm1d\) is a parametrized buf"):
        m.reset_parameters()
    assert_same(snapshot(m), before)


def test_an_rnn_parametrized_before_it_joins_the_model_draws_in_its_order() -> None:
    """An LSTM parametrized outside any construction, then attached: its tensors are still
    PyTorch's LSTM's for its path seed (an RNN lists its registration order itself)."""
    from seeded_init import derive_seed

    class Host(SeededModule):
        pass

    lstm = nn.LSTM(4, 5, num_layers=2)
    parametrize.register_parametrization(lstm, "weight_ih_l1", _Identity())
    m = Host()
    m.l = lstm
    m.reset_parameters()
    want = snapshot(reference(derive_seed(0, "l"), lambda: nn.LSTM(4, 5, num_layers=2)))
    for name, value in want.items():
        assert torch.equal(getattr(lstm, name), value), name


def test_slices_of_one_buffer_are_not_a_tie() -> None:
    """Parameters laid out in one flat buffer (as fused optimizers do) share a storage but
    no element: a parametrized one among them is reset, not refused."""

    class Flat(SeededModule):
        @seeded_init(scheme="normal", seed=1)
        def a(self) -> nn.Linear:
            return nn.Linear(4, 4)

        @seeded_init(scheme="normal", seed=2)
        def b(self) -> nn.Linear:
            return nn.Linear(4, 4)

    m = Flat()
    flat = torch.zeros(40)
    with torch.no_grad():
        for i, (layer, name) in enumerate(
            [(m.a, "weight"), (m.a, "bias"), (m.b, "weight"), (m.b, "bias")]
        ):
            size = 16 if name == "weight" else 4
            start = [0, 16, 20, 36][i]
            view = flat[start : start + size].view(getattr(layer, name).shape)
            setattr(layer, name, nn.Parameter(view))
    parametrize.register_parametrization(m.b, "weight", _Identity())
    m.reset_parameters()
    assert torch.equal(m.b.weight, nn_init(nn.init.normal_, (4, 4), 2))
    assert torch.equal(m.a.weight, nn_init(nn.init.normal_, (4, 4), 1))


def test_both_sides_of_a_tie_parametrized_are_refused() -> None:
    m = TiedHead()
    parametrize.register_parametrization(m.head, "weight", _Identity())
    parametrize.register_parametrization(m.emb, "weight", _Identity())
    before = _poked(m)
    with pytest.raises(PlanError, match=r"'emb\.weight' \(Embedding\) is parametrized, .* shares"):
        m.reset_parameters()
    assert_same(snapshot(m), before)


def test_a_lazy_layer_beside_a_parametrized_one() -> None:
    """The copy kept to undo a failing right_inverse leaves out a lazy layer's parameters,
    which have no values yet: construction and reset work, and the lazy layer still waits."""

    class Net(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.lazy = nn.LazyLinear(4)
            self.pw = parametrizations.weight_norm(nn.Linear(3, 3))

    m = Net()
    m.reset_parameters()
    out = m.lazy(torch.ones(2, 5))
    assert out.shape == (2, 4)
