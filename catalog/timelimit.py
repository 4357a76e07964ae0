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

#: The limit of the running `time_limit` block (what the alarm's message says).
_seconds = FILE_SECONDS


class TimeLimitExceeded(Exception):
    """Raised in the code that ran out of time."""


def _on_alarm(signum: int, frame: object) -> None:
    raise TimeLimitExceeded(f"took more than {_seconds:g} s")


def _usable() -> bool:
    """Our timer can run here: a Unix main thread, and no outer timer of the process running."""
    return (hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
            and signal.getitimer(signal.ITIMER_REAL)[0] == 0)


@contextmanager
def time_limits() -> Iterator[None]:
    """Keep the alarm's handler installed for the `time_limit` blocks run inside: installing and
    restoring it costs two system calls, at every file and document of a catalog otherwise."""
    if not _usable() or signal.getsignal(signal.SIGALRM) is _on_alarm:
        yield
        return
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        yield
    finally:
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def time_limit(seconds: float | None = None) -> Iterator[None]:
    """Run the block with `seconds` (default FILE_SECONDS) of wall-clock time at most (TimeLimitExceeded after that)."""
    global _seconds
    if not _usable():
        yield
        return
    _seconds = FILE_SECONDS if seconds is None else seconds
    with time_limits():
        signal.setitimer(signal.ITIMER_REAL, _seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
