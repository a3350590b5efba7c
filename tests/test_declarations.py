"""Declaring layers: both forms, inheritance, mixins, construction, and every bad declaration."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
import torch
from torch import nn

from seeded_init import (
    ConstructionError,
    Declaration,
    DeclarationError,
    DeclaredLayer,
    InitSpec,
    PlanError,
    SeededModule,
    declarations,
    derive_seed,
    seeded_init,
)
from tests.helpers import assert_same, nn_init, reference, snapshot
from tests.models_future import FutureNet, make_local_class


class Net(SeededModule):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.d = d

    @seeded_init(scheme="kaiming_normal", seed=1, nonlinearity="relu")
    def fc1(self) -> nn.Linear:
        return nn.Linear(self.d, 2 * self.d)

    @seeded_init(scheme="default")
    def fc2(self) -> nn.Linear:
        return nn.Linear(2 * self.d, self.d)


class Old(SeededModule):
    fc: Annotated[nn.Linear, seeded_init(scheme="xavier_uniform", seed=3)]

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)


def test_decorated_factory_becomes_a_registered_child() -> None:
    """fc1 is a child named fc1, built after __init__, in declaration order."""
    net = Net(8)
    assert list(net.state_dict()) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert isinstance(net.fc1, nn.Linear) and net.fc1 is net.get_submodule("fc1")
    assert torch.equal(
        net.fc1.weight, nn_init(nn.init.kaiming_normal_, (16, 8), 1, nonlinearity="relu")
    )
    want = reference(derive_seed(0, "fc2"), lambda: nn.Linear(16, 8))
    assert_same(snapshot(net.fc2), snapshot(want))


def test_class_attribute_is_the_declaration() -> None:
    """Net.fc1 is the declaration: scheme, seed and keywords, for both forms."""
    decl = Net.fc1
    assert isinstance(decl, DeclaredLayer)
    assert (decl.name, decl.scheme, decl.seed) == ("fc1", "kaiming_normal", 1)
    assert decl.form == "decorator"
    assert decl.kwargs["nonlinearity"] == "relu" and decl.kwargs["mode"] == "fan_in"
    old = declarations(Old)["fc"]
    assert old.spec.scheme == "xavier_uniform" and old.form == "annotation"
    assert "kaiming_normal" in repr(decl)


def test_declarations_lists_frozen_records() -> None:
    """declarations() gives frozen records in declaration order, from a class or an instance."""
    records = declarations(Net)
    assert list(records) == ["fc1", "fc2"]
    assert records == declarations(Net(2))
    rec = records["fc1"]
    assert rec == Declaration(
        "fc1", "Net", seeded_init(scheme="kaiming_normal", seed=1, nonlinearity="relu"), "decorator"
    )
    with pytest.raises(AttributeError):
        rec.name = "x"  # type: ignore[misc]  # pyright: ignore[reportAttributeAccessIssue]
    with pytest.raises(TypeError):
        declarations(nn.Linear)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def test_both_forms_make_the_same_spec() -> None:
    """The decorator and the Annotated form carry equal InitSpec objects."""
    spec = seeded_init(scheme="xavier_uniform", seed=3)
    assert declarations(Old)["fc"].spec == spec
    assert isinstance(spec, InitSpec)


def test_annotation_form_works_with_postponed_annotations() -> None:
    """Both forms work in a module with `from __future__ import annotations`."""
    m = FutureNet()
    assert torch.equal(m.fc.weight, nn_init(nn.init.xavier_uniform_, (4, 4), 3))
    assert torch.equal(
        m.fc1.weight, nn_init(nn.init.kaiming_normal_, (8, 4), 1, nonlinearity="relu")
    )


def test_annotation_form_in_a_function_with_a_local_scheme() -> None:
    """A class defined in a function may name function-local objects in its declaration."""
    m = make_local_class()()
    want = torch.empty(3, 3).uniform_(-0.5, 0.5, generator=torch.Generator().manual_seed(5))
    assert torch.equal(m.get_parameter("fc.weight"), want)


def test_decorator_form_in_a_function() -> None:
    """A class defined inside a function, decorated form."""
    width = 5

    class Local(SeededModule):
        @seeded_init(scheme="orthogonal", seed=2)
        def fc(self) -> nn.Linear:
            return nn.Linear(width, width)

    w = Local().fc.weight.detach()
    assert torch.allclose(w @ w.T, torch.eye(5), atol=1e-5)


class Base(SeededModule):
    def __init__(self) -> None:
        super().__init__()

    @seeded_init(scheme="normal", seed=1)
    def a(self) -> nn.Linear:
        return nn.Linear(2, 2)

    @seeded_init(scheme="normal", seed=2)
    def b(self) -> nn.Linear:
        return nn.Linear(2, 2)


class Child(Base):
    @seeded_init(scheme="uniform", seed=3)
    def a(self) -> nn.Linear:
        return nn.Linear(2, 2)

    @seeded_init(scheme="ones")
    def c(self) -> nn.Linear:
        return nn.Linear(2, 2)


def test_subclass_inherits_and_redeclares_in_place() -> None:
    """A subclass keeps the base's declarations and order, and may redeclare one by name."""
    assert list(declarations(Child)) == ["a", "b", "c"]
    m = Child()
    assert torch.equal(m.a.weight, nn_init(nn.init.uniform_, (2, 2), 3))
    assert torch.equal(m.b.weight, nn_init(nn.init.normal_, (2, 2), 2))
    assert list(declarations(Base)) == ["a", "b"] and Base.a.scheme == "normal"


