"""Each misuse below is one static error in mypy and in basedpyright (strict).

Every line carries the ignore each checker needs (each reports an ignore it does not need) and,
after ``# expect:``, a word that both checkers' message on that line contains.
``tests/test_typing.py`` also checks a copy without the ignores: exactly one error per line.
"""

from __future__ import annotations

import torch
from torch import nn

from seeded_init import InitRules, KaimingUniform, Normal, SeededModule, TruncNormal, seeded_init

seeded_init(scheme="he_normal")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]  # expect: he_normal
TruncNormal(mode="fan_in")  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]  # expect: mode
seeded_init(scheme="kaiming_normal", nonlinearity="gelu")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]  # expect: gelu
KaimingUniform(mode="fan_avg")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]  # expect: fan_avg
seeded_init(scheme="kaiming_uniform", mode="fan_avg")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]  # expect: fan_avg
seeded_init(scheme="normal", seed="1")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]  # expect: seed
seeded_init(scheme="normal", seed=1.5)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]  # expect: seed
seeded_init(scheme="normal", sd=0.02)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]  # expect: sd


def one_argument(tensor: torch.Tensor) -> None:
    tensor.zero_()


seeded_init(scheme=one_argument)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]  # expect: Tensor


class Net(SeededModule):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.d = d

    @seeded_init(scheme="normal")
    def fc1(self) -> nn.Linear:
        return nn.Linear(self.d, self.d)

    @seeded_init(scheme="normal")  # type: ignore[type-var]  # pyright: ignore[reportArgumentType]  # expect: int
    def width(self) -> int:
        return self.d

    @seeded_init(scheme="normal")  # type: ignore[type-var]  # pyright: ignore[reportArgumentType]  # expect: Tensor
    def table(self) -> torch.Tensor:
        return torch.zeros(self.d)

    @seeded_init(scheme="normal")
    def proj(self) -> nn.Linear:
        return nn.Conv2d(2, 2, 1)  # type: ignore[return-value]  # pyright: ignore[reportReturnType]  # expect: Conv2d


class NotSeeded(nn.Module):
    @seeded_init(scheme="normal")  # type: ignore[type-var]  # pyright: ignore[reportArgumentType]  # expect: NotSeeded
    def fc(self) -> nn.Linear:
        return nn.Linear(2, 2)


class LayerFirst(nn.Linear, SeededModule):  # type: ignore[misc]  # pyright: ignore[reportIncompatibleMethodOverride]  # expect: reset_parameters
    pass


class NoParentheses(SeededModule):
    @seeded_init  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]  # expect: Scheme
    def fc(self) -> nn.Linear:
        return nn.Linear(2, 2)


class Typo(SeededModule):
    @seeded_init(scheme="normal", sd=0.02)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]  # expect: sd
    def fc(self) -> nn.Linear:
        return nn.Linear(4, 4)


typo_weight: torch.Tensor = Typo().fc.weight  # no cascade: the layer keeps its type


net = Net(4)
net.fc1 = nn.Conv2d(2, 2, 1)  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]  # expect: Conv2d
net.reset_parameters(seed="x")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]  # expect: seed
net.reset_parameters(draw_on="gpu")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]  # expect: draw_on
net.reset_parameters(draw_dtype="float32")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]  # expect: draw_dtype
Net("x")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]  # expect: int
Net()  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]  # expect: "d"

# rules for models that are not SeededModules
InitRules({nn.Linear: "he_normal"})  # type: ignore[dict-item]  # pyright: ignore[reportArgumentType]  # expect: Linear
InitRules({3: "zeros"})  # type: ignore[dict-item]  # pyright: ignore[reportArgumentType]  # expect: int
InitRules(seeds={"fc": "1"})  # type: ignore[dict-item]  # pyright: ignore[reportArgumentType]  # expect: int
InitRules(seed="1")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]  # expect: seed
InitRules({"fc": Normal(sd=0.1)})  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]  # expect: sd
InitRules().reset_parameters(model=3)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]  # expect: model
InitRules(draw_on="gpu")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]  # expect: draw_on
