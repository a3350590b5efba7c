"""Reproducible training on real data, and a change of one seed that changes one layer.

An MLP on scikit-learn's bundled digits (8x8 images, no download) is trained twice from
scratch. Its initial values come from its declarations and the data order from a
``torch.Generator`` with a fixed seed; nothing else is random, so the two loss curves are
bitwise equal. Then a subclass redeclares one layer with another seed: only that layer's
initial values change, every other tensor stays bitwise the same.

Run: ``python examples/03_digits.py`` (15 epochs on 1500 images) or ``--small`` (2 epochs on
300).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from seeded_init import SeededModule, seeded_init

DATA_ORDER_SEED = 2024
BATCH = 32
LR = 0.02
MOMENTUM = 0.9


class DigitsMLP(SeededModule):
    """64 pixels -> 64 -> 32 -> 10 classes, each layer from its own seed."""

    @seeded_init(scheme="kaiming_normal", nonlinearity="relu", seed=1)
    def fc1(self) -> nn.Linear:
        return nn.Linear(64, 64)

    # "default": PyTorch's own Linear init (weight and bias both drawn), from seed 2.
    @seeded_init(scheme="default", seed=2)
    def fc2(self) -> nn.Linear:
        return nn.Linear(64, 32)

    @seeded_init(scheme="xavier_uniform", seed=3)
    def out(self) -> nn.Linear:
        return nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.fc1(x))
        h = F.relu(self.fc2(h))
        logits: torch.Tensor = self.out(h)
        return logits


class DigitsMLPReseeded(DigitsMLP):
    """The same model with fc2 drawn from another seed; the rest is inherited as declared."""

    @seeded_init(scheme="default", seed=20)
    def fc2(self) -> nn.Linear:
        return nn.Linear(64, 32)


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int) -> torch.Tensor:
    """SGD with momentum, batches in an order drawn from a seeded generator; the mean loss
    per epoch."""
    params = list(model.parameters())
    velocity = [torch.zeros_like(p) for p in params]
    order = torch.Generator().manual_seed(DATA_ORDER_SEED)
    losses = torch.zeros(epochs, dtype=torch.float64)
    for epoch in range(epochs):
        perm = torch.randperm(len(x), generator=order)
        total = 0.0
        for start in range(0, len(x), BATCH):
            idx = perm[start : start + BATCH]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for p, v, g in zip(params, velocity, grads, strict=True):
                    p.sub_(v.mul_(MOMENTUM).add_(g), alpha=LR)
            total += loss.item() * len(idx)
        losses[epoch] = total / len(x)
    return losses


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        predicted = model(x).argmax(dim=1)
    return float((predicted == y).double().mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--small", action="store_true", help="2 epochs on 300 images")
    args = parser.parse_args(argv)
    n_train, epochs = (300, 2) if args.small else (1500, 15)

    images, labels = load_digits(return_X_y=True)
    x = torch.tensor(images / 16.0, dtype=torch.float32)  # pixel values 0..16 -> 0..1
    y = torch.tensor(labels)
    x_train, y_train, x_test, y_test = x[:n_train], y[:n_train], x[1500:], y[1500:]

    failures: list[str] = []
    curves: list[torch.Tensor] = []
    for run in (1, 2):
        model = DigitsMLP()
        curve = train(model, x_train, y_train, epochs)
        curves.append(curve)
        print(
            f"run {run}: loss per epoch "
            + " ".join(f"{float(v):.6f}" for v in curve)
            + f"; test accuracy {accuracy(model, x_test, y_test):.3f}"
        )
    identical = torch.equal(curves[0], curves[1])
    print(f"loss curves identical: {identical}")
    if not identical:
        failures.append("the two training runs gave different losses")

    base, variant = DigitsMLP().state_dict(), DigitsMLPReseeded().state_dict()
    changed = [k for k in base if not torch.equal(base[k], variant[k])]
    layer = [k for k in base if k.startswith("fc2.")]
    print(
        f"\n{DigitsMLPReseeded.__name__} redeclares fc2: seed {DigitsMLP.fc2.seed} -> "
        f"{DigitsMLPReseeded.fc2.seed}"
    )
    print(f"changed tensors: {changed}; unchanged: {[k for k in base if k not in changed]}")
    only = changed == layer
    print(f"only fc2 changed: {only}")
    if not only:
        failures.append(f"expected exactly {layer} to change, got {changed}")

    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
