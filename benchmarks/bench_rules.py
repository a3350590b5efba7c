"""Rules on a model you cannot edit, side by side in one process: Hugging Face GPT-2 small.

  (a) transformers' own init: ``model.apply(model._init_weights)``, from the global RNG;
  (b) the hand-written loop the origin Q&A writes: one ``torch.Generator`` per layer, seeded
      from a dictionary, ``torch.nn.init`` calls;
  (c) ``rules.reset_parameters(model, threads=1)``: the rules resolved and the plan built
      and validated on every call, then the fills;
  (d) ``rules.reset_parameters(model)`` on every core;
  (e) ``rules.init_plan(model)`` alone: what resolving and planning cost.

Medians of several runs; ratios to (b). Needs the ``hf`` extra. Run:
``.venv/bin/python benchmarks/bench_rules.py`` (``--quick``: two blocks, to check it runs).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from typing import cast

import torch
from torch import nn

from seeded_init import InitRules, Normal, seeded_init


def timed(fn: Callable[[], object], repeat: int) -> float:
    """The median wall time of ``fn()`` over ``repeat`` runs (after one warm-up)."""
    fn()
    times: list[float] = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="two blocks, to check it runs")
    args = parser.parse_args(argv)
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.pytorch_utils import Conv1D

    n_layer = 2 if args.quick else 12
    model: nn.Module = GPT2LMHeadModel(GPT2Config(n_layer=n_layer, bos_token_id=0, eos_token_id=0))
    modules = cast("list[tuple[str, nn.Module]]", list(model.named_modules()))  # pyright: ignore[reportUnknownArgumentType]
    residual = seeded_init(scheme="normal", std=0.02 / math.sqrt(2 * n_layer))
    rules = InitRules(
        {
            Conv1D: Normal(std=0.02),
            nn.Embedding: Normal(std=0.02),
            "transformer.h.*.attn.c_proj": residual,
            "transformer.h.*.mlp.c_proj": residual,
        }
    )
    seeds = {name: i for i, (name, _) in enumerate(modules)}

    def by_hand() -> None:
        with torch.no_grad():
            for name, m in modules:
                g = torch.Generator().manual_seed(seeds[name])
                if isinstance(m, Conv1D | nn.Embedding):
                    std = 0.02 / math.sqrt(2 * n_layer) if name.endswith("c_proj") else 0.02
                    nn.init.normal_(m.get_parameter("weight"), std=std, generator=g)
                    if isinstance(m, Conv1D):
                        nn.init.zeros_(m.get_parameter("bias"))
                elif isinstance(m, nn.LayerNorm):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)

    init_weights = cast("Callable[[nn.Module], None]", getattr(model, "_init_weights"))  # noqa: B009

    def own() -> None:
        with torch.no_grad():
            model.apply(init_weights)

    repeat = 3 if args.quick else 5
    parameters = sum(p.numel() for p in model.parameters())
    cores = torch.get_num_threads()
    rows = [
        ("(a) transformers' _init_weights (global RNG)", timed(own, repeat)),
        ("(b) hand-written loop, a generator per layer", timed(by_hand, repeat)),
        (
            "(c) rules.reset_parameters(threads=1)",
            timed(lambda: rules.reset_parameters(model, threads=1), repeat),
        ),
        (
            f"(d) rules.reset_parameters() on {cores} threads",
            timed(lambda: rules.reset_parameters(model), repeat),
        ),
        ("(e) rules.init_plan() alone", timed(lambda: rules.init_plan(model), repeat)),
    ]
    base = rows[1][1]
    print(f"GPT-2 ({n_layer} blocks, {parameters / 1e6:.1f}M parameters), median of {repeat}:")
    for label, seconds in rows:
        print(f"  {label:<50} {seconds * 1e3:8.1f} ms  {seconds / base:5.2f}x (b)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
