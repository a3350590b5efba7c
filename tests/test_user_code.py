"""User code that would silently lose or corrupt values is refused, and nothing is changed.

Scheme functions, writes in ``__init__``, assignments to declared names, Ctrl-C in the middle
of a reset. References are ``torch.nn.init`` with a generator and PyTorch's own layers.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated

import pytest
import torch
from torch import nn

from seeded_init import (
    ConstructionError,
    DeclarationError,
    PlanError,
    SeededModule,
    seeded_init,
)
from tests.helpers import assert_same, manual_seed, nn_init, reference, snapshot

InitFn = Callable[[torch.Tensor, torch.Generator], object]


def _global_normal(t: torch.Tensor, g: torch.Generator) -> None:
    nn.init.normal_(t, std=0.02)  # forgot generator=g


def _new_data(t: torch.Tensor, g: torch.Generator) -> None:
    t.data = torch.zeros(2, 2)


def _new_dtype(t: torch.Tensor, g: torch.Generator) -> None:
    t.data = t.data.double()


BAD_FUNCTIONS: dict[str, tuple[InitFn, str]] = {
    "writes NaN": (lambda t, g: t.fill_(float("nan")), "NaN or inf"),
    "writes inf": (lambda t, g: t.fill_(float("inf")), "NaN or inf"),
    "writes nothing": (lambda t, g: None, "must write every element"),
    "returns a new tensor": (lambda t, g: torch.ones_like(t), "must write every element"),
    "reads the old values": (lambda t, g: t.mul_(0.5), "without reading the old values"),
    "replaces the data": (_new_data, "replaced the tensor's data"),
    "changes the dtype": (_new_dtype, "replaced the tensor's data"),
    "drops requires_grad": (lambda t, g: t.requires_grad_(False), "requires_grad"),
    "draws from the global RNG": (_global_normal, "drew from the global RNG"),
}


def _model_with(fn: InitFn, gate: list[bool]) -> SeededModule:
    """A model whose fc weight takes ``fn`` once ``gate[0]`` is set (a good fill before)."""

    def init(t: torch.Tensor, g: torch.Generator) -> None:
        if gate[0]:
            fn(t, g)
        else:
            nn.init.normal_(t, generator=g)

    class Net(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.other = nn.Linear(3, 3)

        @seeded_init(scheme=init, seed=4)
        def fc(self) -> nn.Linear:
            return nn.Linear(4, 4)

    return Net()


@pytest.mark.parametrize("case", list(BAD_FUNCTIONS))
def test_scheme_function_that_misbehaves_is_refused_and_changes_nothing(case: str) -> None:
    """Each misuse is a PlanError naming the tensor; every value, the requires_grad flag, the
    parameter objects and the global RNG are as before."""
    fn, match = BAD_FUNCTIONS[case]
    gate = [False]
    m = _model_with(fn, gate)
    want = nn_init(nn.init.normal_, (4, 4), 4)
    assert torch.equal(m.get_parameter("fc.weight"), want)
    before = snapshot(m)
    objects = list(m.parameters())
    rng = torch.get_rng_state()
    gate[0] = True
    with pytest.raises(PlanError, match=rf"'fc\.weight'.*{match}"):
        m.reset_parameters()
    assert_same(snapshot(m), before)
    assert list(m.parameters()) == objects
    assert all(p.requires_grad for p in m.parameters())
    assert m.get_parameter("fc.weight").shape == (4, 4)
    assert torch.equal(torch.get_rng_state(), rng)


@pytest.mark.parametrize("case", list(BAD_FUNCTIONS))
def test_scheme_function_that_misbehaves_fails_the_construction(case: str) -> None:
    """The same checks run at construction, which ends with the reset."""
    fn, match = BAD_FUNCTIONS[case]
    rng = torch.get_rng_state()
    with pytest.raises(PlanError, match=match):
        _model_with(fn, [True])
    assert torch.equal(torch.get_rng_state(), rng)


def _three(t: torch.Tensor, g: torch.Generator, extra: int) -> None:
    t.zero_()


def _none() -> None:
    pass


@pytest.mark.parametrize(
    ("fn", "match"),
    [
        (_none, r"_none\(\) cannot be called as \(tensor, generator\)"),
        (_three, r"_three\(t, g, extra\) cannot be called as \(tensor, generator\)"),
        (nn.init.normal_, r"scheme=torch.nn.init.normal_ .*write scheme='normal'"),
        (nn.init.xavier_uniform_, r"scheme='xavier_uniform'.*generator=generator"),
    ],
)
def test_scheme_function_with_the_wrong_signature_fails_at_class_definition(
    fn: object, match: str
) -> None:
    """Not at construction: the class statement itself raises."""
    spec = seeded_init(scheme=fn)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    with pytest.raises(DeclarationError, match=match):

        class Net(SeededModule):  # pyright: ignore[reportUnusedClass]
            fc: Annotated[nn.Linear, spec]

    assert "invalid" in repr(spec)


def test_bias_rule_with_a_seed_draws_from_its_own_generator() -> None:
    """bias=seeded_init(..., seed=s): the bias is nn.init on Generator().manual_seed(s), and
    the weight is what it is without a bias seed."""

    class Net(SeededModule):
        @seeded_init(scheme="normal", seed=3, bias=seeded_init(scheme="uniform", seed=123))
        def fc(self) -> nn.Linear:
            return nn.Linear(4, 5)

    m = Net()
    assert torch.equal(m.fc.weight, nn_init(nn.init.normal_, (5, 4), 3))
    assert torch.equal(m.fc.bias, nn_init(nn.init.uniform_, (5,), 123))
    records = {r.path: r for r in m.init_plan().entries}
    assert records["fc.bias"].seed == 123 and records["fc.weight"].seed == 3


def test_bias_seeds_take_part_in_the_collision_check() -> None:
    """A bias seed equal to another layer's seed is a collision like any other."""

    class Net(SeededModule):
        @seeded_init(scheme="normal", seed=7)
        def a(self) -> nn.Linear:
            return nn.Linear(2, 2)

        @seeded_init(scheme="normal", bias=seeded_init(scheme="normal", seed=7))
        def b(self) -> nn.Linear:
            return nn.Linear(2, 2)

    with pytest.raises(PlanError, match=r"seed=7 .*'a'.*'b.bias'"):
        Net()