class SeqMixin(SeededModule, nn.Sequential):
    @seeded_init(scheme="zeros")
    def extra(self) -> nn.Linear:
        return nn.Linear(2, 2)


# torch declares Sequential._modules narrower than Module._modules (no None): pyright objects
class SeqMixinLast(nn.Sequential, SeededModule):  # pyright: ignore[reportIncompatibleVariableOverride]
    pass


def test_mixin_beside_other_module_bases() -> None:
    """SeededModule mixes with nn.Sequential in either order; children get path seeds."""
    for cls in (SeqMixin, SeqMixinLast):
        m = cls(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2))
        want = reference(derive_seed(0, "0"), lambda: nn.Linear(2, 3))
        assert_same(snapshot(m.get_submodule("0")), snapshot(want))
    assert not SeqMixin(nn.Linear(2, 2)).extra.weight.any()


class LinearMixin(SeededModule, nn.Linear):
    pass


def test_mixin_with_a_layer_type_initializes_its_own_parameters() -> None:
    """A SeededModule that is also an nn.Linear draws its own weight by Linear's algorithm."""
    m = LinearMixin(4, 3)
    want = reference(derive_seed(0, ""), lambda: nn.Linear(4, 3))
    assert_same(snapshot(m), snapshot(want))


def test_layer_base_listed_first_is_refused() -> None:
    """class M(nn.Linear, SeededModule): reset_parameters would bypass the declarations."""
    with pytest.raises(DeclarationError, match=r"SeededModule, Linear"):

        class M(nn.Linear, SeededModule):  # type: ignore[misc]  # pyright: ignore[reportUnusedClass, reportIncompatibleMethodOverride]
            pass


def test_overriding_reset_parameters_is_refused() -> None:
    """A subclass may not override reset_parameters."""
    with pytest.raises(DeclarationError, match="overrides reset_parameters"):

        class M(SeededModule):  # pyright: ignore[reportUnusedClass]
            def reset_parameters(self, seed: int | None = None, **kwargs: object) -> None:
                pass


def test_construction_under_meta_allocates_nothing(global_rng_guard: None) -> None:
    """Under torch.device("meta"): no storage, no error."""
    with torch.device("meta"):
        m = Net(4096)
    assert all(p.is_meta for p in m.parameters())


class Tied(SeededModule):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.wte.weight  # first access builds wte, inside __init__

    @seeded_init(scheme="normal", std=0.02, seed=1)
    def wte(self) -> nn.Embedding:
        return nn.Embedding(10, 4)


def test_first_access_in_init_builds_the_layer_early() -> None:
    """Weight tying by accessing a declared layer in __init__; it is built once."""
    m = Tied()
    assert m.head.weight is m.wte.weight
    assert list(dict(m.named_children())) == ["head", "wte"]
    assert torch.equal(m.wte.weight, nn_init(nn.init.normal_, (10, 4), 1, 0.0, 0.02))


def test_parameter_factory_registers_a_parameter() -> None:
    """A factory returning nn.Parameter registers it under the method's name."""

    class P(SeededModule):
        @seeded_init(scheme="normal", std=0.01)
        def pos(self) -> nn.Parameter:
            return nn.Parameter(torch.empty(3, 4))

    m = P()
    assert isinstance(m.pos, nn.Parameter) and "pos" in dict(m.named_parameters())


