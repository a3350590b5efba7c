"""The Hugging Face GPT-2 of ``test_third_party.py`` and its rules; run as
``python -m tests.hf_worker`` (from the repository root, offline) it builds that model, resets
it with those rules and prints ``str(fingerprint(model))``, for the test to compare with its
own process's.
"""

from __future__ import annotations

import math

from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.pytorch_utils import Conv1D

from seeded_init import InitRules, Normal, RuleTarget, RuleValue, fingerprint, seeded_init

N_LAYER = 2
N_EMBD = 32
VOCAB = 100
POSITIONS = 16
#: the one layer given an explicit seed (every other seed is derived from root and path)
WPE_SEED = 1234


def gpt2_config() -> GPT2Config:
    """A tiny GPT-2, token ids inside the vocabulary (so transformers warns about nothing)."""
    return GPT2Config(
        n_layer=N_LAYER,
        n_embd=N_EMBD,
        n_head=4,
        vocab_size=VOCAB,
        n_positions=POSITIONS,
        bos_token_id=0,
        eos_token_id=0,
    )


def gpt2() -> GPT2LMHeadModel:
    """The model, built from its config: nothing is downloaded."""
    return GPT2LMHeadModel(gpt2_config())


def rule_table() -> dict[RuleTarget, RuleValue]:
    """GPT-2's own init, written as rules: N(0, 0.02) for Conv1D and the embeddings, the
    residual projections scaled by 1/sqrt(2 * n_layer), the head left to its tie."""
    return {
        Conv1D: Normal(std=0.02),
        nn.Embedding: Normal(std=0.02),
        "lm_head": None,
        "transformer.h.*.attn.c_proj": seeded_init(
            scheme="normal", std=0.02 / math.sqrt(2 * N_LAYER)
        ),
    }


def gpt2_rules(table: dict[RuleTarget, RuleValue] | None = None, seed: int = 0) -> InitRules:
    """The rules (``table``, else :func:`rule_table`), with wpe's explicit seed."""
    return InitRules(
        rule_table() if table is None else table, seeds={"transformer.wpe": WPE_SEED}, seed=seed
    )


def main() -> None:
    model = gpt2()
    gpt2_rules().reset_parameters(model)
    print(str(fingerprint(model)))


if __name__ == "__main__":
    main()
