"""What the public API's types must be, pinned with assert_type (mypy and basedpyright)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Annotated, Generic, TypeVar

import torch
from torch import nn
from typing_extensions import assert_type

from seeded_init import (
    Constant,
    Declaration,
    DeclaredLayer,
    DistributionCheck,
    DrawOn,
    Fingerprint,
    InitPlan,
    InitRules,
    InitSpec,
    KaimingNormal,
    Normal,
    ParamCheck,
    ParamInit,
    Provenance,
    Rule,
    SeededModule,
    Sparse,
    check_distributions,
    declarations,
    derive_seed,
    fingerprint,
    seeded_init,
)


class Net(SeededModule):
    fc: Annotated[nn.Linear, seeded_init(scheme="xavier_uniform", seed=3)]

    def __init__(self, d: int) -> None:
        super().__init__()
        self.d = d
        self.fc = nn.Linear(d, d)

    @seeded_init(scheme="kaiming_normal", seed=1, nonlinearity="relu")
    def fc1(self) -> nn.Linear:
        return nn.Linear(self.d, 2 * self.d)

    @seeded_init(scheme=KaimingNormal(nonlinearity="relu"), bias=Constant(val=0.1))
    def fc2(self) -> nn.Linear:
        return nn.Linear(2 * self.d, self.d)

    @seeded_init(scheme="trunc_normal", std=0.02)
    def pos(self) -> nn.Parameter:
        return nn.Parameter(torch.empty(4, self.d))

    @seeded_init(scheme="orthogonal", params={"weight_hh_l0": "orthogonal"}, bias="zeros")
    def rnn(self) -> nn.LSTM:
        return nn.LSTM(self.d, self.d)


class Sub(Net):
    @seeded_init(scheme="uniform", a=-1.0, b=1.0, seed=9)
    def fc1(self) -> nn.Linear:
        return nn.Linear(self.d, 2 * self.d)


L = TypeVar("L", bound=nn.Module)


class Block(SeededModule, Generic[L]):
    """A block generic in its layer type."""

    def __init__(self, make: Callable[[], L]) -> None:
        super().__init__()
        self.make = make

    @seeded_init(scheme="normal", std=0.02)
    def layer(self) -> L:
        return self.make()


def halve(tensor: torch.Tensor, generator: torch.Generator) -> None:
    tensor.uniform_(-0.5, 0.5, generator=generator)


class Deep(SeededModule):
    def __init__(self, n_layer: int) -> None:
        super().__init__()
        self.n_layer = n_layer

    @seeded_init(scheme="normal", std=lambda block: 0.02 / math.sqrt(2 * block.n_layer))
    def proj(self) -> nn.Linear:
        return nn.Linear(4, 4)


net = Net(8)
assert_type(net.fc1, nn.Linear)
assert_type(net.fc2, nn.Linear)
assert_type(net.fc, nn.Linear)
assert_type(net.pos, nn.Parameter)
assert_type(net.rnn, nn.LSTM)
assert_type(Sub(4).fc1, nn.Linear)
assert_type(Block(lambda: nn.Conv1d(2, 2, 1)).layer, nn.Conv1d)
assert_type(Deep(12).proj, nn.Linear)
assert_type(Net.fc1, DeclaredLayer[nn.Linear])
assert_type(Net.fc1.spec, InitSpec)
assert_type(Net.fc1.seed, int | None)
assert_type(net.reset_parameters(), None)
assert_type(net.reset_parameters(seed=3), None)
assert_type(net.reset_parameters(draw_on="device", draw_dtype=torch.float32), None)
on: DrawOn = "cpu"
assert_type(net.reset_parameters(draw_on=on), None)
assert_type(net.init_plan(), InitPlan)
assert_type(next(iter(net.init_plan())), ParamInit)
assert_type(net.init_plan()["fc.weight"], ParamInit)
assert_type(net.root_seed, int)
assert_type(declarations(Net), Mapping[str, Declaration])
assert_type(seeded_init(scheme="sparse", sparsity=0.1), InitSpec)
assert_type(seeded_init(scheme=Sparse(sparsity=0.1), seed=2), InitSpec)
assert_type(seeded_init(scheme=halve, seed=2), InitSpec)
assert_type(derive_seed(0, "fc"), int)
net.fc1 = nn.Linear(8, 16)  # assigning the declared type is accepted

# rules, provenance, fingerprints and the distribution check
plain = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
rules = InitRules(
    {nn.Linear: "xavier_uniform", "1": None, "*.weight": Normal(std=0.1), "0.bias": halve},
    seeds={"0": 3},
    seed=1,
)
assert_type(rules.reset_parameters(plain, 2, threads=1, progress=False), None)
assert_type(rules.init_plan(plain), InitPlan)
assert_type(rules.rules, tuple[Rule, ...])
assert_type(rules.seeds, Mapping[str, int])
assert_type(net.reset_parameters(progress=True), None)
assert_type(fingerprint(plain), Fingerprint)
prov = Provenance.of(plain, rules, seed=2)  # the seed of the reset above
assert_type(prov, Provenance)
assert_type(prov.digest, str | None)
assert_type(Provenance.from_json(prov.to_json()), Provenance)
assert_type(prov.reinit(plain, rules), None)
checked = check_distributions(plain, rules.init_plan(plain))
assert_type(checked, DistributionCheck)
assert_type(checked.ok, bool)
assert_type(checked["0.weight"], ParamCheck)
