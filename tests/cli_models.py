"""Model factories and rules that tests/test_cli.py names on the command line."""

from __future__ import annotations

from torch import nn

from seeded_init import InitRules, Normal, SeededModule, seeded_init


class Net(SeededModule):
    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.d = d
        self.norm = nn.LayerNorm(d)

    @seeded_init(scheme="kaiming_uniform", nonlinearity="relu", seed=1)
    def fc(self) -> nn.Linear:
        return nn.Linear(self.d, 64)


def net() -> Net:
    return Net()


def wider() -> Net:
    return Net(16)


def plain() -> nn.Sequential:
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 8))


RULES = InitRules({nn.Linear: Normal(std=0.05)}, seeds={"2": 5})


def rules() -> InitRules:
    return RULES


def broken() -> nn.Module:
    raise RuntimeError("the factory failed\non two lines")


def not_a_module() -> int:
    return 3


def prints() -> Net:
    print("building the model...")
    return Net()


def exits() -> Net:
    raise SystemExit(0)


def lazy() -> nn.Sequential:
    return nn.Sequential(nn.LazyLinear(4))
