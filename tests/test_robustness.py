"""Hard cases: third-party resets, lazy layers, threads, copies, annotation spellings, and the
errors for misuse that is easy to write."""

from __future__ import annotations

import copy
import pickle
import threading
from typing import Annotated, Any, Optional
from typing import Annotated as Ann

import pytest
import torch
from torch import nn

from seeded_init import (
    ConstructionError,
    DeclarationError,
    PlanError,
    SeededModule,
    declarations,
    seeded_init,
)
from tests import models_future
from tests.helpers import assert_same, snapshot


class ResetsChildren(nn.Module):
    """A third-party layer whose reset also resets its child."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.empty(4))
        self.inner = nn.Linear(4, 4)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.scale)
        self.inner.reset_parameters()


def test_third_party_reset_that_resets_children_terminates(global_rng_guard: None) -> None:
    """Its child's seeded reset is reached from inside its own reset without recursion."""

    class Host(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.tp = ResetsChildren()

    m = Host()
    first = snapshot(m)
    m.reset_parameters()
    assert_same(snapshot(m), first)
    m.tp.inner.reset_parameters()
    assert_same(snapshot(m), first)

    class Declared(SeededModule):
        @seeded_init()
        def tp(self) -> ResetsChildren:
            return ResetsChildren()

    d = Declared()
    before = snapshot(d)
    d.tp.inner.reset_parameters()
    assert_same(snapshot(d), before)


class WritesChild(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.empty(4))
        self.inner = nn.Linear(4, 4)
        self.other = nn.Linear(4, 4)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.scale)
        nn.init.normal_(self.inner.weight)


FAIL = [False]


class Flaky(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.empty(3))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if FAIL[0]:
            raise RuntimeError("boom")
        nn.init.normal_(self.w)


class HostWC(SeededModule):
    def __init__(self) -> None:
        super().__init__()
        self.tp = WritesChild()
        self.flaky = Flaky()


def test_sibling_reset_and_failed_reset_leave_a_third_party_subtree_alone() -> None:
    """A part reset writes only its part; a failing third-party reset restores every tensor
    of the modules whose own reset ran, children included."""
    m = HostWC()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(1)
    before = snapshot(m)
    m.tp.other.reset_parameters()
    after = snapshot(m)
    assert [k for k in before if not torch.equal(before[k], after[k])] == [
        "tp.other.weight",
        "tp.other.bias",
    ]
    with torch.no_grad():
        for p in m.parameters():
            p.add_(1)
    before = snapshot(m)
    FAIL[0] = True
    try:
        with pytest.raises(PlanError, match="restored"):
            m.reset_parameters()
    finally:
        FAIL[0] = False
    assert_same(snapshot(m), before)


def test_literal_negative_gain_fails_at_class_definition() -> None:
    """gain < 0 for xavier is a DeclarationError when the class is made."""
    with pytest.raises(DeclarationError, match=r"Bad\.fc.*gain=-1\.0"):

        class Bad(SeededModule):
            @seeded_init(scheme="xavier_uniform", gain=-1.0)
            def fc(self) -> nn.Linear:
                return nn.Linear(4, 4)


