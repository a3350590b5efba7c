"""Fixtures shared by the tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture
def global_rng_guard() -> Iterator[None]:
    """Fails the test if the global CPU RNG state changed during it."""
    before = torch.get_rng_state()
    yield None
    assert torch.equal(before, torch.get_rng_state()), "the global RNG state changed"
