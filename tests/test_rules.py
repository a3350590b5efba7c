"""Rules for models that are not SeededModules (issue 6): exact paths, globs, types, seeds,
conflicts and no-match, against PyTorch itself and torch.nn.init with a generator."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

from seeded_init import (
    DeclarationError,
    InitRules,
    Normal,
    PlanError,
    SeedCollisionError,
    SeededModule,
    SeedError,
    seeded_init,
)

from .helpers import assert_same, manual_seed, snapshot


def derived(root: int, path: str) -> int:
    """The README's formula for a derived seed, written out independently."""
    data = b"seeded-init/v1\0" + root.to_bytes(8, "big") + path.encode()
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")


def P(model: nn.Module, path: str) -> torch.Tensor:
    """The parameter at ``path`` (typed, unlike attribute access through containers)."""
    return model.get_parameter(path)


def L(model: nn.Module, path: str) -> nn.Module:
    return model.get_submodule(path)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- the third script of ../shared/seed/, as its author wrote it ----------------------------
class ComplexModel(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, num_conv_layers: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(input_size, hidden_size)
        self.conv_layers = nn.ModuleList(
            [nn.Conv2d(hidden_size, hidden_size, kernel_size=3) for _ in range(num_conv_layers)]
        )
        self.fc2 = nn.Linear(hidden_size, 10)


def initialize_model_custom(model: nn.Module, seed_dict: dict[str, int]) -> None:
    modules: list[tuple[str, nn.Module]] = list(model.named_modules())  # pyright: ignore[reportUnknownArgumentType]
    for name, module in modules:
        if isinstance(module, nn.Linear):
            if name in seed_dict:
                generator = torch.Generator()
                generator.manual_seed(seed_dict[name])
                with torch.no_grad():
                    nn.init.xavier_uniform_(module.weight, generator=generator)
                    nn.init.zeros_(P(module, "bias"))
        elif isinstance(module, nn.Conv2d) and name in seed_dict:
            generator = torch.Generator()
            generator.manual_seed(seed_dict[name])
            with torch.no_grad():
                nn.init.kaiming_normal_(module.weight, generator=generator)
                nn.init.zeros_(P(module, "bias"))


SEED_MAP = {"fc1": 77, "conv_layers.0": 123, "conv_layers.1": 456, "fc2": 789}


def test_the_seed_dictionary_of_the_third_script_works_as_it_is() -> None:
    want = ComplexModel(25, 32, 2)
    initialize_model_custom(want, SEED_MAP)
    got = ComplexModel(25, 32, 2)
    rules = InitRules({nn.Linear: "xavier_uniform", nn.Conv2d: "kaiming_normal"}, seeds=SEED_MAP)
    before = torch.get_rng_state()
    rules.reset_parameters(got)
    assert torch.equal(torch.get_rng_state(), before)
    assert_same(snapshot(got), snapshot(want))
    plan = rules.init_plan(got)
    assert plan["conv_layers.1.weight"].seed == 456
    assert plan["conv_layers.1.weight"].seed_source == "explicit"
    assert plan["fc1.weight"].declared_by == "rule Linear"
    assert plan["fc1.bias"].rule == "zeros"


# -- matching ------------------------------------------------------------------------------
class Attn(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)


class Block(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(d)
        self.attn = Attn(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))


class Tower(nn.Module):
    def __init__(self, d: int = 8, n: int = 3) -> None:
        super().__init__()
        self.emb = nn.Embedding(20, d)
        self.blocks = nn.ModuleList([Block(d) for _ in range(n)])
        self.head = nn.Linear(d, 20, bias=False)


def test_an_exact_path_rule_with_a_seed_is_nn_init_with_that_generator() -> None:
    model = Tower()
    InitRules(
        {"blocks.1.attn.qkv": seeded_init(scheme="normal", std=0.02, seed=5)}
    ).reset_parameters(model)
    g = gen(5)
    w = nn.init.normal_(torch.empty(24, 8), std=0.02, generator=g)
    assert torch.equal(P(model, "blocks.1.attn.qkv.weight"), w)
    assert torch.equal(P(model, "blocks.1.attn.qkv.bias"), torch.zeros(24))


def test_unruled_layers_get_pytorch_default_from_their_derived_seed() -> None:
    model = Tower()
    InitRules({"blocks.*.attn.qkv": Normal(std=0.02)}, seed=11).reset_parameters(model)
    manual_seed(derived(11, "blocks.2.mlp.0"))
    assert_same(snapshot(L(model, "blocks.2.mlp.0")), snapshot(nn.Linear(8, 32)))
    manual_seed(derived(11, "emb"))
    assert_same(snapshot(model.emb), snapshot(nn.Embedding(20, 8)))
    # the glob's layers draw from their own derived seeds
    for i in range(3):
        w = nn.init.normal_(
            torch.empty(24, 8), std=0.02, generator=gen(derived(11, f"blocks.{i}.attn.qkv"))
        )
        assert torch.equal(P(model, f"blocks.{i}.attn.qkv.weight"), w)


@pytest.mark.parametrize(
    ("glob", "matched"),
    [
        ("blocks.*.attn.qkv", ["blocks.0.attn.qkv", "blocks.1.attn.qkv", "blocks.2.attn.qkv"]),
        ("blocks.?.mlp.0", ["blocks.0.mlp.0", "blocks.1.mlp.0", "blocks.2.mlp.0"]),
        ("blocks.1.**.qkv", ["blocks.1.attn.qkv"]),
        ("**.proj", ["blocks.0.attn.proj", "blocks.1.attn.proj", "blocks.2.attn.proj"]),
        ("blocks.[0].ln", []),  # [ is no glob character: matches the literal name only
    ],
)
def test_globs_match_dotted_paths(glob: str, matched: list[str]) -> None:
    model = Tower()
    rules = InitRules({glob: "zeros"})
    if not matched:
        with pytest.raises(PlanError, match="matches no layer"):
            rules.init_plan(model)
        return
    plan = rules.init_plan(model)
    ruled = sorted({e.layer for e in plan if e.declared_by == f"rule {glob!r}"})
    assert ruled == matched


def test_a_glob_reaches_parameters_and_the_deepest_rule_wins() -> None:
    model = Tower()
    rules = InitRules(
        {nn.Linear: "xavier_uniform", "**.bias": seeded_init(scheme="constant", val=0.5)}
    )
    rules.reset_parameters(model)
    assert torch.equal(P(model, "blocks.0.attn.qkv.bias"), torch.full((24,), 0.5))
    # the weight alone draws from the layer's generator: first draw, as nn.init does it
    w = nn.init.xavier_uniform_(torch.empty(24, 8), generator=gen(derived(0, "blocks.0.attn.qkv")))
    assert torch.equal(P(model, "blocks.0.attn.qkv.weight"), w)
    assert rules.init_plan(model)["blocks.0.attn.qkv.bias"].declared_by == "rule '**.bias'"


def test_exact_beats_glob_beats_type_and_the_nearest_class_wins() -> None:
    class Special(nn.Linear):
        pass

    model = nn.Sequential(nn.Linear(4, 4), Special(4, 4), nn.Linear(4, 4), nn.Linear(4, 4))
    rules = InitRules({nn.Linear: "ones", Special: "zeros", "2": "eye", "[3]": "ones", "?": "ones"})
    with pytest.raises(PlanError, match=r"rule '\[3\]' matches no layer"):
        rules.init_plan(model)
    rules = InitRules(
        {
            nn.Linear: "ones",
            Special: "zeros",
            "2": "eye",
            "*": seeded_init(scheme="constant", val=3.0),
        }
    )
    plan = rules.init_plan(model)
    assert plan["0.weight"].rule == "constant(val=3)"
    assert plan["1.weight"].rule == "constant(val=3)"  # the glob beats the type
    assert plan["2.weight"].rule == "eye"
    rules = InitRules({nn.Linear: "ones", Special: "zeros"})
    rules.reset_parameters(model)
    assert torch.equal(P(model, "0.weight"), torch.ones(4, 4))
    assert torch.equal(P(model, "1.weight"), torch.zeros(4, 4))


def test_a_rule_on_a_container_draws_its_subtree_except_what_deeper_rules_claim() -> None:
    model = Tower()
    rules = InitRules({Block: "default", "blocks.0.attn.proj": seeded_init(scheme="zeros")})
    rules.reset_parameters(model)
    assert torch.equal(P(model, "blocks.0.attn.proj.weight"), torch.zeros(8, 8))
    # Block 1 is one generator in registration order: bitwise its constructor
    manual_seed(derived(0, "blocks.1"))
    assert_same(snapshot(L(model, "blocks.1")), snapshot(Block(8)))
    # Block 0 is its constructor without proj's draws
    g = gen(derived(0, "blocks.0"))
    manual_seed(0)
    ref = Block(8)
    with torch.no_grad():
        for name in ("attn.qkv", "mlp.0", "mlp.2"):
            weight, bias = P(ref, f"{name}.weight"), P(ref, f"{name}.bias")
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=g)
            bound = 1 / math.sqrt(weight.shape[1])
            nn.init.uniform_(bias, -bound, bound, generator=g)
    got = L(model, "blocks.0")
    assert torch.equal(P(got, "attn.qkv.weight"), P(ref, "attn.qkv.weight"))
    assert torch.equal(P(got, "mlp.2.bias"), P(ref, "mlp.2.bias"))


