"""Seeded init for models you cannot edit: rules by path, glob and type, provenance, a check.

Part 1 is the third script of the origin Q&A (a ``named_modules()`` loop with a seed
dictionary) as ``InitRules``, checked bitwise against the hand-written loop. Part 2 is a
Hugging Face GPT-2 (``pip install -e ".[hf]"``; built from a config, nothing is
downloaded): rules as GPT-2's own init describes it, the plan, a checkpoint carrying its
provenance (read back with ``torch.load(weights_only=True)``), re-init from it, and the
distribution check. The command line shows the same for any factory:

    python -m seeded_init plan examples/05_existing_models.py:gpt2 \\
        --rules examples/05_existing_models.py:gpt2_rules

Run: ``python examples/05_existing_models.py`` (``--small`` for a two-block GPT-2, ``--png
PATH`` to draw the histograms, which needs ``seeded-init[plot]``).
"""

from __future__ import annotations

import argparse
import io
import math

import torch
from torch import nn

from seeded_init import InitRules, Normal, Provenance, check_distributions, seeded_init

# -- Part 1: the third origin script ----------------------------------------------------------


class ComplexModel(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, num_conv_layers: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(input_size, hidden_size)
        self.conv_layers = nn.ModuleList(
            [nn.Conv2d(hidden_size, hidden_size, kernel_size=3) for _ in range(num_conv_layers)]
        )
        self.fc2 = nn.Linear(hidden_size, 10)


def initialize_model_custom(model: nn.Module, seed_dict: dict[str, int]) -> None:
    """The original loop: xavier for Linear, kaiming for Conv2d, zero biases."""
    for name, module in model.named_modules():  # pyright: ignore[reportUnknownVariableType]
        if name not in seed_dict or not isinstance(module, nn.Linear | nn.Conv2d):
            continue
        generator = torch.Generator()
        generator.manual_seed(seed_dict[name])
        with torch.no_grad():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight, generator=generator)
            else:
                nn.init.kaiming_normal_(module.weight, generator=generator)
            nn.init.zeros_(module.get_parameter("bias"))


SEED_MAP = {"fc1": 77, "conv_layers.0": 123, "conv_layers.1": 456, "fc2": 789}

#: The loop above as rules: the seed dictionary as it is.
SCRIPT_RULES = InitRules({nn.Linear: "xavier_uniform", nn.Conv2d: "kaiming_normal"}, seeds=SEED_MAP)


def script_model() -> ComplexModel:
    """The script's model, wider, for the command line (see README: the distribution check)."""
    return ComplexModel(64, 128, 2)


def part_1() -> bool:
    by_hand = ComplexModel(25, 32, 2)
    initialize_model_custom(by_hand, SEED_MAP)
    ruled = ComplexModel(25, 32, 2)
    SCRIPT_RULES.reset_parameters(ruled)
    same = all(
        torch.equal(a, b)
        for a, b in zip(by_hand.state_dict().values(), ruled.state_dict().values(), strict=True)
    )
    print(f"script 3 as rules: bitwise equal to the hand-written loop: {same}")
    return same


# -- Part 2: Hugging Face GPT-2 ---------------------------------------------------------------

N_LAYER = 12


def gpt2(n_layer: int | None = None) -> nn.Module:
    """GPT-2 small (or ``n_layer`` blocks of it), built from a config: no download."""
    from transformers import GPT2Config, GPT2LMHeadModel

    n = N_LAYER if n_layer is None else n_layer
    config = GPT2Config(n_layer=n, bos_token_id=0, eos_token_id=0)
    model: nn.Module = GPT2LMHeadModel(config)
    return model


def gpt2_rules(n_layer: int = N_LAYER) -> InitRules:
    """GPT-2's init: normal(0.02) for Conv1D and embeddings, residual projections scaled by
    1/sqrt(2 * n_layer), LayerNorms PyTorch's default; the head is tied to the embedding."""
    from transformers.pytorch_utils import Conv1D

    residual = seeded_init(scheme="normal", std=0.02 / math.sqrt(2 * n_layer))
    return InitRules(
        {
            Conv1D: Normal(std=0.02),
            nn.Embedding: Normal(std=0.02),
            "transformer.h.*.attn.c_proj": residual,
            "transformer.h.*.mlp.c_proj": residual,
        },
        seed=2024,
    )


def part_2(small: bool, png: str | None) -> bool:
    try:
        import transformers  # noqa: F401  # pyright: ignore[reportUnusedImport]
    except ImportError:
        print('part 2 skipped: pip install -e ".[hf]" for transformers')
        return True
    n = 2 if small else N_LAYER
    rules = gpt2_rules(n)
    model = gpt2(n)  # transformers' own init draws from the global RNG here
    before = torch.get_rng_state()
    rules.reset_parameters(model)
    plan = rules.init_plan(model)
    print(f"GPT-2 with {n} blocks: {len(plan)} tensors planned; the first rows:")
    print("\n".join(str(plan).splitlines()[:8]))
    prov = Provenance.of(model, rules)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "seeded_init": prov.to_json()}, buffer)
    with torch.no_grad():  # as if trained
        for p in model.parameters():
            p.mul_(0.5)
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)
    back = Provenance.from_json(checkpoint["seeded_init"])
    back.reinit(model, rules)  # draws the initial weights again and verifies them
    print(f"re-initialized from the checkpoint's provenance: {back.digest == prov.digest}")
    rng_kept = torch.equal(torch.get_rng_state(), before)
    print(f"global RNG untouched: {rng_kept}")
    result = check_distributions(model, plan)
    print(f"distribution check: {len(result.failures)} failed of {len(result)}")
    if png is not None:
        from seeded_init import plot_distributions

        plot_distributions(model, plan, png)
        print(f"histograms: {png}")
    return rng_kept and result.ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--small", action="store_true", help="a two-block GPT-2")
    parser.add_argument("--png", metavar="PATH", help="draw the distribution histograms")
    args = parser.parse_args(argv)
    ok = part_1() & part_2(args.small, args.png)
    print(f"all checks pass: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
