"""Seeds: explicit seeds are exact, derived seeds follow the documented digest rule and are the
same in every process, other layers never shift a layer's values, collisions are reported."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Annotated, Any

import pytest
import torch
from torch import nn

from seeded_init import (
    DEFAULT_ROOT_SEED,
    SeedCollisionError,
    SeededModule,
    SeedError,
    derive_seed,
    seeded_init,
)
from tests.helpers import assert_same, manual_seed, nn_init, reference, snapshot


def _independent_digest(root: int, path: str) -> int:
    """The documented rule, written out again from the README."""
    data = b"seeded-init/v1\x00" + root.to_bytes(8, "big") + path.encode("utf-8")
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")


@pytest.mark.parametrize("root", [0, 1, 2**64 - 1])
@pytest.mark.parametrize("path", ["", "fc", "blocks.0.attn", "ünï.code"])
def test_derive_seed_follows_the_documented_rule(root: int, path: str) -> None:
    """derive_seed is sha256 of (domain, 8-byte root, utf-8 path), first 8 bytes big-endian."""
    assert derive_seed(root, path) == _independent_digest(root, path)


def test_derived_seeds_differ_by_path_and_root() -> None:
    """Different paths or roots give different seeds; separators cannot be confused."""
    seeds = {derive_seed(r, p) for r in (0, 1) for p in ("a.b", "ab", "a", "b.a", "a.b.")}
    assert len(seeds) == 10


class Two(SeededModule):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(4, 4)

    @seeded_init(scheme="kaiming_uniform", seed=1)
    def fc1(self) -> nn.Linear:
        return nn.Linear(4, 4)

    @seeded_init(scheme="xavier_normal")
    def fc2(self) -> nn.Linear:
        return nn.Linear(4, 2)


def test_explicit_seed_is_exact() -> None:
    """seed=s draws from torch.Generator().manual_seed(s)."""
    want = nn_init(nn.init.kaiming_uniform_, (4, 4), 1)
    assert torch.equal(Two().fc1.weight, want)


def test_derived_seed_uses_root_and_path() -> None:
    """No seed: the layer's generator is seeded derive_seed(root_seed, path); default root 0."""
    assert DEFAULT_ROOT_SEED == 0
    want = nn_init(nn.init.xavier_normal_, (2, 4), derive_seed(0, "fc2"))
    assert torch.equal(Two().fc2.weight, want)
    hidden = reference(derive_seed(0, "hidden"), lambda: nn.Linear(4, 4))
    assert_same(snapshot(Two().hidden), snapshot(hidden))


def test_root_seed_per_instance_and_per_call() -> None:
    """The root seed is settable per instance (argument, attribute) and per call."""

    class Rooted(Two):
        def __init__(self, seed: int) -> None:
            super().__init__()
            self.root_seed = seed

    m = Rooted(5)
    assert m.root_seed == 5
    assert torch.equal(m.fc2.weight, nn_init(nn.init.xavier_normal_, (2, 4), derive_seed(5, "fc2")))
    m.reset_parameters(seed=9)
    assert torch.equal(m.fc2.weight, nn_init(nn.init.xavier_normal_, (2, 4), derive_seed(9, "fc2")))
    assert m.root_seed == 5  # a per-call seed is not stored
    assert torch.equal(m.fc1.weight, nn_init(nn.init.kaiming_uniform_, (4, 4), 1))
    m.reset_parameters()
    assert torch.equal(m.fc2.weight, nn_init(nn.init.xavier_normal_, (2, 4), derive_seed(5, "fc2")))


def test_root_seed_from_the_constructor_argument() -> None:
    """SeededModule(seed=...) sets the root seed used by construction."""

    class Seeded(SeededModule):
        def __init__(self) -> None:
            super().__init__(seed=77)
            self.fc = nn.Linear(3, 3)

    assert_same(
        snapshot(Seeded().fc), snapshot(reference(derive_seed(77, "fc"), lambda: nn.Linear(3, 3)))
    )


class V1(SeededModule):
    @seeded_init(scheme="kaiming_uniform", seed=1)
    def fc1(self) -> nn.Linear:
        return nn.Linear(4, 4)

    @seeded_init(scheme="xavier_normal", seed=2)
    def fc2(self) -> nn.Linear:
        return nn.Linear(4, 2)


class V2(SeededModule):
    @seeded_init(scheme="normal", seed=9)
    def extra(self) -> nn.Linear:
        return nn.Linear(5, 5)

    @seeded_init(scheme="kaiming_uniform", seed=1)
    def fc1(self) -> nn.Linear:
        return nn.Linear(4, 4)

    @seeded_init(scheme="xavier_normal", seed=2)
    def fc2(self) -> nn.Linear:
        return nn.Linear(4, 2)


class V3(SeededModule):
    @seeded_init(scheme="xavier_normal", seed=2)
    def fc2(self) -> nn.Linear:
        return nn.Linear(4, 2)

    @seeded_init(scheme="kaiming_uniform", seed=1)
    def fc1(self) -> nn.Linear:
        return nn.Linear(4, 4)


def test_c15_adding_and_reordering_layers_changes_nothing_else() -> None:
    """C15: fc1 and fc2 are bitwise equal across V1, V2 (an extra layer first), V3 (reordered)."""
    manual_seed(0)
    models = [V1(), V2(), V3()]
    for m in models:
        m.reset_parameters()
    for name in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"):
        values = [m.state_dict()[name] for m in models]
        assert all(torch.equal(values[0], v) for v in values[1:]), name