def test_none_leaves_a_layer_to_its_default_and_a_tie_to_its_other_side() -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(10, 4)
            self.head = nn.Linear(4, 10, bias=False)
            self.head.weight = self.emb.weight

    model = Tied()
    rules = InitRules({nn.Embedding: Normal(std=0.02), nn.Linear: "xavier_uniform"})
    before = snapshot(model)
    with pytest.raises(PlanError, match=r"tied tensor.*'head.weight': None"):
        rules.reset_parameters(model)
    assert_same(snapshot(model), before)
    InitRules(
        {nn.Embedding: Normal(std=0.02), nn.Linear: "xavier_uniform", "head": None}
    ).reset_parameters(model)
    w = nn.init.normal_(torch.empty(10, 4), std=0.02, generator=gen(derived(0, "emb")))
    assert torch.equal(P(model, "emb.weight"), w)
    assert P(model, "head.weight") is P(model, "emb.weight")


# -- seeds= -----------------------------------------------------------------------------------
def test_seeds_give_an_unruled_layer_its_default_from_that_seed() -> None:
    model = Tower()
    InitRules(seeds={"blocks.0.mlp.2": 9}).reset_parameters(model)
    manual_seed(9)
    assert_same(snapshot(L(model, "blocks.0.mlp.2")), snapshot(nn.Linear(32, 8)))