class HuggingFaceStyle(SeededModule):
    """The pattern of many model files: initialize in __init__ with self.apply."""

    def __init__(self, via_data: bool) -> None:
        super().__init__()
        self.via_data = via_data
        self.fc = nn.Linear(4, 4)
        self.apply(self._init_weights)

    def _init_weights(self, m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            if self.via_data:
                m.weight.data.normal_(mean=0.0, std=0.02)
            else:
                nn.init.normal_(m.weight, std=0.02)


@pytest.mark.parametrize("via_data", [False, True])
def test_init_written_in_init_is_refused_not_lost(via_data: bool) -> None:
    """The final reset would overwrite it: a ConstructionError naming the class, the
    parameter and what to write instead; the global RNG is as before."""
    rng = torch.get_rng_state()
    with pytest.raises(ConstructionError, match=r"HuggingFaceStyle.__init__.*'fc.weight'.*Declare"):
        HuggingFaceStyle(via_data)
    assert torch.equal(torch.get_rng_state(), rng)


def test_init_written_by_a_factory_is_refused() -> None:
    class Net(SeededModule):
        @seeded_init(scheme="normal")
        def fc(self) -> nn.Linear:
            layer = nn.Linear(4, 4)
            nn.init.zeros_(layer.bias)
            return layer

    with pytest.raises(
        ConstructionError, match=r"writes the parameter 'bias' of the Linear it builds with zero_"
    ):
        Net()


def test_layers_that_initialize_themselves_and_their_children_are_not_refused() -> None:
    """A layer's constructor (also one that initializes its children, as MultiheadAttention
    does) is PyTorch's own init, which the reset replays: no error, PyTorch's values."""

    class Net(SeededModule):
        @seeded_init(seed=5)
        def attn(self) -> nn.MultiheadAttention:
            return nn.MultiheadAttention(8, 2)

        @seeded_init(seed=6)
        def rnn(self) -> nn.GRU:
            return nn.GRU(3, 4)

    m = Net()
    assert_same(snapshot(m.attn), snapshot(reference(5, lambda: nn.MultiheadAttention(8, 2))))
    assert_same(snapshot(m.rnn), snapshot(reference(6, lambda: nn.GRU(3, 4))))


def test_declared_factory_assigned_in_init_is_an_error() -> None:
    """A subclass factory for a name the base __init__ assigns would never run."""

    class Base(SeededModule):
        fc: Annotated[nn.Linear, seeded_init(scheme="ones")]

        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

    class Sub(Base):
        @seeded_init(scheme="zeros")
        def fc(self) -> nn.Linear:  # pyright: ignore[reportIncompatibleVariableOverride]
            return nn.Linear(8, 8)

    with pytest.raises(ConstructionError, match=r"Sub.fc is declared by a factory.*never run"):
        Sub()
    assert torch.equal(Base().fc.weight, torch.ones(4, 4))


def test_parameter_assigned_to_a_declared_layer_is_refused_and_changes_nothing() -> None:
    class Net(SeededModule):
        @seeded_init(scheme="ones")
        def fc(self) -> nn.Linear:
            return nn.Linear(2, 2)

    m = Net()
    layer = m.fc
    with pytest.raises(
        ConstructionError, match=r"Net.fc is declared as Linear but holds a Parameter"
    ):
        m.fc = nn.Parameter(torch.zeros(2))  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
    assert m.fc is layer and "fc" not in dict(m.named_parameters(recurse=False))


def test_declared_name_registered_as_a_buffer_is_reported() -> None:
    class Net(SeededModule):
        w: Annotated[nn.Parameter, seeded_init(scheme="normal")]

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("w", torch.zeros(3))

    with pytest.raises(
        ConstructionError, match=r"Net.w .* registered it as a buffer.*nn.Parameter"
    ):
        Net()


def test_views_of_one_buffer_that_do_not_overlap_are_initialized() -> None:
    """The flat-parameter layout: each view gets the values of a layer of its own."""

    class Net(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 4, bias=False)
            self.b = nn.Linear(4, 4, bias=False)

    m, want = Net(), Net()
    flat = torch.zeros(32)
    m.a.weight = nn.Parameter(flat[:16].view(4, 4))
    m.b.weight = nn.Parameter(flat[16:].view(4, 4))
    m.reset_parameters()
    assert_same(snapshot(m), snapshot(want))
    assert m.a.weight.data_ptr() == flat.data_ptr()


class Interrupting(nn.Module):
    """A third-party layer whose reset is interrupted (Ctrl-C) half-way."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(3))
        self.armed = False

    def reset_parameters(self) -> None:
        if self.armed:
            raise KeyboardInterrupt
        nn.init.normal_(self.w)


def test_keyboard_interrupt_in_a_reset_leaves_no_placeholder_behind() -> None:
    class Net(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.x = Interrupting()
            self.fc = nn.Linear(2, 2)

    m = Net()
    before = snapshot(m)
    m.x.armed = True
    with pytest.raises(KeyboardInterrupt):
        m.reset_parameters()
    assert_same(snapshot(m), before)


def test_root_seed_error_names_the_constructor_argument() -> None:
    class Net(SeededModule):
        def __init__(self, seed: int) -> None:
            super().__init__(seed=seed)

    with pytest.raises(DeclarationError, match=r"Net\(seed=\.\.\.\)"):
        Net("x")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def test_factory_error_says_which_layer_was_being_built() -> None:
    class Net(SeededModule):
        def __init__(self, d: object) -> None:
            super().__init__()
            self.d = d

        @seeded_init(scheme="normal")
        def fc(self) -> nn.Linear:
            return nn.Linear(self.d, 2)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

    with pytest.raises(TypeError) as info:
        Net("x")
    if sys.version_info >= (3, 11):  # exceptions take notes from Python 3.11 on
        notes: list[str] = getattr(info.value, "__notes__", [])
        assert any("Net.fc by its factory" in note for note in notes)


def test_global_rng_untouched_by_a_good_scheme_function() -> None:
    """The check itself draws nothing: torch.rand after construction and reset is unchanged."""

    def good(t: torch.Tensor, g: torch.Generator) -> None:
        nn.init.trunc_normal_(t, std=0.02, generator=g)

    class Net(SeededModule):
        @seeded_init(scheme=good, seed=1)
        def fc(self) -> nn.Linear:
            return nn.Linear(3, 3)

    manual_seed(0)
    m = Net()
    m.reset_parameters()
    after = torch.rand(3)
    manual_seed(0)
    assert torch.equal(torch.rand(3), after)
    want = nn_init(nn.init.trunc_normal_, (3, 3), 1, std=0.02)
    assert torch.equal(m.fc.weight, want)


class _SelfNamedS(nn.Module):
    """A third-party layer that initializes itself, its first argument not named self."""

    def __init__(s) -> None:  # pyright: ignore[reportSelfClsParameterName]
        super().__init__()
        s.weight = nn.Parameter(torch.empty(4, 4))
        s.reset_parameters()

    def reset_parameters(s) -> None:  # pyright: ignore[reportSelfClsParameterName]
        nn.init.normal_(s.weight)


def test_a_layer_whose_self_has_another_name_may_initialize_itself() -> None:
    """Its constructor's writes are its own, whatever the first argument is called: no
    ConstructionError, and the reset gives its own init from the layer's path seed."""

    class Host(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.o = _SelfNamedS()

    first, second = Host(), Host()
    assert torch.equal(first.o.weight, second.o.weight)
