"""A GPT-2-small-shaped transformer whose every parameter comes from a seeded generator.

It shows, on a real model: declared embeddings (one of them an ``nn.Parameter`` factory), a
block class used twelve times with derived seeds only, GPT-2's init scheme written as
declarations, a head whose weight is tied to the token embedding, the plan of what each
tensor got, and a state_dict digest that a second, fresh Python process reproduces.

Run: ``python examples/02_gpt2.py`` (124M parameters) or ``--small`` (a tiny model).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from seeded_init import InitPlan, SeededModule, seeded_init


@dataclass(frozen=True)
class Config:
    vocab_size: int
    context: int
    d_model: int
    n_head: int
    n_layer: int


GPT2_SMALL = Config(vocab_size=50257, context=1024, d_model=768, n_head=12, n_layer=12)
TINY = Config(vocab_size=512, context=64, d_model=64, n_head=4, n_layer=2)

STD = 0.02


def residual_std(module: CausalSelfAttention | MLP) -> float:
    """GPT-2 scales the projections that write into the residual stream by 1/sqrt(2 * n_layer):
    each block adds two of them. A keyword given as a function reads the declaring module."""
    return STD / math.sqrt(2 * module.n_layer)


class CausalSelfAttention(SeededModule):
    def __init__(self, d_model: int, n_head: int, n_layer: int) -> None:
        super().__init__()
        self.d_model, self.n_head, self.n_layer = d_model, n_head, n_layer

    # No explicit seeds in a class used many times: each instance's seeds are derived from the
    # root seed and its own path (blocks.0.attn.qkv, blocks.1.attn.qkv, ...).
    @seeded_init(scheme="normal", std=STD)
    def qkv(self) -> nn.Linear:
        return nn.Linear(self.d_model, 3 * self.d_model)

    @seeded_init(scheme="normal", std=residual_std)
    def proj(self) -> nn.Linear:
        return nn.Linear(self.d_model, self.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        qkv: torch.Tensor = self.qkv(x)
        q, k, v = (
            h.view(b, t, self.n_head, d // self.n_head).transpose(1, 2) for h in qkv.chunk(3, dim=2)
        )
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        out: torch.Tensor = self.proj(y.transpose(1, 2).reshape(b, t, d))
        return out


class MLP(SeededModule):
    def __init__(self, d_model: int, n_layer: int) -> None:
        super().__init__()
        self.d_model, self.n_layer = d_model, n_layer
        self.gelu = nn.GELU(approximate="tanh")

    @seeded_init(scheme="normal", std=STD)
    def fc(self) -> nn.Linear:
        return nn.Linear(self.d_model, 4 * self.d_model)

    @seeded_init(scheme="normal", std=residual_std)
    def proj(self) -> nn.Linear:
        return nn.Linear(4 * self.d_model, self.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.proj(self.gelu(self.fc(x)))
        return out


class Block(SeededModule):
    def __init__(self, d_model: int, n_head: int, n_layer: int) -> None:
        super().__init__()
        self.d_model, self.n_head, self.n_layer = d_model, n_head, n_layer

    # "default": PyTorch's own LayerNorm init (weight ones, bias zeros).
    @seeded_init(scheme="default")
    def ln_1(self) -> nn.LayerNorm:
        return nn.LayerNorm(self.d_model)

    # A nested SeededModule initializes itself from its own declarations.
    @seeded_init()
    def attn(self) -> CausalSelfAttention:
        return CausalSelfAttention(self.d_model, self.n_head, self.n_layer)

    @seeded_init(scheme="default")
    def ln_2(self) -> nn.LayerNorm:
        return nn.LayerNorm(self.d_model)

    @seeded_init()
    def mlp(self) -> MLP:
        return MLP(self.d_model, self.n_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        out: torch.Tensor = x + self.mlp(self.ln_2(x))
        return out


class GPT(SeededModule):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.blocks = nn.ModuleList(
            [Block(config.d_model, config.n_head, config.n_layer) for _ in range(config.n_layer)]
        )
        # Undeclared, so the token embedding's declaration owns the shared weight. Reading
        # self.wte here builds the embedding now, before its turn after __init__.
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight

    @seeded_init(scheme="normal", std=STD)
    def wte(self) -> nn.Embedding:
        return nn.Embedding(self.config.vocab_size, self.config.d_model)

    @seeded_init(scheme="normal", std=0.01)
    def wpe(self) -> nn.Parameter:
        return nn.Parameter(torch.empty(self.config.context, self.config.d_model))

    @seeded_init(scheme="default")
    def ln_f(self) -> nn.LayerNorm:
        return nn.LayerNorm(self.config.d_model)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, time, vocab) for token ids of shape (batch, time)."""
        x: torch.Tensor = self.wte(idx) + self.wpe[: idx.size(1)]
        for block in self.blocks:
            x = block(x)
        logits: torch.Tensor = self.lm_head(self.ln_f(x))
        return logits


def tiny() -> GPT:
    """A two-block model, for ``python -m seeded_init plan examples/02_gpt2.py:tiny``."""
    return GPT(TINY)


def state_digest(model: nn.Module) -> str:
    """SHA-256 of every state_dict tensor's bytes, in key order."""
    h = hashlib.sha256()
    for tensor in model.state_dict().values():
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def summarize(plan: InitPlan) -> None:
    """The plan's rows outside blocks 1.., and how many tensors got each rule overall."""
    shown = InitPlan(
        plan.root_seed,
        tuple(
            e for e in plan if not e.path.startswith("blocks.") or e.path.startswith("blocks.0.")
        ),
    )
    print(shown)
    print(
        f"... and {len(plan) - len(shown)} tensors in blocks 1.. with the same rules, each "
        f"block from seeds derived from its own path"
    )
    print(
        "tensors per rule:",
        ", ".join(f"{rule} x{n}" for rule, n in Counter(e.rule for e in plan).most_common()),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--small", action="store_true", help="a tiny model, in seconds")
    parser.add_argument(
        "--digest-only",
        action="store_true",
        help="build the model and print only its state_dict digest",
    )
    args = parser.parse_args(argv)
    config = TINY if args.small else GPT2_SMALL

    if args.digest_only:
        print(state_digest(GPT(config)))
        return 0

    failures: list[str] = []
    rng_before = torch.get_rng_state()
    model = GPT(config)
    if not torch.equal(torch.get_rng_state(), rng_before):
        failures.append("construction changed the global RNG")
    if model.lm_head.weight is not model.wte.weight:
        failures.append("lm_head.weight is not tied to wte.weight")

    print(f"{config}\nparameters: {sum(p.numel() for p in model.parameters()):,}\n")
    summarize(model.init_plan())

    batch = torch.randint(config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(batch)
    print(f"\nforward: tokens {tuple(batch.shape)} -> logits {tuple(logits.shape)}")
    if not bool(torch.isfinite(logits).all()):
        failures.append("the forward pass gave non-finite logits")

    digest = state_digest(model)
    size = ["--small"] if args.small else []
    second = subprocess.run(
        [sys.executable, __file__, "--digest-only", *size],
        capture_output=True,
        text=True,
        check=False,
    )
    other = second.stdout.strip()
    print(f"state_dict digest: {digest}")
    print(f"second process digest: {other}")
    print(f"identical: {digest == other}")
    print(f"lm_head tied to wte: {model.lm_head.weight is model.wte.weight}")
    if second.returncode != 0:
        failures.append(f"the second process failed:\n{second.stderr}")
    elif digest != other:
        failures.append("the two processes built different parameters")

    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
