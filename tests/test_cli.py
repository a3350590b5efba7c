"""``python -m seeded_init``: plan, diff and check, their output and exit statuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seeded_init import Provenance, fingerprint
from seeded_init._cli import main

from . import cli_models

ROOT = Path(__file__).resolve().parent.parent
MODELS = "tests.cli_models"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_plan_prints_the_table_and_the_fingerprint(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "plan", f"{MODELS}:net")
    assert (status, err) == (0, "")
    model = cli_models.net()
    assert out == f"{model.init_plan()}\n\nfingerprint {fingerprint(model)}\n"


def test_plan_of_a_ruled_model_with_a_seed(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(
        capsys, "plan", f"{MODELS}:plain", "--rules", f"{MODELS}:RULES", "--seed", "7"
    )
    model = cli_models.plain()
    cli_models.RULES.reset_parameters(model, 7)
    assert status == 0
    assert out == f"{cli_models.RULES.init_plan(model, 7)}\n\nfingerprint {fingerprint(model)}\n"
    # rules given as a function returning them, and a plain model without rules
    assert (
        run(capsys, "plan", f"{MODELS}:plain", "--rules", f"{MODELS}:rules", "--seed", "7")[1]
        == out
    )
    status, out, _ = run(capsys, "plan", f"{MODELS}:plain")
    assert status == 0 and "kaiming_uniform(a=sqrt(5))" in out


def test_plan_json_is_a_provenance_and_meta_allocates_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, _ = run(capsys, "plan", f"{MODELS}:net", "--json")
    assert status == 0
    prov = Provenance.from_json(out)
    prov.verify(cli_models.net())
    status, out, _ = run(capsys, "plan", f"{MODELS}:net", "--json", "--meta")
    meta = Provenance.from_json(out)
    assert meta.digest is None
    assert {e.device for e in meta.plan} == {"meta"}
    assert [(e.path, e.seed, e.rule) for e in meta.plan] == [
        (e.path, e.seed, e.rule) for e in prov.plan
    ]
    status, out, _ = run(capsys, "plan", f"{MODELS}:net", "--meta")
    assert out.endswith("fingerprint: none (built on the meta device: no weights)\n")


def test_diff_of_two_plans_and_its_exit_status(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    saved = tmp_path / "before.json"
    printed = run(capsys, "plan", f"{MODELS}:net", "--json")[1]
    saved.write_text(printed)
    assert json.loads(printed)["format"] == "seeded-init/provenance/v1"
    status, out, _ = run(capsys, "diff", str(saved), f"{MODELS}:net")
    assert (status, out) == (0, "no change\n")
    status, out, _ = run(capsys, "diff", str(saved), f"{MODELS}:wider")
    want = cli_models.net().init_plan().diff(cli_models.wider().init_plan())
    assert status == 1
    assert out.startswith(f"{want}\n")
    assert "fingerprint" in out  # the weights differ too
    plan_only = tmp_path / "plan.json"
    plan_only.write_text(cli_models.net().init_plan().to_json())
    assert run(capsys, "diff", str(plan_only), f"{MODELS}:net", "--meta")[:2] == (0, "no change\n")


def test_check_passes_a_correct_init_and_fails_a_wrong_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status, out, _ = run(capsys, "check", f"{MODELS}:plain", "--rules", f"{MODELS}:RULES")
    assert status == 0, out
    assert "0.weight" in out
    png = tmp_path / "h.png"
    status, out, _ = run(capsys, "check", f"{MODELS}:net", "--png", str(png))
    assert status == 0
    assert png.read_bytes().startswith(b"\x89PNG")
    # a tolerance no sample meets fails
    status, out, _ = run(capsys, "check", f"{MODELS}:plain", "--tolerance", "0.001")
    assert status == 1 and "failed" in out
    assert run(capsys, "check", f"{MODELS}:plain", "--tolerance", "0")[0] == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "required"),
        (["plan"], "MODULE:FACTORY"),
        (["plan", "no_colon"], "is not MODULE:NAME"),
        (["plan", "no_such_module:f"], "ModuleNotFoundError: No module named 'no_such_module'"),
        (["plan", f"{MODELS}:nope"], "has no 'nope'"),
        (["plan", f"{MODELS}:broken"], "RuntimeError: the factory failed on two lines"),
        (["plan", f"{MODELS}:not_a_module"], "returned int, not an nn.Module"),
        (["plan", f"{MODELS}:RULES"], "not a callable"),
        (["plan", f"{MODELS}:net", "--rules", f"{MODELS}:RULES"], "leave --rules out"),
        (["plan", f"{MODELS}:plain", "--rules", f"{MODELS}:net"], "not an InitRules"),
        (["plan", f"{MODELS}:net", "--seed", "x"], "--seed"),
        (["plan", f"{MODELS}:net", "--seed", str(2**64)], "outside [0, 2**64)"),
        (["plan", "missing.py:f"], "no file 'missing.py'"),
        (["diff", f"{MODELS}:net"], "AFTER"),
        (["check", f"{MODELS}:net", "--tolerance", "many"], "--tolerance"),
        (["plan", f"{MODELS}:exits"], "called sys.exit(0) instead of returning"),
        (["diff", "missing.json", f"{MODELS}:net"], "'missing.json': no such file"),
        (["check", f"{MODELS}:net", "--png", ""], "is not a file name"),
        (["check", f"{MODELS}:net", "--png", "/no/such/dir/h.png"], "cannot write in"),
        (["plan", f"{MODELS}:lazy"], "lazy parameter"),
    ],
)
def test_errors_are_one_line_with_exit_status_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("python -m seeded_init: error: ")
    assert message in err


def test_a_bad_plan_file_is_an_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "other"}')
    status, _, err = run(capsys, "diff", str(bad), f"{MODELS}:net")
    assert status == 2 and "neither a plan nor a provenance" in err


def command(*argv: str) -> subprocess.CompletedProcess[str]:
    """``python -m seeded_init ...`` in a second process, from the repository root."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-m", "seeded_init", *argv],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