def test_bad_seeds_are_errors_naming_the_path_and_nothing_changes() -> None:
    model = Tower()
    before = snapshot(model)
    cases: list[tuple[InitRules, str]] = [
        (
            InitRules(seeds={"blocks.0.atn": 1}),
            r"seeds\['blocks.0.atn'\] names no layer.*'blocks.0.attn'",
        ),
        (InitRules(seeds={"head.weight": 1}), r"names a parameter.*\{'head': 1\}"),
        (InitRules({Block: "default"}, seeds={"blocks.0.ln": 1}), r"part of 'blocks.0'"),
        (
            InitRules({"head": seeded_init(scheme="normal", seed=3)}, seeds={"head": 4}),
            r"seeds\['head'\] = 4.*seed=3",
        ),
    ]
    for rules, message in cases:
        with pytest.raises(PlanError, match=message):
            rules.reset_parameters(model)
        assert_same(snapshot(model), before)


def test_a_glob_rule_with_one_seed_for_many_layers_is_a_seed_collision() -> None:
    model = Tower()
    before = snapshot(model)
    with pytest.raises(SeedCollisionError, match=r"blocks.0.attn.qkv.*blocks.1.attn.qkv"):
        InitRules({"blocks.*.attn.qkv": seeded_init(scheme="normal", seed=1)}).reset_parameters(
            model
        )
    assert_same(snapshot(model), before)


# -- conflicts and no-match ---------------------------------------------------------------
def test_two_globs_that_disagree_on_a_layer_conflict() -> None:
    model = Tower()
    before = snapshot(model)
    rules = InitRules({"blocks.*.attn.qkv": "zeros", "blocks.0.*.qkv": "ones"})
    with pytest.raises(
        PlanError,
        match=r"'blocks.0.attn.qkv' is claimed by two rules.*"
        r"'blocks\.\*\.attn\.qkv'.*'blocks\.0\.\*\.qkv'",
    ):
        rules.reset_parameters(model)
    assert_same(snapshot(model), before)
    # agreeing globs are no conflict
    InitRules({"blocks.*.attn.qkv": "zeros", "blocks.0.*.qkv": "zeros"}).reset_parameters(model)
    assert torch.equal(P(model, "blocks.0.attn.qkv.weight"), torch.zeros(24, 8))


