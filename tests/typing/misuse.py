"""Each misuse below is a mypy error; the ignore on its line names the error code.

A misuse that stopped being an error would leave its ignore unused, which mypy reports.
"""

from __future__ import annotations

import torch
from torch import nn

from seeded_init import SeededModule, seeded_init

seeded_init(scheme="he_normal")  # type: ignore[call-overload]  # unknown scheme
seeded_init(scheme="trunc_normal", mode="fan_in")  # type: ignore[call-overload]  # keyword not taken
seeded_init(scheme="kaiming_normal", nonlinearity="gelu")  # type: ignore[call-overload]  # outside Literal
seeded_init(scheme="kaiming_uniform", mode="fan_avg")  # type: ignore[call-overload]  # outside Literal
seeded_init(scheme="normal", seed="1")  # type: ignore[call-overload]  # seed is a str
seeded_init(scheme="normal", seed=1.5)  # type: ignore[call-overload]  # seed is a float
seeded_init(scheme="sparse")  # type: ignore[call-overload]  # required keyword missing


def one_argument(tensor: torch.Tensor) -> None:
    tensor.zero_()


seeded_init(scheme=one_argument)  # type: ignore[call-overload]  # wrong init-function signature


class Net(SeededModule):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.d = d

    @seeded_init(scheme="normal")
    def fc1(self) -> nn.Linear:
        return nn.Linear(self.d, self.d)

    @seeded_init(scheme="normal")  # type: ignore[type-var]  # factory returns int
    def width(self) -> int:
        return self.d

    @seeded_init(scheme="normal")  # type: ignore[type-var]  # factory returns a plain Tensor
    def table(self) -> torch.Tensor:
        return torch.zeros(self.d)


class NotSeeded(nn.Module):
    @seeded_init(scheme="normal")  # type: ignore[type-var]  # not a SeededModule
    def fc(self) -> nn.Linear:
        return nn.Linear(2, 2)


class LayerFirst(nn.Linear, SeededModule):  # type: ignore[misc]  # reset_parameters would bypass
    pass


net = Net(4)
net.fc1 = nn.Conv2d(2, 2, 1)  # type: ignore[assignment]  # declared nn.Linear
net.reset_parameters(seed="x")  # type: ignore[arg-type]  # seed is a str
Net("x")  # type: ignore[arg-type]  # constructor signature kept
Net()  # type: ignore[call-arg]  # constructor signature kept


class NoParentheses(SeededModule):
    @seeded_init  # type: ignore[call-overload]  # the decorator must be called
    def fc(self) -> nn.Linear:
        return nn.Linear(2, 2)
