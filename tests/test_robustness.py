"""Hard cases: third-party resets, lazy layers, threads, copies, annotation spellings, and the
errors for misuse that is easy to write."""

from __future__ import annotations

import copy
import pickle
import re
import threading
import warnings
from typing import Annotated, Any, Optional
from typing import Annotated as Ann

import pytest
import torch
from torch import nn

from seeded_init import (
    Constant,
    ConstructionError,
    DeclarationError,
    PlanError,
    SeededModule,
    declarations,
    seeded_init,
)
from tests import models_future
from tests.helpers import (
    assert_same,
    declared,
    forked_rng,
    manual_seed,
    nn_init,
    reference,
    snapshot,
)


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

        class Bad(SeededModule):  # pyright: ignore[reportUnusedClass]
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


_TOO_BIG: list[tuple[torch.dtype, dict[str, Any], str]] = [
    (torch.float16, {"scheme": "constant", "val": 1e5}, "val=100000"),
    (torch.float16, {"scheme": "uniform", "a": -1e5, "b": 1e5}, "a=-100000"),
    (torch.float16, {"scheme": "uniform", "a": -4e4, "b": 4e4}, "b - a=80000"),
    (torch.float16, {"scheme": "normal", "std": 7e4}, "std=70000"),
    (torch.float16, {"scheme": "trunc_normal", "std": 5e4}, r"std \* sqrt\(2\)"),
    (torch.float16, {"scheme": "xavier_normal", "gain": 1e6}, "std=500000"),
    (torch.float16, {"scheme": "orthogonal", "gain": 1e5}, "gain=100000"),
    (torch.float16, {"scheme": "normal", "params": {"bias": Constant(val=1e5)}}, "'bias'"),
]


@pytest.mark.parametrize(("dtype", "spec", "word"), _TOO_BIG)
def test_numbers_beyond_the_dtype_fail_before_any_write(
    dtype: torch.dtype, spec: dict[str, Any], word: str
) -> None:
    """A keyword that fits float32 but not the parameter's dtype (torch refuses it midway, or
    writes inf) is a PlanError naming the layer and parameter; no tensor was written."""

    class Net(SeededModule):
        @seeded_init(scheme="normal", std=0.02)
        def a(self) -> nn.Linear:
            return nn.Linear(4, 4)

        @seeded_init(**spec)
        def b(self) -> nn.Linear:
            return nn.Linear(4, 4)

    m = Net().to(dtype)
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(1.0)
    before = snapshot(m)
    with forked_rng():
        rng = torch.get_rng_state()
        with pytest.raises(PlanError, match=r"layer 'b'\): parameter") as caught:
            m.reset_parameters()
        assert re.search(word, str(caught.value)) and f"is {dtype}" in str(caught.value)
        assert torch.equal(torch.get_rng_state(), rng)
    assert_same(snapshot(m), before)


def test_numbers_beyond_float32_fail_at_construction_and_the_largest_fit() -> None:
    """uniform(+-1e39) cannot be drawn in float32 (torch.nn.init refuses it too); the
    largest float16 value is accepted and written as torch.nn.init.constant_ writes it."""
    with pytest.raises(RuntimeError):
        nn.init.uniform_(torch.empty(4), -1e39, 1e39)

    class Wide(SeededModule):
        @seeded_init(scheme="uniform", a=-1e39, b=1e39)
        def fc(self) -> nn.Linear:
            return nn.Linear(4, 4)

    with pytest.raises(PlanError, match=r"'weight' is torch\.float32.*a=-1e\+39"):
        Wide()

    class Edge(SeededModule):
        @seeded_init(scheme="constant", val=65504.0, bias="default")
        def fc(self) -> nn.Linear:
            return nn.Linear(4, 4, dtype=torch.float16)

    want = nn.init.constant_(torch.empty(4, 4, dtype=torch.float16), 65504.0)
    assert torch.equal(Edge().fc.weight, want)


