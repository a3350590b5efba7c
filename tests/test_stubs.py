"""stubs/ (the mypy_path for third-party modules without types) agrees with the runtime."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _stub_modules() -> list[str]:
    """The stubbed modules that are not packages of other stubbed modules (stubtest checks a
    package's stub through its submodules)."""
    stubs = ROOT / "stubs"
    names: set[str] = set()
    for path in stubs.rglob("*.pyi"):
        parts = path.relative_to(stubs).with_suffix("").parts
        names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(n for n in names if not any(o.startswith(n + ".") for o in names))


def test_stubs_match_the_runtime_under_stubtest() -> None:
    """python -m mypy.stubtest over every stubbed module passes."""
    modules = _stub_modules()
    assert modules
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy.stubtest",
            *modules,
            "--mypy-config-file",
            str(ROOT / "pyproject.toml"),
            "--ignore-missing-stub",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
