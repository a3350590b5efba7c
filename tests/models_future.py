"""Models declared in a module that uses postponed annotations (PEP 563)."""

from __future__ import annotations

from typing import Annotated

import torch
from torch import nn

from seeded_init import SeededModule, seeded_init


class FutureNet(SeededModule):
    fc: Annotated[nn.Linear, seeded_init(scheme="xavier_uniform", seed=3)]

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    @seeded_init(scheme="kaiming_normal", seed=1, nonlinearity="relu")
    def fc1(self) -> nn.Linear:
        return nn.Linear(4, 8)


def make_local_class() -> type[SeededModule]:
    """A class defined in a function whose annotation names a function-local scheme."""

    def halves(t: torch.Tensor, g: torch.Generator) -> None:
        t.uniform_(-0.5, 0.5, generator=g)

    class LocalNet(SeededModule):
        fc: Annotated[nn.Linear, seeded_init(scheme=halves, seed=5)]

        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 3)

    return LocalNet


S = 3


def make_with_module_seed() -> type[SeededModule]:
    """A class whose annotation names the module-level S."""

    class Net(SeededModule):
        head: Annotated[nn.Linear, seeded_init(scheme="normal", seed=S)]

        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(2, 2)

    return Net


def make_in_closure(seed: int) -> type[SeededModule]:
    """The annotation names a variable of an enclosing function, which a string annotation
    cannot see (as typing.get_type_hints cannot)."""

    def inner() -> type[SeededModule]:
        class Net(SeededModule):
            head: Annotated[nn.Linear, seeded_init(scheme="normal", seed=seed)]

        return Net

    return inner()


def make_with_local_return_type() -> type[SeededModule]:
    """A factory annotated with a function-local type, returning another type."""

    class MyLayer(nn.Linear):
        pass

    class Net(SeededModule):
        @seeded_init(scheme="normal")
        def fc(self) -> MyLayer:
            return nn.Conv1d(2, 2, 1)  # type: ignore[return-value]  # pyright: ignore[reportReturnType]

    return Net
