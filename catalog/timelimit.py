"""A wall-clock limit on reading or analysing one file, so that no input can hang a build.

It uses SIGALRM, so it applies only in the main thread of a Unix process (`catalog check`,
`catalog build`, the first build of `mkdocs serve`); elsewhere, and while an outer timer of the
process is running (pytest-timeout's, say), the code runs without it.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

#: Reading one file, or analysing one document, may take this long. The largest real rules (5 MB,
#: 50,000 values) take about 2 s; a slow or busy machine gets ample room.
FILE_SECONDS = 30.0


class TimeLimitExceeded(Exception):
    """Raised in the code that ran out of time."""


@contextmanager
def time_limit(seconds: float | None = None) -> Iterator[None]:
    """Run the block with `seconds` (default FILE_SECONDS) of wall-clock time at most (TimeLimitExceeded after that)."""
    seconds = FILE_SECONDS if seconds is None else seconds
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable or signal.getitimer(signal.ITIMER_REAL)[0] > 0:
        yield
        return
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: _raise(seconds))
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _raise(seconds: float) -> None:
    raise TimeLimitExceeded(f"took more than {seconds:g} s")