def test_a_params_part_that_another_rule_claims_conflicts() -> None:
    model = Tower()
    before = snapshot(model)
    rules = InitRules(
        {Attn: seeded_init(scheme="normal", params={"qkv": "zeros"}), "blocks.1.attn.qkv": "ones"}
    )
    with pytest.raises(
        PlanError,
        match=r"'blocks.1.attn.qkv' is claimed by two rules: rule Attn.*rule 'blocks.1.attn.qkv'",
    ):
        rules.reset_parameters(model)
    assert_same(snapshot(model), before)


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (
            InitRules({"blocks.0.atn.qkv": "zeros"}),
            r"rule 'blocks.0.atn.qkv' matches no layer.*did you mean 'blocks.0.attn.qkv'",
        ),
        (
            InitRules({"decoder.*": "zeros"}),
            r"rule 'decoder\.\*' matches no layer or parameter of Tower",
        ),
        (InitRules({nn.Conv2d: "zeros"}), r"rule Conv2d matches no layer of Tower.*'Linear'"),
    ],
)
def test_a_rule_that_matches_nothing_is_an_error(rules: InitRules, message: str) -> None:
    model = Tower()
    before = snapshot(model)
    with pytest.raises(PlanError, match=message):
        rules.reset_parameters(model)
    with pytest.raises(PlanError, match=message):
        rules.init_plan(model)
    assert_same(snapshot(model), before)


