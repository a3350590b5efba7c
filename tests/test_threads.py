"""Parallel reset: layers fill on several threads, with the same values for every count."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import torch
from torch import nn

from seeded_init import PlanError, SeededModule, _execute, seeded_init

from .helpers import assert_same, garbage, nn_init, reference, snapshot


class Wide(SeededModule):
    """Six layers large enough for the pool, and small ones that stay on the caller."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(nn.Linear(256, 512) for _ in range(4))
        self.norms = nn.ModuleList(nn.LayerNorm(16) for _ in range(3))

    @seeded_init(scheme="normal", std=0.02, seed=1)
    def big(self) -> nn.Linear:
        return nn.Linear(512, 384)

    @seeded_init(scheme="orthogonal", seed=2)
    def square(self) -> nn.Linear:
        return nn.Linear(300, 300)

    @seeded_init(scheme="default", seed=3)
    def small(self) -> nn.Linear:
        return nn.Linear(8, 4)


@pytest.fixture
def submitted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many units each reset gave the pool (one entry per unit)."""
    counts: list[int] = []
    real = _execute._start  # pyright: ignore[reportPrivateUsage]

    def counting(threads: int, jobs: list[Any]) -> Any:
        counts.extend(1 for _ in jobs)
        return real(threads, jobs)

    monkeypatch.setattr(_execute, "_start", counting)
    return counts


@pytest.mark.parametrize("threads", [1, 2, 8])
def test_every_thread_count_gives_the_same_values_as_pytorch(
    threads: int, submitted: list[int], global_rng_guard: None
) -> None:
    """threads=1, 2, 8: bitwise the values of nn.init with each layer's generator and of
    PyTorch's own layers; more than one thread hands the large layers to the pool."""
    m = Wide()
    garbage(m)
    built = len(submitted)  # construction ran at the default count
    m.reset_parameters(threads=threads)
    handed = len(submitted) - built
    assert torch.equal(m.big.weight, nn_init(nn.init.normal_, (384, 512), 1, std=0.02))
    assert torch.equal(m.square.weight, nn_init(nn.init.orthogonal_, (300, 300), 2))
    assert_same(snapshot(m.small), snapshot(reference(3, lambda: nn.Linear(8, 4))))
    serial = Wide()
    garbage(serial)
    serial.reset_parameters(threads=1)
    assert_same(snapshot(m), snapshot(serial))
    assert (handed == 6) == (threads > 1) and (handed == 0) == (threads == 1)


def test_environment_variable_sets_the_default(
    monkeypatch: pytest.MonkeyPatch, submitted: list[int]
) -> None:
    """$SEEDED_INIT_THREADS is the default count; construction uses it too."""
    monkeypatch.setenv(_execute.THREADS_ENV, "1")
    want = snapshot(Wide())
    assert not submitted
    monkeypatch.setenv(_execute.THREADS_ENV, "8")
    m = Wide()
    assert submitted
    assert_same(snapshot(m), want)


@pytest.mark.parametrize("bad", [0, -1, True, 2.0, "2"])
def test_bad_thread_counts_are_a_plan_error_and_change_nothing(bad: object) -> None:
    m = Wide()
    garbage(m)
    before = snapshot(m)
    with pytest.raises(PlanError, match=rf"Wide\.reset_parameters: threads={bad!r}; write a"):
        m.reset_parameters(threads=bad)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    assert_same(snapshot(m), before)


@pytest.mark.parametrize("bad", ["0", "two", "-3", "\u00b2", "\u0664"])
def test_bad_environment_value_is_a_plan_error_and_changes_nothing(
    monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    m = Wide()
    garbage(m)
    before = snapshot(m)
    monkeypatch.setenv(_execute.THREADS_ENV, bad)
    with pytest.raises(PlanError, match=rf"\$SEEDED_INIT_THREADS='{bad}'; set it to a positive"):
        m.reset_parameters()
    assert_same(snapshot(m), before)


def test_parallel_reset_under_inference_mode() -> None:
    """The workers write inference tensors as the calling thread may (inference mode is
    thread-local)."""
    with torch.inference_mode():
        m = Wide()
        garbage(m)
        m.reset_parameters(threads=2)
    assert_same(snapshot(m), snapshot(Wide()))


def test_threads_with_other_counts_reset_at_once(global_rng_guard: None) -> None:
    """Two threads resetting two models with changing thread counts at the same time: no
    error (a pool in use is never shut down), and every reset gives the serial values."""
    want = snapshot(Wide())
    errors: list[BaseException] = []
    wrong: list[int] = []

    def work(offset: int) -> None:
        m = Wide()
        try:
            for i in range(12):
                garbage(m)
                m.reset_parameters(threads=2 + (i + offset) % 5)
                if any(not torch.equal(v, want[k]) for k, v in snapshot(m).items()):
                    wrong.append(i)
        except BaseException as e:  # reported by the test thread
            errors.append(e)

    workers = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors and not wrong


def test_one_pool_serves_every_count() -> None:
    """Resets with counts 2 to 12 leave at most 12 pool threads alive, not one pool each."""
    m = Wide()
    for count in range(2, 13):
        m.reset_parameters(threads=count)

    def alive() -> int:
        return sum(t.name.startswith("seeded-init") for t in threading.enumerate())

    deadline = time.monotonic() + 10  # replaced pools' threads exit once idle
    while alive() > 12 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert 0 < alive() <= 12
    assert_same(snapshot(m), snapshot(Wide()))
