"""Typing contract: one mypy run over tests/typing (assert_type holds, each misuse is an error)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _mypy(*targets: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--strict",
            "--warn-unused-ignores",
            "--no-incremental",
            *targets,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


def test_typing_folder_checks_under_mypy_strict() -> None:
    """Every assert_type holds and every misuse is the error its ignore names."""
    result = _mypy("tests/typing")
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_misuse_really_is_an_error() -> None:
    """Without the ignores, mypy reports an error on every misuse line."""
    source = (ROOT / "tests/typing/misuse.py").read_text()
    lines = source.splitlines()
    flagged = [i + 1 for i, line in enumerate(lines) if "# type: ignore[" in line]
    stripped = "\n".join(line.split("  # type: ignore[")[0] for line in lines) + "\n"
    probe = ROOT / "tests/typing/_misuse_probe.py"
    probe.write_text(stripped)
    try:
        result = _mypy(str(probe.relative_to(ROOT)))
    finally:
        probe.unlink()
    errors = {
        int(line.split(":")[1])
        for line in result.stdout.splitlines()
        if line.startswith("tests/typing/_misuse_probe.py:") and ": error:" in line
    }
    assert flagged and set(flagged) <= errors, (flagged, result.stdout)
