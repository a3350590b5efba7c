"""The progress bar of long resets: on a terminal, silent otherwise, with an opt-out."""

from __future__ import annotations

import io

import pytest
from torch import nn
from tqdm import tqdm

from seeded_init import InitRules, PlanError, SeededModule, _progress, seeded_init

from .helpers import assert_same, snapshot


class Wide(SeededModule):
    @seeded_init(scheme="normal", std=0.02)
    def body(self) -> nn.Sequential:
        return nn.Sequential(*[nn.Linear(256, 256) for _ in range(4)])


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


closed: list[tuple[float, float | None]] = []


class Recorded(tqdm):  # type: ignore[type-arg]  # pyright: ignore[reportMissingTypeArgument]
    """tqdm, noting how far each bar got of its total when it closed."""

    def close(self) -> None:
        if not self.disable:  # tqdm closes again when collected
            closed.append((self.n, self.total))
        super().close()


def as_terminal(monkeypatch: pytest.MonkeyPatch) -> Terminal:
    """stderr as a terminal, no delay before the bar shows, bars recorded. (Called in the
    test itself: pytest sets its own stderr again when the test starts.)"""
    stream = Terminal()
    monkeypatch.setattr("sys.stderr", stream)
    monkeypatch.setattr(_progress, "_DELAY", 0.0)
    monkeypatch.setattr(_progress, "tqdm", Recorded)
    monkeypatch.delenv(_progress.PROGRESS_ENV, raising=False)
    closed.clear()
    return stream


@pytest.mark.parametrize("threads", [1, 2])
def test_on_a_terminal_a_reset_shows_a_bar_of_the_elements_it_fills(
    monkeypatch: pytest.MonkeyPatch, threads: int
) -> None:
    model = Wide()
    terminal = as_terminal(monkeypatch)
    want = snapshot(model)
    model.reset_parameters(threads=threads)
    shown = terminal.getvalue()
    assert "seeded-init reset" in shown
    assert closed == [(4 * (256 * 256 + 256),) * 2]  # every element counted
    assert_same(snapshot(model), want)


def test_ruled_resets_show_it_too(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = as_terminal(monkeypatch)
    InitRules().reset_parameters(nn.Sequential(nn.Linear(256, 256)))
    assert "seeded-init reset" in terminal.getvalue()
    assert closed == [(256 * 256 + 256,) * 2]


def test_the_opt_outs_silence_it(monkeypatch: pytest.MonkeyPatch) -> None:
    model = Wide()
    terminal = as_terminal(monkeypatch)
    model.reset_parameters(progress=False)
    InitRules().reset_parameters(nn.Linear(256, 256), progress=False)
    assert terminal.getvalue() == ""
    monkeypatch.setenv(_progress.PROGRESS_ENV, "0")
    model.reset_parameters()
    assert terminal.getvalue() == ""
    model.reset_parameters(progress=True)  # asked for: shown despite the variable
    assert "seeded-init reset" in terminal.getvalue()


def test_off_a_terminal_it_is_silent_unless_asked_for(capsys: pytest.CaptureFixture[str]) -> None:
    model = Wide()
    model.reset_parameters()
    assert capsys.readouterr().err == ""
    model.reset_parameters(progress=True)
    assert "seeded-init reset" in capsys.readouterr().err


def test_a_bad_progress_value_is_an_error_and_changes_nothing() -> None:
    model = Wide()
    before = snapshot(model)
    with pytest.raises(PlanError, match="progress='yes'"):
        model.reset_parameters(progress="yes")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    with pytest.raises(PlanError, match="progress=1"):
        InitRules().reset_parameters(nn.Linear(2, 2), progress=1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    assert_same(snapshot(model), before)
