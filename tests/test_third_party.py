"""InitRules on a real third-party model family: Hugging Face transformers' GPT-2 (the ``hf``
extra, which CI installs), built from a small config, offline. Every expected value is
computed here, independently: seeds by the README's formula, tensors by ``torch.nn.init``
with a generator, LayerNorms by PyTorch's own constructor, fingerprints by the README's digest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch
from torch import nn

# a guard for installs without the extra only: CI installs it, so these tests run there
pytest.importorskip("transformers")

from transformers import GPT2LMHeadModel
from transformers.pytorch_utils import Conv1D

from seeded_init import InitPlan, ParamInit, PlanError, RuleTarget, RuleValue
from seeded_init import fingerprint as seeded_fingerprint

from .helpers import assert_same, forked_rng, garbage, manual_seed, reference, snapshot
from .hf_worker import N_EMBD, N_LAYER, VOCAB, WPE_SEED, gpt2, gpt2_rules, rule_table

ROOT = Path(__file__).resolve().parent.parent
LAYER_NORMS = [
    *(f"transformer.h.{i}.{ln}" for i in range(N_LAYER) for ln in ("ln_1", "ln_2")),
    "transformer.ln_f",
]


# -- independent references ----------------------------------------------------------------
def derived(root: int, path: str) -> int:
    """The README's derived seed, written out."""
    data = b"seeded-init/v1\0" + root.to_bytes(8, "big") + path.encode()
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")


def expected_seed(layer: str, root: int = 0) -> tuple[int, str]:
    """The seed of ``layer`` under :func:`gpt2_rules`, and its source."""
    if layer == "transformer.wpe":
        return WPE_SEED, "explicit"
    return derived(root, layer), "derived"


def expected_rule(path: str) -> tuple[str, dict[str, float]]:
    """The scheme and ``torch.nn.init`` keywords the rules give the tensor at ``path``."""
    layer, _, name = path.rpartition(".")
    if name == "bias":
        return "zeros", {}
    if layer in LAYER_NORMS:
        return "ones", {}
    if re.fullmatch(r"transformer\.h\.\d+\.attn\.c_proj", layer):
        return "normal", {"mean": 0.0, "std": 0.02 / math.sqrt(2 * N_LAYER)}
    return "normal", {"mean": 0.0, "std": 0.02}


def expected_declared_by(layer: str) -> str | None:
    if layer in LAYER_NORMS:
        return None
    if layer in ("transformer.wte", "transformer.wpe"):
        return "rule Embedding"
    if re.fullmatch(r"transformer\.h\.\d+\.attn\.c_proj", layer):
        return "rule 'transformer.h.*.attn.c_proj'"
    return "rule Conv1D"


def draw(records: list[ParamInit], seed: int) -> dict[str, torch.Tensor]:
    """One unit's tensors, in order, from one ``torch.Generator().manual_seed(seed)``."""
    g = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for r in records:
        t = torch.empty(r.shape, dtype=r.dtype)
        scheme, kw = expected_rule(r.path)
        if scheme == "normal":
            nn.init.normal_(t, mean=kw["mean"], std=kw["std"], generator=g)
        elif scheme == "ones":
            nn.init.ones_(t)
        else:
            nn.init.zeros_(t)
        out[r.path] = t
    return out


