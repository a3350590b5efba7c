"""The typing contract, under mypy --strict and basedpyright (strict): what must hold holds, and
every misuse is exactly one error, at its line, whose message names the mistake."""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path

import pytest

import seeded_init

ROOT = Path(__file__).resolve().parent.parent
TYPING = ROOT / "tests" / "typing"
BIN = Path(sys.executable).parent
_IGNORE = re.compile(r"  # type: ignore\[[^\]]*\]  # pyright: ignore\[[^\]]*\]")
_EXPECT = re.compile(r"# expect: (.+)$")


@dataclass(frozen=True)
class Diagnostic:
    file: str
    line: int
    message: str


def _env() -> dict[str, str]:
    # basedpyright asks the first python on PATH for its search paths: this environment's.
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def _mypy(files: list[Path]) -> list[Diagnostic]:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--no-incremental", "--no-error-summary", *map(str, files)],
        cwd=ROOT, capture_output=True, text=True, env=_env(),
    )  # fmt: skip
    out: list[Diagnostic] = []
    for row in result.stdout.splitlines():
        match = re.match(r"(.+?):(\d+): error: (.*)$", row)
        if match:
            out.append(Diagnostic(Path(match[1]).name, int(match[2]), match[3]))
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return out


def _pyright(files: list[Path]) -> list[Diagnostic]:
    result = subprocess.run(
        [str(BIN / "basedpyright"), "--outputjson", "--project", str(ROOT / "pyproject.toml"),
         *map(str, files)],
        cwd=ROOT, capture_output=True, text=True, env=_env(),
    )  # fmt: skip
    report = json.loads(result.stdout)
    return [
        Diagnostic(Path(d["file"]).name, d["range"]["start"]["line"] + 1, d["message"])
        for d in report["generalDiagnostics"]
        if d["severity"] == "error"
    ]


CHECKERS = {"mypy": _mypy, "basedpyright": _pyright}


@pytest.fixture
def probe() -> Iterator[Path]:
    """misuse.py without its ignores, beside it (so the same configuration applies)."""
    path = TYPING / "_probe_misuse.py"
    path.write_text(_IGNORE.sub("", (TYPING / "misuse.py").read_text()))
    yield path
    path.unlink()


def _expected() -> dict[int, str]:
    lines = enumerate((TYPING / "misuse.py").read_text().splitlines(), start=1)
    return {n: m[1].strip().strip('"') for n, line in lines if (m := _EXPECT.search(line))}


@pytest.mark.parametrize("checker", sorted(CHECKERS))
def test_typing_contract_under_each_checker(checker: str, probe: Path) -> None:
    """One run of the checker: api_types.py and misuse.py are clean (every assert_type holds,
    every ignore is needed); without the ignores, each misuse line is exactly one error whose
    message contains the word after '# expect:'."""
    diagnostics = CHECKERS[checker]([TYPING / "api_types.py", TYPING / "misuse.py", probe])
    clean = [d for d in diagnostics if d.file != probe.name]
    assert not clean, "\n".join(f"{d.file}:{d.line}: {d.message}" for d in clean)
    expected = _expected()
    assert len(expected) >= 17
    found: dict[int, list[str]] = {}
    for d in diagnostics:
        found.setdefault(d.line, []).append(d.message)
    for line, word in expected.items():
        messages = found.pop(line, [])
        assert len(messages) == 1, (line, messages)
        assert word in messages[0], (line, word, messages[0])
    assert not found, f"errors on lines that expect none: {found}"


def test_public_api_is_type_complete(tmp_path: Path) -> None:
    """basedpyright --verifytypes on the installed package reports 100% completeness."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-compile", "--target", str(target), str(ROOT)],
        check=True, capture_output=True,
    )  # fmt: skip
    result = subprocess.run(
        [str(BIN / "basedpyright"), "--verifytypes", "seeded_init", "--ignoreexternal"],
        cwd=tmp_path, capture_output=True, text=True,
        env={**_env(), "PYTHONPATH": str(target)},
    )  # fmt: skip
    assert "Type completeness score: 100%" in result.stdout, result.stdout


def _annotations(obj: object) -> Iterator[tuple[str, str]]:
    """(where, annotation text) of a public function's or class's signatures and fields."""
    if inspect.isfunction(obj):
        for name, param in inspect.signature(obj).parameters.items():
            yield f"{obj.__qualname__}({name})", str(param.annotation)
        yield f"{obj.__qualname__} return", str(inspect.signature(obj).return_annotation)
    elif inspect.isclass(obj):
        if is_dataclass(obj):
            for f in fields(obj):
                yield f"{obj.__qualname__}.{f.name}", str(f.type)
        for name, member in vars(obj).items():
            public = not name.startswith("_") or name in ("__init__", "__call__", "__get__")
            if public and inspect.isfunction(member):
                yield from _annotations(member)


def test_no_public_signature_or_record_exposes_any() -> None:
    """No exported function, method or record field is annotated with Any."""
    api = [getattr(seeded_init, name) for name in seeded_init.__all__]
    seen = [pair for obj in api for pair in _annotations(obj)]
    assert len(seen) > 60  # the scan sees the API
    assert not [(where, text) for where, text in seen if re.search(r"\bAny\b", text)]