def test_assigning_none_to_a_declared_name_is_allowed() -> None:
    """An optional annotated layer may be None."""

    class Opt(SeededModule):
        proj: Annotated[nn.Linear | None, seeded_init(scheme="normal")]

        def __init__(self) -> None:
            super().__init__()
            self.proj = None

    assert Opt().proj is None


# --- bad declarations: an error at class definition, naming Class.attr --------------------------


def _noop(tensor: torch.Tensor, generator: torch.Generator) -> None:
    pass


BAD_SPECS: dict[str, tuple[dict[str, Any], str]] = {
    "unknown scheme": ({"scheme": "he_normal"}, "unknown scheme 'he_normal'"),
    "keyword not taken": ({"scheme": "trunc_normal", "mode": "fan_in"}, "not mode="),
    "nonlinearity outside Literal": (
        {"scheme": "kaiming_normal", "nonlinearity": "gelu"},
        "nonlinearity='gelu'",
    ),
    "mode outside Literal": ({"scheme": "kaiming_uniform", "mode": "fan_avg"}, "mode='fan_avg'"),
    "missing sparsity": ({"scheme": "sparse"}, "needs sparsity="),
    "missing val": ({"scheme": "constant"}, "needs val="),
    "negative std": ({"scheme": "normal", "std": -1.0}, "std=-1.0"),
    "empty uniform": ({"scheme": "uniform", "a": 2.0, "b": 1.0}, "a <= b"),
    "string std": ({"scheme": "normal", "std": "0.1"}, "must be a number"),
    "bool gain": ({"scheme": "orthogonal", "gain": True}, "must be a number"),
    "dirac groups": ({"scheme": "dirac", "groups": 0}, "positive int"),
    "function with keywords": ({"scheme": _noop, "std": 1.0}, "takes no keywords"),
    "not a scheme": ({"scheme": 3}, "neither a scheme name"),
    "bad bias": ({"scheme": "normal", "bias": "biased"}, "bias=: .*unknown scheme"),
    "bad part": ({"scheme": "normal", "params": {"w": "nope"}}, r"params\['w'\]"),
    "part with bias": (
        {"scheme": "normal", "params": {"w": seeded_init(scheme="normal", bias="zeros")}},
        "not bias=",
    ),
    "share_seed not bool": ({"scheme": "normal", "share_seed": 1}, "True or False"),
}


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_bad_decorator_declaration_fails_at_class_definition(case: str) -> None:
    """Each bad declaration raises DeclarationError naming Class.attr when the class is made."""
    kwargs, message = BAD_SPECS[case]
    spec = seeded_init(**kwargs)
    with pytest.raises(DeclarationError, match=message) as info:

        class Bad(SeededModule):  # pyright: ignore[reportUnusedClass]
            @spec
            def fc(self) -> nn.Linear:
                return nn.Linear(2, 2)

    assert "Bad.fc" in str(info.value)


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_bad_annotated_declaration_fails_at_class_definition(case: str) -> None:
    """The Annotated form gives the same errors at class definition."""
    kwargs, message = BAD_SPECS[case]
    spec = seeded_init(**kwargs)
    with pytest.raises(DeclarationError, match=message) as info:

        class Bad(SeededModule):  # pyright: ignore[reportUnusedClass]
            fc: Annotated[nn.Linear, spec]

    assert "Bad.fc" in str(info.value)


@pytest.mark.parametrize(
    "name",
    [
        "forward",
        "training",
        "parameters",
        "state_dict",
        "reset_parameters",
        "root_seed",
        "_parameters",
    ],
)
def test_name_clashing_with_module_attributes_is_refused(name: str) -> None:
    """A declared name that is an nn.Module/SeededModule attribute: DeclarationError."""

    def factory(self: SeededModule) -> nn.Linear:
        return nn.Linear(2, 2)

    factory.__name__ = name
    with pytest.raises(DeclarationError, match=f"'{name}' is already an attribute"):
        type("Clash", (SeededModule,), {name: seeded_init(scheme="normal")(factory)})


def test_factory_with_arguments_is_refused() -> None:
    """A factory must take only self."""
    with pytest.raises(DeclarationError, match="takes only self"):

        class Bad(SeededModule):  # pyright: ignore[reportUnusedClass]
            @seeded_init(scheme="normal")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
            def fc(self, width: int) -> nn.Linear:
                return nn.Linear(width, width)


def test_plain_attribute_replacing_a_declaration_is_refused() -> None:
    """A subclass replacing a declared layer with a plain method must redeclare it."""
    with pytest.raises(DeclarationError, match="redeclare it"):

        class Bad(Base):  # pyright: ignore[reportUnusedClass]
            def a(self) -> nn.Linear:  # type: ignore[override]  # pyright: ignore[reportIncompatibleVariableOverride]
                return nn.Linear(2, 2)


