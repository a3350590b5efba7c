"""The numbered examples run at small size and make their own checks (exit 0 when they pass)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import public_fsdp2

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

EXPECTED = {
    "01_seed_scripts.py": [
        "script 1: bitwise equal to the hand-written code",
        "script 2: bitwise equal to the hand-written code",
        "script 3: bitwise equal to the hand-written code",
        "all three scripts match",
    ],
    "02_gpt2.py": ["identical: True", "lm_head tied to wte: True"],
    "03_digits.py": ["loss curves identical: True", "only fc2 changed: True"],
    "04_fsdp.py": ["state_dict identical: True", "forward identical: True"],
    "05_existing_models.py": [
        "script 3 as rules: bitwise equal to the hand-written loop: True",
        "re-initialized from the checkpoint's provenance: True",
        "global RNG untouched: True",
        "distribution check: 0 failed of 29",
        "all checks pass: True",
    ],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_and_passes_its_checks(name: str) -> None:
    """python examples/<name> --small exits 0 and prints its verdicts."""
    if name == "04_fsdp.py" and not public_fsdp2():
        pytest.skip("needs torch>=2.6: public FSDP2 and DTensor")
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--small"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    expected = EXPECTED[name]
    if name == "05_existing_models.py" and importlib.util.find_spec("transformers") is None:
        expected = [expected[0], 'part 2 skipped: pip install -e ".[hf]"', expected[-1]]
    for line in expected:
        assert line in result.stdout, (line, result.stdout)


def test_every_example_is_tested() -> None:
    """No numbered example escapes the suite."""
    assert sorted(p.name for p in EXAMPLES.glob("[0-9][0-9]_*.py")) == sorted(EXPECTED)