@pytest.mark.parametrize(
    ("spec", "word"),
    [
        ({"scheme": "kaiming_normal", "a": 1e300}, r"a=1e\+300 is too large"),
        ({"scheme": "normal", "std": 10**400}, "std= is an int of 401 digits"),
        ({"scheme": "constant", "val": -(10**400)}, "val= is an int of 401 digits"),
    ],
)
def test_numbers_no_float_holds_fail_at_class_definition(spec: dict[str, Any], word: str) -> None:
    """A number whose gain overflows, or an int too large for a float, is a DeclarationError."""
    with pytest.raises(DeclarationError, match=word):

        class Net(SeededModule):  # pyright: ignore[reportUnusedClass]
            @seeded_init(**spec)
            def fc(self) -> nn.Linear:
                return nn.Linear(4, 4)


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


def test_parameter_a_third_party_reset_leaves_unwritten_is_reported() -> None:
    """A parameter only its constructor draws cannot be re-initialized: a PlanError names it
    and the fix, which works."""

    class Host(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.p = Partial()

    state = torch.get_rng_state()
    with pytest.raises(PlanError, match=r"'p'.*Partial.*'scale'.*params="):
        Host()
    assert torch.equal(state, torch.get_rng_state())

    class Fixed(SeededModule):
        @seeded_init(params={"scale": "ones"})
        def p(self) -> Partial:
            return Partial()

    m = Fixed()
    assert torch.equal(m.p.scale, torch.ones(1000))
    with torch.no_grad():
        m.p.scale.fill_(3.0)
    m.reset_parameters()
    assert torch.equal(m.p.scale, torch.ones(1000))


class Replaces(nn.Module):
    """Its reset assigns a new Parameter instead of writing the existing one."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.empty(4))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.w = nn.Parameter(torch.randn(4))


def test_reset_that_replaces_a_parameter_keeps_its_identity() -> None:
    """The values are copied into the original Parameter; optimizers keep working."""

    class Host(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.r = Replaces()

    m = Host()
    w = m.r.w
    values = w.detach().clone()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    m.reset_parameters()
    assert m.r.w is w and opt.param_groups[0]["params"][0] is w
    assert torch.equal(w, values)


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
    S = 99  # noqa: F841  # pyright: ignore[reportUnusedVariable]  # a caller's local, unseen
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

        class Bad(SeededModule):  # pyright: ignore[reportUnusedClass]
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
        with forked_rng():
            manual_seed(3)
            c.reset_parameters()
            manual_seed(3)
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

        class Bad(SeededModule):  # pyright: ignore[reportUnusedClass]
            @seeded_init  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
            def fc(self) -> nn.Linear:
                return nn.Linear(2, 2)


def test_decorator_in_a_plain_module_fails_at_class_definition() -> None:
    """@seeded_init(...) in an nn.Module that is not a SeededModule is refused when the class
    is made (Python 3.11 wraps errors from __set_name__ in RuntimeError)."""
    with pytest.raises((DeclarationError, RuntimeError)) as info:

        class Plain(nn.Module):  # pyright: ignore[reportUnusedClass]
            @seeded_init(scheme="normal")  # type: ignore[type-var]  # pyright: ignore[reportArgumentType]
            def fc(self) -> nn.Linear:
                return nn.Linear(2, 2)

    error: BaseException | None = info.value
    messages: list[str] = []
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


class ZeroOut(nn.Module):
    """A third-party attention whose own reset zero-inits its output projection."""

    def __init__(self, gate: bool = False) -> None:
        super().__init__()
        self.qkv = nn.Linear(8, 24)
        self.out = nn.Linear(8, 8)
        self.gate = nn.Parameter(torch.empty(8)) if gate else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        if self.gate is not None:
            nn.init.ones_(self.gate)


@pytest.mark.parametrize("gate", [False, True])
def test_third_party_reset_that_initializes_children_wins(gate: bool) -> None:
    """Its reset runs after its children draw (as in its constructor), also without
    parameters of its own; part resets agree; it equals manual_seed(s); ZeroOut()."""

    class Host(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.attn = ZeroOut(gate)

    m = Host()
    assert not m.attn.out.weight.any() and m.attn.qkv.weight.any()
    want = snapshot(m)
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(2.0)
    m.attn.out.reset_parameters()
    m.attn.qkv.reset_parameters()
    if gate:
        m.attn.reset_parameters()
    assert_same(snapshot(m), want)
    from seeded_init import derive_seed

    assert_same(
        snapshot(m.attn), snapshot(reference(derive_seed(0, "attn"), lambda: ZeroOut(gate)))
    )


def test_layers_built_but_left_out_of_the_model_are_initialized() -> None:
    """A layer kept in a plain list or set with object.__setattr__ is initialized as PyTorch
    would (from the global RNG), not left uninitialized."""

    class Keeps(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.heads = [nn.Linear(64, 64)]
            object.__setattr__(self, "teacher", nn.Sequential(nn.Linear(64, 64)))

    with forked_rng():
        manual_seed(0)
        a = Keeps()
        manual_seed(0)
        b = Keeps()
    for m in (a, b):
        w = m.heads[0].weight
        assert torch.isfinite(w).all() and 0 < w.abs().max() <= 1 / 8
    assert torch.equal(a.heads[0].weight, b.heads[0].weight)


def test_parameters_read_inside_init_are_zeros_not_garbage() -> None:
    """Reading a fresh layer's parameter inside __init__ gives zeros (its init comes later)."""

    class Reads(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.register_buffer("snapshot_w", self.fc.weight.detach().clone())

    m = Reads()
    assert not m.get_buffer("snapshot_w").any() and m.fc.weight.any()


class Stack(SeededModule):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(3, 3) for _ in range(2)])
        self.plain = nn.Sequential(nn.Linear(3, 3))