def readme_digest(model: nn.Module) -> str:
    """The model digest as the README defines it (little-endian bytes, state_dict order)."""
    tag = b"seeded-init/fingerprint/v1\0"
    whole = hashlib.sha256(tag + b"model\0")
    for name, t in model.state_dict().items():
        data = t.detach().cpu().contiguous().numpy()
        data = data.astype(data.dtype.newbyteorder("<"), copy=False)
        h = hashlib.sha256(tag + f"{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(data.tobytes())
        key = name.encode()
        whole.update(len(key).to_bytes(8, "big") + key + h.hexdigest().encode())
    return whole.hexdigest()


def P(model: nn.Module, path: str) -> torch.Tensor:
    """The parameter at ``path`` (typed, unlike attribute chains through transformers)."""
    return model.get_parameter(path)


def without(*targets: RuleTarget) -> dict[RuleTarget, RuleValue]:
    """:func:`rule_table` without ``targets``."""
    return {k: v for k, v in rule_table().items() if k not in targets}


def inference(model: nn.Module) -> None:
    """``model.eval()``, typed (transformers' own override is not)."""
    model.eval()


def logits(model: GPT2LMHeadModel, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = model(input_ids=ids)
    got = out.logits
    assert isinstance(got, torch.Tensor)
    return got


@pytest.fixture(scope="module")
def ruled() -> GPT2LMHeadModel:
    """GPT-2 filled with garbage, then reset by the rules: every tensor was written by the
    reset (not left from transformers' own init). Tests only read it."""
    model = gpt2()
    garbage(model)
    gpt2_rules().reset_parameters(model)
    return model


# -- 1. the reset matches its plan, and the plan the rules ---------------------------------
def test_the_ruled_reset_is_nn_init_from_each_layers_seed_as_the_plan_says(
    ruled: GPT2LMHeadModel,
) -> None:
    plan = gpt2_rules().init_plan(ruled)
    assert [r.path for r in plan] == list(ruled.state_dict())
    assert plan.root_seed == 0
    units: dict[str, list[ParamInit]] = {}
    for r in plan:
        scheme, kw = expected_rule(r.path)
        seed, source = expected_seed(r.layer)
        assert (r.seed, r.seed_source) == (seed, source), r.path
        assert r.rule.partition("(")[0] == scheme, r.path
        assert dict(r.keywords) == kw, r.path
        assert r.declared_by == expected_declared_by(r.layer), r.path
        assert r.shape == tuple(ruled.state_dict()[r.path].shape), r.path
        assert (r.dtype, r.device, r.fallback) == (torch.float32, "cpu", False), r.path
        if len(r.shape) == 2:  # as torch.nn.init computes fans (Conv1D stores in x out)
            assert (r.fan_in, r.fan_out) == (r.shape[1], r.shape[0]), r.path
        if r.path == "lm_head.weight":
            assert (r.tied_to, r.layer) == ("transformer.wte.weight", "transformer.wte")
            continue
        assert r.tied_to is None
        assert r.layer == r.path.rpartition(".")[0]
        units.setdefault(r.layer, []).append(r)
    want: dict[str, torch.Tensor] = {}
    for layer, records in units.items():
        names = [r.path.rpartition(".")[2] for r in records]
        embedding = layer in ("transformer.wte", "transformer.wpe")
        assert names == (["weight"] if embedding else ["weight", "bias"]), layer  # draw order
        want.update(draw(records, expected_seed(layer)[0]))
    assert len(want) == len(plan) - 1
    for path, t in want.items():
        assert torch.equal(ruled.state_dict()[path], t), f"{path} is not its plan's draw"
    assert P(ruled, "lm_head.weight") is P(ruled, "transformer.wte.weight")


def test_a_second_rule_on_the_tied_head_is_an_error_naming_it_and_changes_nothing(
    ruled: GPT2LMHeadModel,
) -> None:
    # the head left unruled (no "lm_head": None) is the same plan: the tie follows wte's rule
    assert gpt2_rules(without("lm_head")).init_plan(ruled) == gpt2_rules().init_plan(ruled)
    model = gpt2()
    before = snapshot(model)
    tied_twice = (
        r"'transformer\.wte\.weight' and 'lm_head\.weight' are one tied tensor, declared twice"
    )
    seconds: list[dict[RuleTarget, RuleValue]] = [
        {"lm_head": "normal"},
        {nn.Linear: "xavier_uniform"},
    ]
    for second in seconds:
        rules = gpt2_rules({**without("lm_head"), **second})
        for call in (rules.init_plan, rules.reset_parameters):
            with pytest.raises(PlanError, match=tied_twice):
                call(model)
            assert_same(snapshot(model), before)
    assert P(model, "lm_head.weight") is P(model, "transformer.wte.weight")


# -- 2. reproducible, and the global RNG is left alone -------------------------------------
def test_ruled_resets_repeat_bitwise_ignore_threads_and_leave_the_global_rng(
    ruled: GPT2LMHeadModel,
) -> None:
    rules = gpt2_rules()
    with forked_rng():
        manual_seed(999)  # transformers' own init of this model draws other values
        model = gpt2()
        state = torch.get_rng_state()
        plan = rules.init_plan(model)
        assert torch.equal(torch.get_rng_state(), state)
        rules.reset_parameters(model, threads=1)
        assert torch.equal(torch.get_rng_state(), state)
        first = snapshot(model)
        assert_same(first, snapshot(ruled))
        torch.rand(1000)  # the global RNG moves between resets: nothing follows it
        state = torch.get_rng_state()
        rules.reset_parameters(model, threads=2)
        assert_same(snapshot(model), first)
        rules.reset_parameters(model)
        assert_same(snapshot(model), first)

        rules.reset_parameters(model, seed=5)
        other = snapshot(model)
        for r in plan:
            same = torch.equal(other[r.path], first[r.path])
            random = expected_rule(r.path)[0] == "normal"
            # derived seeds move with the root; wpe's explicit seed and constants do not
            assert same == (not random or r.seed_source == "explicit"), r.path
        wte = nn.init.normal_(
            torch.empty(VOCAB, N_EMBD),
            std=0.02,
            generator=torch.Generator().manual_seed(derived(5, "transformer.wte")),
        )
        assert torch.equal(other["transformer.wte.weight"], wte)
        assert rules.init_plan(model, seed=5)["transformer.wte.weight"].seed == derived(
            5, "transformer.wte"
        )
        rules.reset_parameters(model)
        assert_same(snapshot(model), first)
        assert torch.equal(torch.get_rng_state(), state)


# -- 3. the same fingerprint in another process --------------------------------------------
def test_the_fingerprint_is_the_readme_digest_and_the_same_in_a_second_process(
    ruled: GPT2LMHeadModel,
) -> None:
    fp = seeded_fingerprint(ruled)
    assert str(fp) == readme_digest(ruled)
    env: Mapping[str, str] = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONHASHSEED": "12345",
        "SEEDED_INIT_THREADS": "1",
    }
    done = subprocess.run(
        [sys.executable, "-W", "error", "-m", "tests.hf_worker"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.strip() == str(fp)


# -- 4. the plan on the meta device ----------------------------------------------------------
def test_the_meta_plan_allocates_nothing_and_to_empty_tie_reset_gives_the_eager_values(
    ruled: GPT2LMHeadModel,
) -> None:
    rules = gpt2_rules()
    with torch.device("meta"):
        lazy = gpt2()
    plan = rules.init_plan(lazy)
    assert all(t.is_meta for t in lazy.state_dict().values())
    assert all(p.is_meta for p in lazy.parameters())
    assert {r.device for r in plan} == {"meta"}
    eager = rules.init_plan(ruled)
    assert InitPlan(plan.root_seed, tuple(dataclasses.replace(r, device="cpu") for r in plan)) == (
        eager
    )
    with pytest.raises(PlanError, match="meta device"):
        rules.reset_parameters(lazy)

    assert callable(getattr(lazy, "tie_weights", None))  # transformers' own re-tie
    lazy.to_empty(device="cpu")
    assert P(lazy, "lm_head.weight") is not P(lazy, "transformer.wte.weight")  # torch unties
    lazy.tie_weights()
    assert P(lazy, "lm_head.weight") is P(lazy, "transformer.wte.weight")
    rules.reset_parameters(lazy)
    assert_same(snapshot(lazy), snapshot(ruled))
    assert P(lazy, "lm_head.weight") is P(lazy, "transformer.wte.weight")


# -- 5. unruled LayerNorms; Conv1D without a rule ------------------------------------------
def test_unruled_layer_norms_are_pytorchs_own_from_their_derived_seed(
    ruled: GPT2LMHeadModel,
) -> None:
    for path in LAYER_NORMS:
        want = reference(derived(0, path), lambda: nn.LayerNorm(N_EMBD))
        for name in ("weight", "bias"):
            assert torch.equal(P(ruled, f"{path}.{name}"), P(want, name)), path


def test_conv1d_without_a_rule_is_an_error_naming_it_and_suggesting_a_rule() -> None:
    model = gpt2()
    before = snapshot(model)
    state = torch.get_rng_state()
    rules = gpt2_rules(without(Conv1D))
    message = (
        r"transformer\.h\.0\.attn\.c_attn \(Conv1D\) has parameters \['weight', 'bias'\].*"
        r"give it a rule, e\.g\. InitRules\(\{Conv1D: "
    )
    for call in (rules.init_plan, rules.reset_parameters):
        with pytest.raises(PlanError, match=message):
            call(model)
        assert_same(snapshot(model), before)
    assert torch.equal(torch.get_rng_state(), state)


# -- 6. the ruled model runs -----------------------------------------------------------------
def test_a_forward_pass_of_the_ruled_model_gives_finite_logits() -> None:
    ids = torch.arange(16).remainder(VOCAB).view(2, 8)
    runs: list[torch.Tensor] = []
    for _ in range(2):
        model = gpt2()
        garbage(model)
        gpt2_rules().reset_parameters(model)
        inference(model)  # no dropout: the same weights give the same logits
        runs.append(logits(model, ids))
    got = runs[0]
    assert got.shape == (2, 8, VOCAB)
    assert bool(torch.isfinite(got).all())
    assert got.abs().max().item() > 0
    assert torch.equal(got, runs[1])