def test_the_module_runs_as_a_command_from_a_file() -> None:
    """The real entry point, in a second process, on a file path."""
    done = command("plan", "tests/cli_models.py:net", "--json")
    assert done.returncode == 0, done.stderr
    assert Provenance.from_json(done.stdout).digest == fingerprint(cli_models.net()).digest
    done = command("plan", "tests/cli_models.py:broken")
    assert done.returncode == 2 and done.stderr.count("\n") == 1


def test_what_a_factory_prints_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "plan", f"{MODELS}:prints", "--json")
    assert status == 0
    assert Provenance.from_json(out).digest == fingerprint(cli_models.net()).digest
    assert err == "building the model...\n"


def test_a_reader_that_stops_early_is_no_error() -> None:
    """``python -m seeded_init plan ... | head -1``: exit 0, nothing on stderr."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "seeded_init", "plan", "examples/02_gpt2.py:tiny"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == b"root seed 0\n"
    proc.stdout.close()
    assert proc.wait(timeout=120) == 0
    assert proc.stderr.read() == b""
    proc.stderr.close()


def test_a_factory_file_imports_its_siblings(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_layers.py").write_text("from torch import nn\nWIDTH = 6\n")
    (tmp_path / "factory.py").write_text(
        "from torch import nn\nimport my_layers\n\n"
        "def model() -> nn.Module:\n    return nn.Linear(my_layers.WIDTH, 2)\n"
    )
    monkeypatch.setattr(sys, "path", list(sys.path))  # restored after the test
    monkeypatch.chdir(ROOT)  # elsewhere than the factory's folder
    status, out, _ = run(capsys, "plan", f"{tmp_path / 'factory.py'}:model")
    assert status == 0 and "2x6" in out