@pytest.mark.parametrize(
    "attach",
    ["append", "setitem", "add_module", "register_module", "nested_setattr", "del"],
)
def test_layers_attached_by_any_route_reset_as_part_of_the_model(attach: str) -> None:
    """After append, item assignment, add_module, register_module, setattr on a plain child or
    del, every part reset equals the model reset and leaves the global RNG alone."""
    m = Stack()
    new = nn.Linear(3, 3)
    if attach == "append":
        m.layers.append(new)
    elif attach == "setitem":
        m.layers[1] = new
    elif attach == "add_module":
        m.add_module("extra", new)
    elif attach == "register_module":
        m.register_module("extra", new)
    elif attach == "nested_setattr":
        m.plain.extra = new
    else:
        del m.layers[0]
    state = torch.get_rng_state()
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(5.0)
    for mod in m.modules():
        if mod is not m:
            reset = getattr(mod, "reset_parameters", None)
            if callable(reset):
                reset()
    assert torch.equal(state, torch.get_rng_state())
    parts = snapshot(m)
    m.reset_parameters()
    assert_same(snapshot(m), parts)


class LikeDraws(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.empty(6))
        self.b = nn.Parameter(torch.empty(6))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.a.copy_(torch.randn(6))
            self.b.copy_(torch.randn_like(self.b))


def test_like_factories_draw_from_the_layer_stream() -> None:
    """torch.randn_like in a third-party reset draws from the layer's generator: equal to
    PyTorch under manual_seed, and a and b differ."""
    layer = declared(LikeDraws, seeded_init(seed=5))
    assert not torch.equal(layer.get_parameter("a"), layer.get_parameter("b"))
    assert_same(snapshot(layer), snapshot(reference(5, LikeDraws)))


class TiedHead(SeededModule):
    emb: Annotated[nn.Embedding, seeded_init(scheme="normal", std=0.02)]

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.emb.weight


def test_tied_model_works_with_swap_tensors() -> None:
    """With torch.__future__ swapping parameters, .double() and load_state_dict work."""
    previous = torch.__future__.get_swap_module_params_on_conversion()
    torch.__future__.set_swap_module_params_on_conversion(True)
    try:
        m = TiedHead()
        m.load_state_dict(TiedHead().state_dict())
        m.double()
        assert m.emb.weight.dtype == torch.float64
    finally:
        torch.__future__.set_swap_module_params_on_conversion(previous)


def test_copy_of_an_untied_meta_model_is_tied_again_by_its_reset() -> None:
    """meta -> to_empty -> deepcopy: the copy's reset ties it like the original's."""
    with torch.device("meta"):
        m = TiedHead()
    m.to_empty(device="cpu")
    c = copy.deepcopy(m)
    c.reset_parameters()
    m.reset_parameters()
    assert c.head.weight is c.emb.weight and m.head.weight is m.emb.weight
    assert torch.equal(c.emb.weight, m.emb.weight)


def _poke(m: nn.Module) -> None:
    with torch.no_grad():
        for p in m.parameters():
            if p.is_floating_point() and p.element_size() > 1:  # torch < 2.5 cannot fill float8
                p.fill_(0.25)


