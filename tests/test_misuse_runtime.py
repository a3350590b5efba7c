"""The misuse matrix of tests/typing/misuse.py, at run time: what a type checker rejects, the
library rejects too, with the same meaning, for callers it does not check."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch
from torch import nn

from seeded_init import (
    ConstructionError,
    DeclarationError,
    InitSpec,
    KaimingUniform,
    SeededModule,
    SeedError,
    TruncNormal,
    seeded_init,
)


def _declare(spec: InitSpec) -> None:
    """Define a class declaring one layer with ``spec``."""

    class Net(SeededModule):  # pyright: ignore[reportUnusedClass]
        @spec
        def fc(self) -> nn.Linear:
            return nn.Linear(2, 2)


_MODE: dict[str, Any] = {"mode": "fan_in"}


def _one_argument(tensor: torch.Tensor) -> None:
    tensor.zero_()


SPECS: dict[str, tuple[Any, type[Exception], str]] = {
    "unknown scheme": (lambda: seeded_init(scheme="he_normal"), DeclarationError, "he_normal"),  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    "keyword not taken, scheme type": (
        lambda: seeded_init(scheme=TruncNormal(**_MODE)), TypeError, "mode"),
    "keyword not taken, keyword form": (
        lambda: seeded_init(scheme="trunc_normal", mode="fan_in"), DeclarationError, "not mode="),
    "nonlinearity outside Literal": (
        lambda: seeded_init(scheme="kaiming_normal", nonlinearity="gelu"),  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        DeclarationError, "gelu"),
    "mode outside Literal, scheme type": (
        lambda: seeded_init(scheme=KaimingUniform(mode="fan_avg")),  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        DeclarationError, "fan_avg"),
    "seed is a str": (lambda: seeded_init(scheme="normal", seed="1"), SeedError, "seed="),  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    "seed is a float": (lambda: seeded_init(scheme="normal", seed=1.5), SeedError, "seed="),  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    "function of one argument": (
        lambda: seeded_init(scheme=_one_argument), DeclarationError, "takes one argument"),  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
}  # fmt: skip


@pytest.mark.parametrize("row", list(SPECS))
def test_bad_declaration_is_rejected_at_class_definition(row: str) -> None:
    """Each bad spec raises when the class is defined (a scheme type already when built)."""
    make, error, word = SPECS[row]
    with pytest.raises(error, match=word):
        _declare(make())


def test_reset_with_a_str_seed_is_rejected() -> None:
    """reset_parameters(seed="x"): SeedError."""

    class Net(SeededModule):
        @seeded_init(scheme="normal")
        def fc(self) -> nn.Linear:
            return nn.Linear(2, 2)

    with pytest.raises(SeedError, match="reset_parameters: seed="):
        Net().reset_parameters(seed="x")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


@pytest.mark.parametrize(
    ("returned", "word"),
    [(3, "returned int"), (torch.zeros(2), "plain Tensor"), (nn.Conv2d(2, 2, 1), "holds a Conv2d")],
    ids=["int", "tensor", "another layer type"],
)
def test_factory_returning_the_wrong_thing_is_rejected(returned: object, word: str) -> None:
    """A factory returning an int, a plain Tensor, or another type than it declares."""

    class Net(SeededModule):
        @seeded_init(scheme="normal")
        def fc(self) -> nn.Linear:
            return returned  # type: ignore[return-value]  # pyright: ignore[reportReturnType]

    with pytest.raises(ConstructionError, match=word):
        Net()


def test_decorator_outside_a_seeded_module_is_rejected() -> None:
    """The decorator in a plain nn.Module fails when the class is made."""
    with pytest.raises((DeclarationError, RuntimeError)) as info:

        class Plain(nn.Module):  # pyright: ignore[reportUnusedClass]
            @seeded_init(scheme="normal")  # type: ignore[type-var]  # pyright: ignore[reportArgumentType]
            def fc(self) -> nn.Linear:
                return nn.Linear(2, 2)

    chain = [info.value, info.value.__cause__]
    assert any(isinstance(e, DeclarationError) and "SeededModule" in str(e) for e in chain)


class Net(SeededModule):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.d = d

    @seeded_init(scheme="normal")
    def fc1(self) -> nn.Linear:
        return nn.Linear(self.d, self.d)


def test_assigning_another_layer_type_to_a_declared_attribute_is_rejected() -> None:
    """net.fc1 = nn.Conv2d(...) raises and leaves fc1 as it was; an nn.Linear is accepted."""
    net = Net(4)
    fc1 = net.fc1
    with pytest.raises(ConstructionError, match="declared as Linear but holds a Conv2d"):
        net.fc1 = nn.Conv2d(2, 2, 1)  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
    assert net.fc1 is fc1
    net.fc1 = nn.Linear(4, 4)
    assert net.fc1 is not fc1


def test_constructor_signature_is_kept() -> None:
    """The construction machinery keeps the subclass's own signature and its TypeError."""
    assert str(inspect.signature(Net)) == "(d: 'int') -> 'None'"
    with pytest.raises(TypeError, match="'d'"):
        Net()  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