def test_bad_values_known_only_at_reset_fail_before_any_write() -> None:
    """A keyword function's bad value, or a tensor that cannot be drawn (int64), is a
    PlanError with every tensor unchanged."""

    class Net(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.g = 1.0

        @seeded_init(scheme="normal", std=0.02)
        def a(self) -> nn.Linear:
            return nn.Linear(4, 4)

        @seeded_init(scheme="xavier_uniform", gain=lambda m: m.g)
        def b(self) -> nn.Linear:
            return nn.Linear(4, 4)

    m = Net()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(1)
    before = snapshot(m)
    m.g = -1.0
    with pytest.raises(PlanError, match=r"gain=-1\.0"):
        m.reset_parameters()
    assert_same(snapshot(m), before)
    m.g = 1.0
    m.b.weight = nn.Parameter(torch.zeros(4, 4, dtype=torch.int64), requires_grad=False)
    with pytest.raises(PlanError, match=r"'b\.weight'.*torch\.int64.*float16, bfloat16"):
        m.reset_parameters()
    assert torch.equal(m.a.weight, before["a.weight"])


def test_reset_under_a_default_device_context() -> None:
    """Scratch buffers stay on the CPU whatever torch.device context is active."""

    class CL(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(3, 3)
            conv = nn.Conv2d(3, 4, 3)
            conv.weight = nn.Parameter(
                conv.weight.detach().contiguous(memory_format=torch.channels_last)
            )
            self.conv = conv

    want = snapshot(CL())
    m = CL()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(1)
    with torch.device("meta"):
        m.reset_parameters()
    assert_same(snapshot(m), want)


class C07(SeededModule):
    @seeded_init(scheme="orthogonal", seed=3)
    def proj(self) -> nn.LazyLinear:
        return nn.LazyLinear(4)

    def __init__(self) -> None:
        super().__init__()
        self.free = nn.LazyLinear(3)
        self.bn = nn.LazyBatchNorm1d()


def test_c07_lazy_layer_gets_its_declared_init_when_it_materializes(global_rng_guard: None) -> None:
    """C07: reset before the first forward works; the first forward gives the declared
    orthogonal weight without the global RNG; later forwards and resets keep it."""
    m = C07()
    m.reset_parameters()
    m.proj(torch.ones(2, 8))
    w = m.proj.weight.detach().clone()
    assert w.shape == (4, 8) and w.any()
    assert torch.allclose(w @ w.T, torch.eye(4), atol=1e-5)
    m.proj(torch.ones(2, 8))
    assert torch.equal(m.proj.weight, w)
    twin = C07()
    twin.proj(torch.ones(2, 8))
    assert torch.equal(twin.proj.weight, w)
    m.reset_parameters()
    assert torch.equal(m.proj.weight, w)


class GlobalDraws(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.empty(64))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for _ in range(5):
            nn.init.normal_(self.w)


class ThreadNet(SeededModule):
    def __init__(self) -> None:
        super().__init__()
        self.tp = GlobalDraws()
        self.noise = torch.randn(3)  # the constructor itself draws from the global RNG


def test_threads_constructing_models_get_identical_values() -> None:
    """Constructions on several threads, with modules that borrow the global RNG, agree."""
    want = snapshot(ThreadNet())
    bad: list[int] = []

    def work() -> None:
        for _ in range(40):
            if any(not torch.equal(v, want[k]) for k, v in snapshot(ThreadNet()).items()):
                bad.append(1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


class Partial(nn.Module):
    """Initializes `scale` in __init__ but not in reset_parameters()."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(4, 4))
        self.scale = nn.Parameter(torch.empty(1000))
        nn.init.normal_(self.scale)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.weight)


def test_constructor_init_of_an_unknown_layer_is_not_skipped() -> None:
    """A third-party layer's own constructor init runs (its reset may not cover it)."""

    class Host(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.p = Partial()

    scale = Host().p.scale
    assert torch.isfinite(scale).all() and scale.abs().max() < 10


class Block(SeededModule):
    @seeded_init(scheme="normal")
    def fc(self) -> nn.Linear:
        return nn.Linear(2, 2)


class Holder(SeededModule):
    def __init__(self) -> None:
        super().__init__()
        self.b0 = Block()


def test_part_attached_after_construction_resets_as_part_of_the_model() -> None:
    """m.extra = Block(): its own reset equals its part of the model's reset; so does a
    plain layer attached later, and a block moved to another model."""
    m = Holder()
    m.extra = Block()
    m.lin = nn.Linear(3, 3)
    m.extra.reset_parameters()
    m.lin.reset_parameters()
    part = snapshot(m)
    m.reset_parameters()
    assert_same(snapshot(m), part)
    other = Holder()
    other.moved = m.b0
    del m.b0
    other.moved.reset_parameters()
    moved = snapshot(other.moved)
    other.reset_parameters()
    assert_same(snapshot(other.moved), moved)


def test_future_annotation_sees_module_names_not_callers_locals() -> None:
    """A string annotation is evaluated where the class is written, not in its callers."""
    S = 99  # noqa: F841 - a caller's local that must not be seen
    net = models_future.make_with_module_seed()
    assert declarations(net)["head"].spec.seed == 3


def test_future_annotation_naming_an_enclosing_variable_is_a_clear_error() -> None:
    """A name only an enclosing function holds cannot be seen: a DeclarationError says so."""
    with pytest.raises(DeclarationError, match=r"head: could not evaluate"):
        models_future.make_in_closure(4)


def test_future_decorator_return_type_names_a_local_class() -> None:
    """The factory's return annotation is checked even when it names a local class."""
    with pytest.raises(ConstructionError, match="declared as MyLayer but holds a Conv1d"):
        models_future.make_with_local_return_type()()


class Spellings(SeededModule):
    head: Ann[nn.Linear, seeded_init(scheme="normal", seed=5)]
    opt: Optional[Annotated[nn.Linear, seeded_init(scheme="normal", seed=6)]]  # noqa: UP045
    alt: Annotated[nn.Linear, seeded_init(scheme="normal", seed=7)] | None

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(2, 2)
        self.opt = None
        self.alt = nn.Linear(2, 2)


def test_annotated_spellings_all_declare() -> None:
    """An alias of Annotated, Optional[Annotated[...]] and Annotated[...] | None declare."""
    assert {k: d.spec.seed for k, d in declarations(Spellings).items()} == {
        "head": 5,
        "opt": 6,
        "alt": 7,
    }
    assert Spellings().opt is None


def test_uncalled_marker_is_an_error() -> None:
    """Annotated[nn.Linear, seeded_init] (no call) is refused, not silently ignored."""
    with pytest.raises(DeclarationError, match="call it"):

        class Bad(SeededModule):
            head: Annotated[nn.Linear, seeded_init]


class Big(SeededModule):
    def __init__(self) -> None:
        super().__init__()
        self.plain = nn.Linear(4, 4)
        self.huge = nn.Linear(1000, 1000)


def test_copying_one_layer_takes_only_that_layer() -> None:
    """A layer pickled alone is small; copies of it work after the model is gone, and reset
    as PyTorch's layer (they left the model)."""
    m = Big()
    assert len(pickle.dumps(m.plain)) < 50_000
    layer = Big().plain
    copied = copy.deepcopy(layer)
    unpickled = pickle.loads(pickle.dumps(layer))
    for c in (copied, unpickled):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(3)
            c.reset_parameters()
            torch.manual_seed(3)
            want = nn.Linear(4, 4)
        assert_same(snapshot(c), snapshot(want))


def test_unpickled_model_parts_reset_as_parts_of_it() -> None:
    """After pickle or deepcopy, a nested part's reset still equals its part of the model's."""
    m = Holder()
    for c in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):
        with torch.no_grad():
            for p in c.parameters():
                p.zero_()
        c.b0.reset_parameters()
        assert_same(snapshot(c), snapshot(m))


def test_bare_parameter_fan_error_suggests_a_scheme() -> None:
    """The fix for a 1-D declared parameter is another scheme, not params=."""

    class Bad(SeededModule):
        @seeded_init(scheme="kaiming_normal")
        def scale(self) -> nn.Parameter:
            return nn.Parameter(torch.ones(4))

    with pytest.raises(PlanError, match=r'scheme="normal"') as info:
        Bad()
    assert "params=" not in str(info.value)


def test_fan_scheme_on_a_bias_suggests_a_bias_rule() -> None:
    """bias="xavier_uniform": the fix named is a bias rule."""

    class Bad(SeededModule):
        @seeded_init(scheme="normal", bias="xavier_uniform")
        def fc(self) -> nn.Linear:
            return nn.Linear(4, 4)

    with pytest.raises(PlanError, match=r'bias="zeros" or bias="default"'):
        Bad()


def test_decorator_without_parentheses_is_a_declaration_error() -> None:
    """@seeded_init with no call: DeclarationError saying to add parentheses."""
    with pytest.raises(DeclarationError, match="parentheses"):

        class Bad(SeededModule):
            @seeded_init  # type: ignore[call-overload]
            def fc(self) -> nn.Linear:
                return nn.Linear(2, 2)


def test_decorator_in_a_plain_module_fails_at_class_definition() -> None:
    """@seeded_init(...) in an nn.Module that is not a SeededModule is refused when the class
    is made (Python 3.11 wraps errors from __set_name__ in RuntimeError)."""
    with pytest.raises((DeclarationError, RuntimeError)) as info:

        class Plain(nn.Module):
            @seeded_init(scheme="normal")  # type: ignore[type-var]
            def fc(self) -> nn.Linear:
                return nn.Linear(2, 2)

    error: BaseException | None = info.value
    messages = []
    while error is not None:
        messages.append(str(error))
        error = error.__cause__
    assert any("subclass seeded_init.SeededModule" in m for m in messages)


def test_factory_returning_a_class_says_to_call_it() -> None:
    """return nn.Linear (the class): the message says to call it."""

    class Bad(SeededModule):
        @seeded_init(scheme="normal")
        def fc(self) -> Any:
            return nn.Linear

    with pytest.raises(ConstructionError, match=r"the class Linear itself: call it"):
        Bad()


def test_base_whose_init_subclass_drops_super_is_reported() -> None:
    """A base __init_subclass__ that does not call super() would drop declarations."""

    class Careless(SeededModule):
        def __init_subclass__(cls, **kwargs: Any) -> None:
            pass

    class Net(Careless):
        @seeded_init(scheme="normal")
        def fc(self) -> nn.Linear:
            return nn.Linear(2, 2)

    with pytest.raises(DeclarationError, match=r"super\(\).__init_subclass__"):
        Net()


def test_model_built_in_inference_mode_is_reported() -> None:
    """Parameters made under torch.inference_mode() cannot be reset outside it: PlanError."""
    with torch.inference_mode():
        m = Block()
    with pytest.raises(PlanError, match="inference_mode"):
        m.reset_parameters()


class Fancy(SeededModule):
    def __init__(self, ok: bool) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2)
        if not ok:
            raise ValueError("no")


def test_caught_failure_of_an_inner_construction() -> None:
    """An outer __init__ that catches a failing inner construction still builds."""

    class Outer(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            try:
                self.block = Fancy(False)
            except ValueError:
                self.block = Fancy(True)

    state = torch.get_rng_state()
    m = Outer()
    assert torch.equal(state, torch.get_rng_state())
    assert isinstance(m.block, Fancy)
