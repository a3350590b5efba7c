"""A progress bar for long resets: shown on a terminal, silent otherwise, with an opt-out.

``reset_parameters(progress=...)`` says, for one call, whether to show it: True always (on
stderr, at once), False never, None (the default) when stderr is a terminal and the fills
take longer than a second, unless ``SEEDED_INIT_PROGRESS=0`` is set. The bar counts the
elements the fills write; tqdm draws it.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from collections.abc import Callable, Generator
from contextlib import contextmanager

from tqdm import tqdm

from ._errors import PlanError

__all__ = ["PROGRESS_ENV", "Bar", "check_progress", "open_bar", "showing", "wanted"]

#: The environment variable that turns the bar off by default: ``SEEDED_INIT_PROGRESS=0``.
PROGRESS_ENV = "SEEDED_INIT_PROGRESS"
_DELAY = 1.0  # seconds a reset runs before the bar appears (by default)


class _Wanted(threading.local):
    def __init__(self) -> None:
        self.value: bool | None = None


_wanted = _Wanted()


def check_progress(progress: object, where: str) -> bool | None:
    """Validate a ``progress=`` argument."""
    if progress is not None and not isinstance(progress, bool):
        raise PlanError(
            f"{where}progress={progress!r}; write progress=True (always show the bar), "
            f"progress=False (never), or leave it None (on a terminal, for long resets)"
        )
    return progress


@contextmanager
def showing(progress: bool | None) -> Generator[None, None, None]:
    """Within this block (on this thread), resets show the bar as ``progress`` says."""
    before = _wanted.value
    _wanted.value = progress
    try:
        yield
    finally:
        _wanted.value = before


def _decide() -> tuple[bool, float]:
    """Whether this thread's reset shows a bar, and after how many seconds."""
    asked = _wanted.value
    if asked is not None:
        return asked, 0.0
    if os.environ.get(PROGRESS_ENV, "").strip().lower() in ("0", "false", "no", "off"):
        return False, 0.0
    stream = sys.stderr
    return stream is not None and stream.isatty(), _DELAY


def _columns() -> int:
    return shutil.get_terminal_size((80, 20)).columns


def wanted() -> bool:
    """Whether a reset on this thread would show the bar now."""
    return _decide()[0]


Bar = Callable[[int], object]


@contextmanager
def open_bar(total: Callable[[], int]) -> Generator[Bar | None, None, None]:
    """A bar for ``total()`` elements (counted only if one is shown), or None.

    The function it yields advances the bar by a number of elements; it may be called from
    any thread.
    """
    show, delay = _decide()
    if not show:
        yield None
        return
    bar = tqdm(
        total=total(),
        desc="seeded-init reset",
        unit="",
        unit_scale=True,
        delay=delay,
        leave=False,
        file=sys.stderr,
        # a terminal that reports 0 columns (some CI and container ptys) would get no bar
        dynamic_ncols=_columns() > 0,
        ncols=None if _columns() > 0 else 80,
    )
    try:
        yield bar.update
    finally:
        bar.close()
