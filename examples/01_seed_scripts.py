"""Three hand-written per-layer-generator scripts, rewritten as seeded-init declarations.

Each pair below builds the same model twice: once with the original code (a
``torch.Generator`` per layer, filled by hand after construction) and once as a
:class:`~seeded_init.SeededModule` whose class declares each layer's scheme and seed. The
script checks that every parameter is bitwise equal (``torch.equal``) between the two.

Run: ``python examples/01_seed_scripts.py`` (``--small`` is accepted; the models are tiny
either way).
"""

from __future__ import annotations

import argparse
import math

import torch
from torch import nn

from seeded_init import SeededModule, seeded_init

# -- Script 1: uniform initialization with per-layer seeds -------------------------------------


class HandUniformModel(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(input_size, hidden_size)
        self.fc2 = nn.Linear(hidden_size, output_size)


def initialize_layer_uniform(layer: nn.Linear, seed: int, a: float = 0, b: float = 1) -> None:
    """The original: weight, then bias, from one generator seeded ``seed``."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    with torch.no_grad():
        for param in layer.parameters():  # weight, then bias if the layer has one
            param.uniform_(a, b, generator=generator)


def hand_script_1() -> nn.Module:
    model = HandUniformModel(10, 20, 5)
    initialize_layer_uniform(model.fc1, seed=42, a=-1, b=1)
    initialize_layer_uniform(model.fc2, seed=123, a=0, b=1)
    return model


class UniformModel(SeededModule):
    def __init__(self, input_size: int, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, output_size

    # The bias rule has no seed of its own, so it draws from the layer's generator, right
    # after the weight: the order of the original.
    @seeded_init(
        scheme="uniform", a=-1, b=1, seed=42, bias=seeded_init(scheme="uniform", a=-1, b=1)
    )
    def fc1(self) -> nn.Linear:
        return nn.Linear(self.input_size, self.hidden_size)

    @seeded_init(scheme="uniform", a=0, b=1, seed=123, bias=seeded_init(scheme="uniform", a=0, b=1))
    def fc2(self) -> nn.Linear:
        return nn.Linear(self.hidden_size, self.output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc2(self.fc1(x))
        return out


# -- Script 2: "Xavier normal" that is really Kaiming (He) normal -------------------------------


class HandConvModel(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size)


def initialize_layer_xavier_normal(layer: nn.Conv2d, seed: int) -> None:
    """The original, name included: std = sqrt(2 / fan_in) is not Xavier's formula."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    with torch.no_grad():
        w = layer.weight
        fan_in = w.size(1) * w.size(2) * w.size(3)
        std = math.sqrt(2.0 / fan_in)
        w.normal_(0, std, generator=generator)
        if layer.bias is not None:
            layer.bias.normal_(0, std, generator=generator)


def hand_script_2() -> nn.Module:
    model = HandConvModel(in_channels=3, out_channels=16, kernel_size=3)
    initialize_layer_xavier_normal(model.conv, seed=77)
    return model


def he_std(model: HeConvModel) -> float:
    """sqrt(2 / fan_in) of the model's conv: a keyword may be a function of the model."""
    return math.sqrt(2.0 / (model.in_channels * model.kernel_size**2))


class HeConvModel(SeededModule):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = kernel_size

    # Xavier normal would be std = sqrt(2 / (fan_in + fan_out)). The original's
    # std = sqrt(2 / fan_in) is Kaiming (He) normal with the ReLU gain, so that is its name.
    # The original also draws the bias, from the same generator with the same std.
    @seeded_init(
        scheme="kaiming_normal",
        nonlinearity="relu",
        seed=77,
        bias=seeded_init(scheme="normal", std=he_std),
    )
    def conv(self) -> nn.Conv2d:
        return nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.conv(x)
        return out


# -- Script 3: a rule per layer type and a seed per named module --------------------------------

SEED_MAP = {"fc1": 77, "conv_layers.0": 123, "conv_layers.1": 456, "fc2": 789}


class HandComplexModel(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, num_conv_layers: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(input_size, hidden_size)
        # padding=1 (not in the original) lets the forward run on the 1x1 fake image; it
        # changes no parameter's shape.
        self.conv_layers = nn.ModuleList(
            [
                nn.Conv2d(hidden_size, hidden_size, kernel_size=3, padding=1)
                for _ in range(num_conv_layers)
            ]
        )
        self.fc2 = nn.Linear(hidden_size, 10)


def initialize_model_custom(model: nn.Module, seed_dict: dict[str, int]) -> None:
    """The original: Linear -> xavier_uniform, Conv2d -> kaiming_normal, zero biases."""
    for name, seed in seed_dict.items():
        module = model.get_submodule(name)
        generator = torch.Generator()
        generator.manual_seed(seed)
        with torch.no_grad():
            for param_name, param in module.named_parameters():
                if param_name == "bias":
                    nn.init.zeros_(param)
                elif isinstance(module, nn.Linear):
                    nn.init.xavier_uniform_(param, generator=generator)
                elif isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(param, generator=generator)


def hand_script_3() -> nn.Module:
    model = HandComplexModel(input_size=25, hidden_size=32, num_conv_layers=2)
    initialize_model_custom(model, SEED_MAP)
    return model


class ComplexModel(SeededModule):
    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size

    # Biases default to zeros, as in the original.
    @seeded_init(scheme="xavier_uniform", seed=77)
    def fc1(self) -> nn.Linear:
        return nn.Linear(self.input_size, self.hidden_size)

    # Each element of the list draws from a generator of its own seed.
    @seeded_init(
        scheme="kaiming_normal",
        params={
            "0": seeded_init(scheme="kaiming_normal", seed=123),
            "1": seeded_init(scheme="kaiming_normal", seed=456),
        },
    )
    def conv_layers(self) -> nn.ModuleList:
        return nn.ModuleList(
            [
                nn.Conv2d(self.hidden_size, self.hidden_size, kernel_size=3, padding=1)
                for _ in range(2)
            ]
        )

    @seeded_init(scheme="xavier_uniform", seed=789)
    def fc2(self) -> nn.Linear:
        return nn.Linear(self.hidden_size, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h: torch.Tensor = self.fc1(x)
        h = h.view(h.size(0), -1, 1, 1)  # a fake 2D input for the convolutions
        for conv in self.conv_layers:
            h = conv(h)
        out: torch.Tensor = self.fc2(h.view(h.size(0), -1))
        return out


# -- The checks --------------------------------------------------------------------------------


def mismatches(hand: nn.Module, ours: nn.Module) -> list[str]:
    """The parameter names whose values (or whose presence) differ between two models."""
    a, b = dict(hand.named_parameters()), dict(ours.named_parameters())
    if a.keys() != b.keys():
        return sorted(a.keys() ^ b.keys())
    return [name for name in a if not torch.equal(a[name], b[name])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--small", action="store_true", help="accepted; the models are tiny")
    parser.parse_args(argv)

    pairs = [
        (hand_script_1(), UniformModel(10, 20, 5)),
        (hand_script_2(), HeConvModel(in_channels=3, out_channels=16, kernel_size=3)),
        (hand_script_3(), ComplexModel(input_size=25, hidden_size=32)),
    ]
    failed = 0
    for number, (hand, ours) in enumerate(pairs, start=1):
        bad = mismatches(hand, ours)
        if bad:
            failed += 1
            print(f"script {number}: FAILED, these parameters differ: {', '.join(bad)}")
        else:
            print(f"script {number}: bitwise equal to the hand-written code")

    print()
    print(ComplexModel(input_size=25, hidden_size=32).init_plan())
    logits = ComplexModel(input_size=25, hidden_size=32)(torch.ones(2, 25))
    print(f"\nscript 3 forward: logits of shape {tuple(logits.shape)}")

    if failed:
        print(f"{failed} of 3 scripts do not match")
        return 1
    print("all three scripts match")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
