"""benchmarks/bench.py runs (at its smallest size) and prints every row and ratio; it
asserts no timing: speed is measured by the benchmark itself, in BENCHMARKS.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench.py"


def test_benchmark_runs_and_prints_every_ratio() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for line in [
        "single-core uniform_ fill:",
        "c/b   a/d   c/d",
        "--quick: a GPT (2 small blocks)",
        "GPT (2 small blocks), meta -> to_empty -> reset vs eager",
        "ResNet-50",
        "tiny Linear(4, 4)",
        "x Linear(1024, 1024)",
        "first reset (builds the plan)",
        "tiny Linear(4, 4) declared vs plain nn.ModuleList",
        "construction, declared vs plain nn.Module",
        "meta -> to_empty -> reset vs eager",
        "peak RSS growth",
    ]:
        assert line in out, (line, out)


def test_rules_benchmark_runs_and_prints_every_row() -> None:
    pytest.importorskip("transformers", reason="the hf extra (CI installs it)")
    result = subprocess.run(
        [sys.executable, str(BENCH.with_name("bench_rules.py")), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for label in "(a)", "(b)", "(c)", "(d)", "(e)":
        assert f"  {label} " in result.stdout, (label, result.stdout)
    assert "x (b)" in result.stdout
