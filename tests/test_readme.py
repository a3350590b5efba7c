"""The README's usage example runs and prints the plan the README shows."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def _blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of each fenced code block, in order."""
    return re.findall(r"```(\w*)\n(.*?)```", text, flags=re.DOTALL)


def test_usage_example_prints_the_documented_plan() -> None:
    text = README.read_text(encoding="utf-8")
    usage = text[text.index("## Usage") :]
    (_, code), (_, shown) = _blocks(usage)[:2]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), {"__name__": "readme_usage"})
    printed = out.getvalue()
    assert shown.strip() in printed
    assert "<declared layer Net.fc1: kaiming_normal(nonlinearity='relu') seed=1>" in printed


def test_rules_example_prints_the_documented_plan() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Models you cannot edit: rules") :]
    (_, code), (_, shown) = _blocks(section)[:2]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), {"__name__": "readme_rules"})
    assert out.getvalue().strip() == shown.strip()


def test_the_documented_check_is_the_output_of_a_real_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's distribution check table is what the command it names prints."""
    from seeded_init._cli import main

    text = README.read_text(encoding="utf-8")
    section = text[text.index("**Distribution check.**") :]
    shown = _blocks(section)[0][1]
    root = README.parent
    out = io.StringIO()
    monkeypatch.chdir(root)
    with contextlib.redirect_stdout(out):
        status = main(
            [
                "check",
                "examples/05_existing_models.py:script_model",
                "--rules",
                "examples/05_existing_models.py:SCRIPT_RULES",
                "--png",
                str(tmp_path / "d.png"),
            ]
        )
    assert status == 0
    assert out.getvalue().startswith(shown.strip() + "\n")
    assert (root / "docs" / "distributions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
