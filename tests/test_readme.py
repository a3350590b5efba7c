"""The README's usage example runs and prints the plan the README shows."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

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