def test_two_markers_are_refused() -> None:
    """One Annotated attribute with two seeded_init markers."""
    with pytest.raises(DeclarationError, match="keep one"):

        class Bad(SeededModule):  # pyright: ignore[reportUnusedClass]
            fc: Annotated[nn.Linear, seeded_init(scheme="normal"), seeded_init(scheme="ones")]


# --- bad construction: ConstructionError naming Class.attr, global RNG as it was -----------------


def _build_fails(cls: type[SeededModule], match: str) -> None:
    state = torch.get_rng_state()
    with pytest.raises(ConstructionError, match=match):
        cls()
    assert torch.equal(state, torch.get_rng_state())
    # and the next construction works normally
    Old()


def test_factory_returning_an_int() -> None:
    """A factory returning an int: ConstructionError naming the layer and the fix."""

    class Bad(SeededModule):
        @seeded_init(scheme="normal")
        def fc(self) -> Any:
            return 3

    _build_fails(Bad, r"Bad\.fc: the factory returned int.*nn\.Module or an nn\.Parameter")


def test_factory_returning_a_plain_tensor() -> None:
    """A plain Tensor: the message says to wrap it as nn.Parameter."""

    class Bad(SeededModule):
        @seeded_init(scheme="normal")
        def fc(self) -> Any:
            return torch.zeros(3)

    _build_fails(Bad, r"wrap it as nn\.Parameter")


def test_factory_returning_another_layer_type() -> None:
    """A factory annotated -> nn.Linear that returns nn.Conv2d."""

    class Bad(SeededModule):
        @seeded_init(scheme="normal")
        def fc(self) -> nn.Linear:
            return nn.Conv2d(2, 2, 1)  # type: ignore[return-value]  # pyright: ignore[reportReturnType]

    _build_fails(Bad, r"Bad\.fc is declared as Linear but holds a Conv2d")


def test_annotated_layer_of_another_type() -> None:
    """Assigning nn.Conv2d to an attribute declared nn.Linear."""

    class Bad(SeededModule):
        fc: Annotated[nn.Linear, seeded_init(scheme="normal")]

        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Conv2d(2, 2, 1)  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]

    _build_fails(Bad, r"Bad\.fc is declared as Linear but holds a Conv2d")


def test_annotated_layer_never_assigned() -> None:
    """A declared attribute that __init__ never assigns."""

    class Bad(SeededModule):
        fc: Annotated[nn.Linear, seeded_init(scheme="normal")]

    _build_fails(Bad, r"Bad\.fc is declared \(Annotated\) but __init__ never assigned it")


def test_assigning_a_non_layer_to_a_declared_name() -> None:
    """self.fc = 3 for a declared fc."""

    class Bad(SeededModule):
        fc: Annotated[nn.Linear, seeded_init(scheme="normal")]

        def __init__(self) -> None:
            super().__init__()
            self.fc = 3  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]

    _build_fails(Bad, r"Bad\.fc is a declared layer")


def test_factory_cycle_is_reported() -> None:
    """Two factories that read each other."""

    class Bad(SeededModule):
        @seeded_init(scheme="normal")
        def a(self) -> nn.Linear:
            return nn.Linear(self.b.in_features, 2)

        @seeded_init(scheme="normal")
        def b(self) -> nn.Linear:
            return nn.Linear(self.a.in_features, 2)

    _build_fails(Bad, r"Bad\.(a|b): its factory reads self\.(a|b).*read each other")


def test_unknown_part_name_is_a_plan_error_listing_the_names() -> None:
    """params= naming nothing: PlanError with the known names, at construction."""

    class Bad(SeededModule):
        @seeded_init(scheme="xavier_uniform", params={"weight_hh": "orthogonal"})
        def rnn(self) -> nn.GRU:
            return nn.GRU(2, 3)

    state = torch.get_rng_state()
    with pytest.raises(PlanError, match=r"'weight_hh'.*weight_hh_l0"):
        Bad()
    assert torch.equal(state, torch.get_rng_state())


def test_nested_seeded_module_declared_with_a_scheme_is_refused() -> None:
    """A declared SeededModule child takes its schemes from its own class."""

    class Bad(SeededModule):
        @seeded_init(scheme="normal")
        def inner(self) -> Old:
            return Old()

    with pytest.raises(PlanError, match="own declarations"):
        Bad()