@pytest.mark.parametrize(
    "case", ["float8", "padding", "expanded", "self-overlapping", "overlapping views", "pruned"]
)
def test_tensors_that_cannot_be_written_fail_before_any_write(case: str) -> None:
    """float8 under a drawing rule, padding_idx past the last row, a weight whose elements
    share memory, two weights in overlapping memory, a pruned layer."""

    class Two(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.first = nn.Linear(3, 3)
            self.emb = nn.Embedding(5, 3)
            self.last = nn.Linear(3, 3)

    m = Two()
    if case == "float8":
        m.last.weight = nn.Parameter(torch.zeros(3, 3, dtype=torch.float8_e4m3fn))
        match = "float8"
    elif case == "padding":
        m.emb.padding_idx = 7
        match = "padding_idx 7"
    elif case == "expanded":
        m.last.weight = nn.Parameter(torch.zeros(1, 3).expand(3, 3))
        match = "stride 0"
    elif case == "self-overlapping":
        m.last.weight = nn.Parameter(torch.zeros(7).as_strided((3, 3), (2, 1)))
        match = "share memory"
    elif case == "overlapping views":
        flat = torch.zeros(15)
        m.first.weight = nn.Parameter(flat[:9].view(3, 3))
        m.last.weight = nn.Parameter(flat[6:].view(3, 3))
        match = "'first.weight' and 'last.weight' are distinct tensors in overlapping memory"
    else:
        from torch.nn.utils import prune

        prune.l1_unstructured(m.last, "weight", amount=0.5)  # type: ignore[no-untyped-call]  # pyright: ignore[reportUnknownMemberType]
        match = r"last \(Linear\) is pruned.*prune.remove"
    _poke(m)
    before = snapshot(m)
    with pytest.raises(PlanError, match=match):
        m.reset_parameters()
    assert_same(snapshot(m), before)


def test_half_precision_orthogonal_under_a_meta_context() -> None:
    """orthogonal in bfloat16 allocates its float32 matrix on the CPU whatever the context."""

    class Orth(SeededModule):
        @seeded_init(scheme="orthogonal", seed=2)
        def fc(self) -> nn.Linear:
            return nn.Linear(4, 4, dtype=torch.bfloat16)

    m = Orth()
    want = snapshot(m)
    _poke(m)
    with torch.device("meta"):
        m.reset_parameters()
    assert_same(snapshot(m), want)


def test_layer_with_meta_and_cpu_tensors_is_reported_at_construction() -> None:
    """A declared layer built partly on meta: a PlanError, not a half-initialized layer."""

    class Mixed(SeededModule):
        @seeded_init(scheme="normal", std=0.02)
        def s(self) -> nn.Sequential:
            return nn.Sequential(nn.Linear(16, 16), nn.Linear(16, 16, device="meta"))

    with pytest.raises(PlanError, match="both on the meta device and off it"):
        Mixed()


@pytest.mark.parametrize("declared_form", [False, True])
def test_deprecated_hook_weight_norm_is_reported(declared_form: bool) -> None:
    """torch.nn.utils.weight_norm (hook-based): an error naming the layer, declared or not."""
    from torch.nn.utils import weight_norm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the hook-based weight_norm is deprecated
        layer = weight_norm(nn.Linear(4, 4))

    class Host(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            if not declared_form:
                self.fc = layer

    if declared_form:

        class Declared(Host):
            @seeded_init(scheme="kaiming_normal")
            def fc(self) -> nn.Linear:
                return layer

        cls: type[SeededModule] = Declared
    else:
        cls = Host
    with pytest.raises(PlanError, match=r"fc.*WeightNorm"):
        cls()


def test_torch_jit_script_compiles_a_seeded_module() -> None:
    """torch.jit.script works on a SeededModule (root_seed is not compiled)."""

    class Scripted(SeededModule):
        @seeded_init(scheme="normal")
        def fc(self) -> nn.Linear:
            return nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y: torch.Tensor = self.fc(x)
            return y

    m = Scripted()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated in 2.13
        scripted = torch.jit.script(m)  # pyright: ignore[reportUnknownMemberType]
    assert torch.equal(scripted(torch.ones(1, 3)), m(torch.ones(1, 3)))


def test_model_is_freed_without_the_cyclic_gc() -> None:
    """No reference cycle holds a model after construction and resets."""
    import gc
    import weakref

    gc.disable()
    try:
        m = HostWC()
        m.reset_parameters()
        m.tp.other.reset_parameters()
        ref = weakref.ref(m)
        del m
        assert ref() is None
    finally:
        gc.enable()


class Seeded(SeededModule):
    @seeded_init(scheme="normal")
    def fc(self) -> nn.Linear:
        return nn.Linear(3, 3)


def test_nested_module_given_a_root_seed_derives_from_it() -> None:
    """Blocks built with seed=5 and seed=99 in one model differ; each equals a standalone
    block with that seed; setting root_seed on a nested block takes effect."""

    class Pair(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.a = Seeded(seed=5)
            self.b = Seeded(seed=99)
            self.c = Seeded()

    m = Pair()
    assert_same(snapshot(m.a), snapshot(Seeded(seed=5)))
    assert_same(snapshot(m.b), snapshot(Seeded(seed=99)))
    from seeded_init import derive_seed

    assert torch.equal(
        m.c.fc.weight,
        torch.empty(3, 3).normal_(generator=torch.Generator().manual_seed(derive_seed(0, "c.fc"))),
    )
    m.b.root_seed = 5
    m.b.reset_parameters()
    assert_same(snapshot(m.b), snapshot(m.a))
    m.c.reset_parameters(seed=5)  # a per-call seed on a part applies to that part
    assert_same(snapshot(m.c), snapshot(m.a))


class Proj(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.empty(3, 4))
        self.reset_parameters()

    def reset_parameters(self, std: float = 1.0) -> None:
        nn.init.normal_(self.w, std=std)


class CallsWithArgs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = Proj()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.proj.reset_parameters(0.02)


def test_layer_reset_called_with_arguments_runs_its_own_method() -> None:
    """A composite's reset calling proj.reset_parameters(0.02) works, before and after the
    model links its layers; a direct call with arguments is the layer's own method."""

    class Host(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.b = CallsWithArgs()

    m = Host()
    first = snapshot(m)
    assert m.b.proj.w.std() < 0.05
    m.reset_parameters()
    assert_same(snapshot(m), first)
    with forked_rng():
        m.b.proj.reset_parameters(std=0.5)
    assert 0.2 < m.b.proj.w.std() < 1.0


class LayerScale(nn.Module):
    """No reset_parameters at all."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.empty(d))


class TimmBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.ls = LayerScale(4)


def test_params_rule_gives_a_layer_without_reset_its_init() -> None:
    """params= fixes a layer that has no reset_parameters(), alone or inside a block, while
    the other layers keep PyTorch's default."""

    class Host(SeededModule):
        @seeded_init(params={"gamma": "ones"})
        def ls(self) -> LayerScale:
            return LayerScale(4)

        @seeded_init(params={"ls.gamma": seeded_init(scheme="constant", val=1e-5)})
        def block(self) -> TimmBlock:
            return TimmBlock()

    m = Host()
    assert torch.equal(m.ls.gamma, torch.ones(4))
    assert torch.equal(m.block.ls.gamma, torch.full((4,), 1e-5))
    assert m.block.fc.weight.abs().max() <= 0.5 and m.block.fc.weight.any()

    class Unfixed(SeededModule):
        @seeded_init()
        def block(self) -> TimmBlock:
            return TimmBlock()

    with pytest.raises(PlanError, match=r"Unfixed\.block.*gamma.*params=\{\"ls\.gamma\""):
        Unfixed()


class PartialWS(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.empty(3))
        self.scale = nn.Parameter(torch.empty(3))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.w)


def test_params_rule_with_its_own_seed_on_a_layer_with_its_own_reset() -> None:
    """A seeded params= rule for a parameter the layer's reset leaves alone works."""

    class Host(SeededModule):
        @seeded_init(params={"scale": seeded_init(scheme="uniform", seed=9)})
        def p(self) -> PartialWS:
            return PartialWS()

    m = Host()
    assert torch.equal(m.p.scale, nn_init(nn.init.uniform_, (3,), 9))


class Comp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.g = nn.Parameter(torch.empty(4))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.fc.weight, std=0.02)
        nn.init.ones_(self.g)


@pytest.mark.parametrize("key", ["fc.weight", "fc"])
def test_params_rule_is_not_overwritten_by_the_layers_own_reset(key: str) -> None:
    """A params= rule applies after the module's own reset, which would overwrite it."""

    class Host(SeededModule):
        @seeded_init(params={key: seeded_init(scheme="zeros")})
        def comp(self) -> Comp:
            return Comp()

    m = Host()
    assert not m.comp.fc.weight.any()
    assert "zeros" in m.init_plan()["comp.fc.weight"].rule


class BadReplace(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.ones(3))
        self.b = nn.Parameter(torch.ones(3))
        self.fail = False
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.a)
        self.b = nn.Parameter(torch.full((3,), 7.0))
        if self.fail:
            raise RuntimeError("boom")


def test_failed_reset_puts_back_replaced_parameter_objects() -> None:
    """A reset that replaces a parameter and then raises: the original object, with its
    value, is back in the module."""

    class Host(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.m = BadReplace()

    h = Host()
    b = h.m.b
    with torch.no_grad():
        b.fill_(3.0)
    h.m.fail = True
    with pytest.raises(PlanError, match="boom"):
        h.reset_parameters()
    assert h.m.b is b and torch.equal(b, torch.full((3,), 3.0))


class ReplacesChild(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.fc.weight = nn.Parameter(torch.randn(3, 3) * 0.02)


def test_composite_replacing_a_child_parameter_keeps_its_identity() -> None:
    """The child's Parameter object stays; it holds the new values."""

    class Host(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.c = ReplacesChild()

    h = Host()
    w = h.c.fc.weight
    h.reset_parameters()
    assert h.c.fc.weight is w and w.abs().max() < 0.2


class ScaledEmbedding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(10, 4))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, std=0.1)


class TiedOut(nn.Module):
    def __init__(self, emb: ScaledEmbedding) -> None:
        super().__init__()
        self.weight = emb.weight
        self.bias = nn.Parameter(torch.empty(10))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.bias)


class LMComp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = ScaledEmbedding()
        self.head = TiedOut(self.embed)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.embed.reset_parameters()
        self.head.reset_parameters()


def test_tied_weight_written_by_another_modules_reset_is_not_reported() -> None:
    """A tied weight that another module's own reset writes is not 'left unwritten'."""

    class Host(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.lm = LMComp()

    m = Host()
    assert m.lm.head.weight is m.lm.embed.weight
    assert torch.isfinite(m.lm.embed.weight).all()
    from seeded_init import derive_seed

    assert_same(snapshot(m.lm), snapshot(reference(derive_seed(0, "lm"), LMComp)))


def test_plan_shows_the_seed_the_part_derives_from() -> None:
    """init_plan() of a pinned part reports its root seed; an unpinned part reads the model's."""

    class Outer(SeededModule):
        def __init__(self) -> None:
            super().__init__(seed=11)
            self.pinned = Seeded(seed=7)
            self.free = Seeded()

    m = Outer()
    assert m.pinned.init_plan().root_seed == 7
    assert m.pinned.init_plan(seed=3).root_seed == 3
    assert m.free.root_seed == 11 and m.free.init_plan().root_seed == 11


@pytest.mark.parametrize("name", ["rand_like", "randn_like", "randint_like"])
def test_old_torch_like_replacements_draw_what_the_generator_taking_factory_draws(
    name: str,
) -> None:
    """Before torch 2.6 the *_like factories take no generator=; the plain factories that
    stand in for them there draw what this torch's *_like(..., generator=g) draws."""
    from seeded_init import _execute

    if getattr(torch, name) in _execute._OLD_LIKE:  # pyright: ignore[reportPrivateUsage]
        pytest.skip(f"this torch's {name} takes no generator= to compare with")
    x = torch.empty(3, 5, dtype=torch.float64).t()
    bounds = (7,) if name == "randint_like" else ()
    replacement = getattr(_execute, f"_{name}")
    got = replacement(torch.Generator().manual_seed(4), x, *bounds)
    want = getattr(torch, name)(x, *bounds, generator=torch.Generator().manual_seed(4))
    assert got.dtype == want.dtype and got.shape == want.shape
    assert torch.equal(got.contiguous(), want.contiguous())