def test_derived_seeds_are_order_independent_too() -> None:
    """An undeclared layer keeps its values when another is inserted before it."""

    class A(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.b = nn.Linear(3, 3)

    class B(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(5, 5)
            self.b = nn.Linear(3, 3)

    assert_same(snapshot(A().b), snapshot(B().b))


class Block(SeededModule):
    @seeded_init(scheme="kaiming_uniform", seed=1)
    def fc(self) -> nn.Linear:
        return nn.Linear(4, 4)


class SharedBlock(SeededModule):
    @seeded_init(scheme="kaiming_uniform", seed=1, share_seed=True)
    def fc(self) -> nn.Linear:
        return nn.Linear(4, 4)


def test_same_explicit_seed_on_two_layers_is_an_error_naming_both() -> None:
    """A block class with seed=1 used twice: SeedCollisionError naming both paths."""

    class Stack(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.ModuleList([Block() for _ in range(12)])

    with pytest.raises(SeedCollisionError) as info:
        Stack()
    message = str(info.value)
    assert "'blocks.0.fc'" in message and "'blocks.1.fc'" in message
    assert "share_seed=True" in message


def test_share_seed_shares_on_purpose() -> None:
    """share_seed=True in the declarations allows the same seed: identical weights."""

    class Stack(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.ModuleList([SharedBlock() for _ in range(3)])

    s = Stack()
    assert torch.equal(s.get_parameter("blocks.0.fc.weight"), s.get_parameter("blocks.2.fc.weight"))


def test_collision_needs_both_declarations_to_share() -> None:
    """One sharing declaration does not license another that does not share."""

    class Mixed(SeededModule):
        def __init__(self) -> None:
            super().__init__()
            self.a = SharedBlock()
            self.b = Block()

    with pytest.raises(SeedCollisionError):
        Mixed()


BAD_SEEDS: list[Any] = [True, 1.5, "1", -1, 2**64, None.__class__]


@pytest.mark.parametrize("bad", BAD_SEEDS, ids=repr)
def test_bad_declared_seed_is_an_error_at_class_definition(bad: Any) -> None:
    """seed= that is not an int in [0, 2**64) fails when the class is defined, naming it."""
    with pytest.raises(SeedError, match=r"Bad\.fc: seed="):

        class Bad(SeededModule):  # pyright: ignore[reportUnusedClass]
            @seeded_init(scheme="normal", seed=bad)
            def fc(self) -> nn.Linear:
                return nn.Linear(2, 2)


@pytest.mark.parametrize("bad", [True, 1.5, "x", -3, 2**64], ids=repr)
def test_bad_call_seed_is_an_error_and_changes_nothing(bad: Any) -> None:
    """reset_parameters(seed=bad): SeedError (a TypeError and ValueError), nothing written."""
    m = Two()
    before = snapshot(m)
    with pytest.raises(SeedError) as info:
        m.reset_parameters(seed=bad)
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)
    assert_same(snapshot(m), before)
    with pytest.raises(SeedError):
        m.root_seed = bad


def test_bad_annotated_seed_is_an_error_at_class_definition() -> None:
    """The Annotated form gives the same error at class definition."""
    with pytest.raises(SeedError, match=r"Bad\.fc: seed="):

        class Bad(SeededModule):  # pyright: ignore[reportUnusedClass]
            fc: Annotated[nn.Linear, seeded_init(scheme="normal", seed=-1)]


_DRIVER = """
import hashlib, torch
from torch import nn
from seeded_init import SeededModule, seeded_init

class Model(SeededModule):
    def __init__(self) -> None:
        super().__init__(seed=2024)
        self.extra = nn.Linear(4, 4)
    @seeded_init(scheme="kaiming_normal", seed=3)
    def encoder(self) -> nn.Linear:
        return nn.Linear(16, 8)
    @seeded_init(scheme="xavier_uniform", seed=4)
    def decoder(self) -> nn.Linear:
        return nn.Linear(8, 16)
    @seeded_init(scheme="normal", std=0.02)
    def derived(self) -> nn.Linear:
        return nn.Linear(8, 8)

m = Model()
m.reset_parameters()
assert m.encoder.weight.std() > 0 and m.decoder.weight.std() > 0
assert not torch.equal(m.encoder.weight.flatten()[:64], m.decoder.weight.flatten()[:64])
h = hashlib.sha256()
for k, v in m.state_dict().items():
    h.update(k.encode()); h.update(v.contiguous().view(torch.uint8).numpy().tobytes())
print(h.hexdigest())
"""


def test_c14_same_digest_in_processes_with_different_hash_seeds(tmp_path: Path) -> None:
    """C14: three fresh interpreters with PYTHONHASHSEED 1, 2 and random print one digest."""
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent(_DRIVER))
    digests: set[str] = set()
    for hash_seed in ("1", "2", None):
        env = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
        if hash_seed is not None:
            env["PYTHONHASHSEED"] = hash_seed
        out = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, check=True
        )
        digests.add(out.stdout.strip())
    assert len(digests) == 1
    # and the same digest here, in this process
    namespace: dict[str, Any] = {}
    exec(
        compile(
            _DRIVER.replace("print(h.hexdigest())", "digest = h.hexdigest()"), "driver", "exec"
        ),
        namespace,
    )
    assert digests == {namespace["digest"]}