def test_a_layer_without_reset_and_rule_is_an_error_that_suggests_a_rule() -> None:
    class Scale(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gamma = nn.Parameter(torch.ones(4))

    model = nn.Sequential(nn.Linear(4, 4), Scale())
    with pytest.raises(
        PlanError, match=r"1 \(.*Scale\) has parameters \['gamma'\].*give it a rule"
    ):
        InitRules().reset_parameters(model)
    InitRules({"1.gamma": seeded_init(scheme="normal", std=0.1, seed=2)}).reset_parameters(model)
    assert torch.equal(
        P(model, "1.gamma"), nn.init.normal_(torch.empty(4), std=0.1, generator=gen(2))
    )


# -- guarantees --------------------------------------------------------------------------------
class ThirdParty(nn.Module):
    """A layer seeded-init does not know: its own reset draws from the global RNG."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Linear(4, 4)
        self.w = nn.Parameter(torch.empty(4, 4))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.w)


def test_ruled_resets_repeat_bitwise_leave_the_global_rng_and_ignore_thread_count() -> None:
    model = nn.Sequential(Tower(), ThirdParty())
    rules = InitRules(
        {nn.Linear: seeded_init(scheme="kaiming_normal", nonlinearity="relu"), "0.emb": "normal"},
        seed=4,
    )
    manual_seed(123)
    before = torch.get_rng_state()
    rules.reset_parameters(model, threads=1)
    first = snapshot(model)
    assert torch.equal(torch.get_rng_state(), before)
    rules.reset_parameters(model, threads=2)
    assert_same(snapshot(model), first)
    rules.reset_parameters(model, seed=5)
    assert not torch.equal(P(model, "0.emb.weight"), first["0.emb.weight"])
    rules.reset_parameters(model)
    assert_same(snapshot(model), first)
    # the third-party layer: children first, then its own reset, from its path's generator
    assert rules.init_plan(model)["1.w"].fallback


def test_an_error_in_a_scheme_function_changes_nothing() -> None:
    def broken(t: torch.Tensor, g: torch.Generator) -> None:
        raise RuntimeError("boom")

    model = Tower()
    before = snapshot(model)
    with pytest.raises(PlanError, match="boom"):
        InitRules({"head": broken, nn.LayerNorm: "default"}).reset_parameters(model)
    assert_same(snapshot(model), before)


def test_number_keywords_given_as_functions_get_the_model() -> None:
    model = Tower(n=2)
    seen: list[nn.Module] = []

    def std(m: nn.Module) -> float:
        seen.append(m)
        return 0.5 / len(model.blocks)

    InitRules({"head": seeded_init(scheme="normal", std=std, seed=1)}).reset_parameters(model)
    assert seen and all(m is model for m in seen)
    w = nn.init.normal_(torch.empty(20, 8), std=0.25, generator=gen(1))
    assert torch.equal(P(model, "head.weight"), w)


def test_the_plan_of_a_meta_model_allocates_nothing_and_to_empty_gives_the_eager_values() -> None:
    rules = InitRules({"blocks.*.attn.qkv": Normal(std=0.02), nn.LayerNorm: "default"}, seed=2)
    eager = Tower()
    rules.reset_parameters(eager)
    with torch.device("meta"):
        lazy = Tower()
    plan = rules.init_plan(lazy)
    assert all(e.device == "meta" for e in plan)
    assert plan == rules.init_plan(eager).__class__(plan.root_seed, tuple(plan.entries))
    assert [(e.path, e.seed, e.rule) for e in plan] == [
        (e.path, e.seed, e.rule) for e in rules.init_plan(eager)
    ]
    with pytest.raises(PlanError, match="meta device"):
        rules.reset_parameters(lazy)
    lazy.to_empty(device="cpu")
    rules.reset_parameters(lazy)
    assert_same(snapshot(lazy), snapshot(eager))


def test_a_seeded_module_inside_keeps_its_declarations() -> None:
    class Inner(SeededModule):
        @seeded_init(scheme="ones")
        def fc(self) -> nn.Linear:
            return nn.Linear(4, 4)

    model = nn.Sequential(nn.Linear(4, 4), Inner())
    InitRules({nn.Linear: "zeros"}).reset_parameters(model)
    assert torch.equal(P(model, "0.weight"), torch.zeros(4, 4))
    assert torch.equal(P(model, "1.fc.weight"), torch.ones(4, 4))
    with pytest.raises(PlanError, match="only layers of SeededModules"):
        InitRules({"1.fc": "zeros"}).reset_parameters(model)
    with pytest.raises(PlanError, match=r"is a SeededModule.*model.reset_parameters"):
        InitRules().reset_parameters(L(model, "1"))


# -- bad arguments -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: InitRules({1: "zeros"}), DeclarationError, r"rule key 1 \(int\)"),  # type: ignore[dict-item]  # pyright: ignore[reportArgumentType]
        (lambda: InitRules({"": "zeros"}), DeclarationError, "not a dotted path"),
        (lambda: InitRules({"a..b": "zeros"}), DeclarationError, "not a dotted path"),
        (lambda: InitRules({int: "zeros"}), DeclarationError, "not an nn.Module subclass"),  # type: ignore[dict-item]  # pyright: ignore[reportArgumentType]
        (lambda: InitRules({"fc": "he_normal"}), DeclarationError, "he_normal"),  # type: ignore[dict-item]  # pyright: ignore[reportArgumentType]
        (lambda: InitRules({"fc": 3}), DeclarationError, "fc"),  # type: ignore[dict-item]  # pyright: ignore[reportArgumentType]
        (
            lambda: InitRules({"fc": seeded_init(scheme="normal", mode="fan_in")}),
            DeclarationError,
            "mode",
        ),
        (lambda: InitRules(seeds={"fc": -1}), SeedError, r"seeds\['fc'\]"),
        (lambda: InitRules(seeds={"fc": "1"}), SeedError, r"seeds\['fc'\]"),  # type: ignore[dict-item]  # pyright: ignore[reportArgumentType]
        (lambda: InitRules(seeds={"blocks.*": 1}), DeclarationError, "exact layer paths"),
        (lambda: InitRules(seed=2**64), SeedError, "seed"),
        (lambda: InitRules(draw_on="gpu"), PlanError, "draw_on"),  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        (lambda: InitRules([("fc", "zeros")]), DeclarationError, "mapping"),  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    ],
)
def test_bad_rules_are_refused_when_made(
    make: Callable[[], InitRules], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        make()


def test_rules_are_frozen_and_bad_calls_change_nothing() -> None:
    rules = InitRules({nn.Linear: "zeros"})
    with pytest.raises(AttributeError, match="frozen"):
        rules.root_seed = 3
    model = Tower()
    before = snapshot(model)
    with pytest.raises(SeedError):
        rules.reset_parameters(model, seed=-1)
    with pytest.raises(PlanError, match="draw_on"):
        rules.reset_parameters(model, draw_on="gpu")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    with pytest.raises(PlanError, match=r"takes an nn\.Module"):
        rules.reset_parameters("model")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    assert_same(snapshot(model), before)
    assert repr(rules) == "InitRules({Linear: zeros}, seed=0)"


def test_ties_seen_by_rules_before_to_empty_are_tied_again_by_the_reset() -> None:
    class TiedLM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(10, 4)
            self.head = nn.Linear(4, 10, bias=False)
            self.head.weight = self.emb.weight

    rules = InitRules({nn.Embedding: Normal(std=0.02)})
    eager = TiedLM()
    rules.reset_parameters(eager)
    with torch.device("meta"):
        lazy = TiedLM()
    assert rules.init_plan(lazy)["head.weight"].tied_to == "emb.weight"
    lazy.to_empty(device="cpu")  # unties them
    assert P(lazy, "head.weight") is not P(lazy, "emb.weight")
    assert rules.init_plan(lazy)["head.weight"].tied_to == "emb.weight"  # as the reset will
    assert P(lazy, "head.weight") is not P(lazy, "emb.weight")  # planning writes nothing
    rules.reset_parameters(lazy)
    assert P(lazy, "head.weight") is P(lazy, "emb.weight")
    assert_same(snapshot(lazy), snapshot(eager))
    # a tie the user undoes stays undone
    lazy.head.weight = nn.Parameter(torch.zeros(10, 4))
    rules.reset_parameters(lazy)
    assert P(lazy, "head.weight") is not P(lazy, "emb.weight")


# -- found by the breaker ------------------------------------------------------------------
def test_a_layer_under_two_names_may_not_get_two_rules() -> None:
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    before = snapshot(model)
    for rules in (
        InitRules({"0": "zeros", "2": "ones"}),
        InitRules({"0": None, "2": "ones"}),
        InitRules({"0.weight": "ones", "2.weight": "zeros"}),
    ):
        with pytest.raises(
            PlanError,
            match=r"'0(.weight)?' and '2(.weight)?' are one (layer|tensor) held under two names",
        ):
            rules.reset_parameters(model)
        assert_same(snapshot(model), before)
    InitRules({"*": "zeros"}).reset_parameters(model)  # one rule for both names is fine
    assert torch.equal(P(model, "0.weight"), torch.zeros(4, 4))
    with pytest.raises(PlanError, match=r"seeds\['2'\] = 2.*as '0', the same layer"):
        InitRules(seeds={"0": 1, "2": 2}).reset_parameters(model)


def test_a_parameter_rule_keeps_an_embedding_padding_row_zero() -> None:
    model = nn.Sequential(nn.Embedding(10, 4, padding_idx=5))
    for key in ("0.weight", "**.weight", "0"):
        InitRules({key: Normal(std=0.02)}).reset_parameters(model)
        row = P(model, "0.weight")[5]
        assert torch.equal(row, torch.zeros(4)), key
    w = nn.init.normal_(torch.empty(10, 4), std=0.02, generator=gen(derived(0, "0.weight")))
    InitRules({"0.weight": Normal(std=0.02)}).reset_parameters(model)
    w[5] = 0
    assert torch.equal(P(model, "0.weight"), w)


def test_lazy_parameters_are_refused_until_their_first_forward() -> None:
    model = nn.Sequential(nn.LazyLinear(4), nn.Linear(4, 4))
    before = snapshot(model[1])
    rng = torch.get_rng_state()
    for rules in (InitRules({"0": "normal"}), InitRules({"0.weight": "normal"}), InitRules()):
        with pytest.raises(
            PlanError, match=r"'0.weight' \(LazyLinear\) is a lazy parameter.*forward"
        ):
            rules.reset_parameters(model)
        with pytest.raises(PlanError, match="lazy parameter"):
            rules.init_plan(model)
    assert torch.equal(torch.get_rng_state(), rng)
    assert_same(snapshot(model[1]), before)
    model(torch.zeros(2, 3))
    InitRules({"0": seeded_init(scheme="normal", seed=4)}).reset_parameters(model)
    w = nn.init.normal_(torch.empty(4, 3), generator=gen(4))
    assert torch.equal(P(model, "0.weight"), w)


def test_a_seed_for_a_layer_without_parameters_is_an_error() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    with pytest.raises(
        PlanError, match=r"seeds\['1'\] names '1' \(ReLU\), which holds no parameters"
    ):
        InitRules(seeds={"1": 4}).reset_parameters(model)


def test_a_constant_an_integer_parameter_cannot_hold_is_refused() -> None:
    class Counter(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.n = nn.Parameter(torch.zeros(3, dtype=torch.int64), requires_grad=False)

    model = Counter()
    for val in (1e30, 2.5):
        with pytest.raises(PlanError, match=r"int64 cannot hold.*Give it a whole number"):
            InitRules({"n": seeded_init(scheme="constant", val=val)}).reset_parameters(model)
        assert torch.equal(P(model, "n"), torch.zeros(3, dtype=torch.int64))
    InitRules({"n": seeded_init(scheme="constant", val=7)}).reset_parameters(model)
    assert torch.equal(P(model, "n"), torch.full((3,), 7))