def test_bare_parameter_under_default_is_refused() -> None:
    """A Parameter has no PyTorch default: say to pick a scheme."""

    class Bad(SeededModule):
        @seeded_init()
        def scale(self) -> nn.Parameter:
            return nn.Parameter(torch.ones(3))

    with pytest.raises(PlanError, match="no PyTorch default"):
        Bad()


def test_bad_annotated_marker_is_not_confused_with_a_good_one() -> None:
    """typing caches Annotated[...] by its metadata: a bad marker must not compare equal to a
    good one, in either order."""

    class Good(SeededModule):
        head: Annotated[nn.Linear, seeded_init()]

        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(2, 2)

    with pytest.raises(DeclarationError, match=r"Bad\.head: seed= got -3"):

        class Bad(SeededModule):  # pyright: ignore[reportUnusedClass]
            head: Annotated[nn.Linear, seeded_init(scheme="normal", seed=-3)]

    class GoodAgain(SeededModule):
        head: Annotated[nn.Linear, seeded_init(scheme="normal")]

        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(2, 2)

    assert Good().head.weight.shape == GoodAgain().head.weight.shape


def test_scheme_types_equal_the_keyword_form() -> None:
    """KaimingNormal(...) and scheme="kaiming_normal" with keywords make equal specs, also as a
    bias or part rule; a scheme type does not take keywords beside it."""
    from seeded_init import Constant, KaimingNormal, Orthogonal, Sparse, TruncNormal

    assert seeded_init(scheme=KaimingNormal(nonlinearity="relu"), seed=1) == seeded_init(
        scheme="kaiming_normal", nonlinearity="relu", seed=1
    )
    assert seeded_init(scheme=TruncNormal(std=0.02)) == seeded_init(scheme="trunc_normal", std=0.02)
    assert seeded_init(scheme=Sparse(sparsity=0.5)).kwargs["sparsity"] == 0.5
    spec = seeded_init(bias=Constant(val=0.1), params={"w": Orthogonal(gain=2.0)})
    assert spec.bias == seeded_init(scheme="constant", val=0.1)
    assert spec.params["w"] == seeded_init(scheme="orthogonal", gain=2.0)
    with pytest.raises(DeclarationError, match="carries its keywords"):

        class Bad(SeededModule):  # pyright: ignore[reportUnusedClass]
            @seeded_init(scheme=KaimingNormal(), nonlinearity="relu")
            def fc(self) -> nn.Linear:
                return nn.Linear(2, 2)


@pytest.mark.parametrize("future", [False, True])
def test_annotated_form_in_code_run_by_exec(future: bool) -> None:
    """A module that is not in sys.modules (exec, a notebook cell) declares as any other."""
    code = (
        ("from __future__ import annotations\n" if future else "")
        + "from typing import Annotated\n"
        + "from torch import nn\n"
        + "from seeded_init import SeededModule, seeded_init\n"
        + "class Net(SeededModule):\n"
        + "    fc: Annotated[nn.Linear, seeded_init(scheme='ones', seed=3)]\n"
        + "    def __init__(self) -> None:\n"
        + "        super().__init__()\n"
        + "        self.fc = nn.Linear(2, 2)\n"
        + "net = Net()\n"
    )
    scope: dict[str, object] = {"__name__": "not_a_module"}
    exec(compile(code, "<cell>", "exec", dont_inherit=True), scope)
    net = scope["net"]
    assert isinstance(net, SeededModule)
    assert torch.equal(net.get_parameter("fc.weight"), torch.ones(2, 2))
    assert "fc" in declarations(net)


@pytest.mark.parametrize("future", [False, True])
@pytest.mark.parametrize("wrapper", ["ClassVar", "list"])
def test_marker_nested_below_the_top_is_an_error(future: bool, wrapper: str) -> None:
    """ClassVar[Annotated[..., marker]] or list[...] would declare nothing: an error."""
    code = (
        ("from __future__ import annotations\n" if future else "")
        + "from typing import Annotated, ClassVar\n"
        + "from torch import nn\n"
        + "from seeded_init import SeededModule, seeded_init\n"
        + "class Net(SeededModule):\n"
        + f"    fc: {wrapper}[Annotated[nn.Linear, seeded_init(scheme='ones')]]\n"
    )
    with pytest.raises(DeclarationError, match=r"Net\.fc: a seeded_init\(\.\.\.\) marker inside"):
        exec(compile(code, "<cell>", "exec", dont_inherit=True), {"__name__": "cell"})
