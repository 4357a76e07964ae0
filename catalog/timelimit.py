"""A wall-clock limit on reading or analysing one file, so that no input can hang a build.

It uses SIGALRM, so it applies only in the main thread of a Unix process (`catalog check`,
`catalog build`, the first build of `mkdocs serve`); elsewhere, inside another limit, and while an
outer timer of the process is running (pytest-timeout's, say), the code runs without it.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

#: Reading one file, or analysing one document, may take this long. The largest real rules (5 MB,
#: 50,000 values) take about 2 s; a slow or busy machine gets ample room.
FILE_SECONDS = 30.0

_TIMERS = hasattr(signal, "setitimer")
#: The limit of the block running (what the alarm's message says); None between blocks.
_running: float | None = None
#: Whether a `time_limits` block holds the alarm's handler installed (a flag: `signal.getsignal`
#: costs microseconds, as it looks the handler up among the enum of default handlers).
_held = False


class TimeLimitExceeded(Exception):
    """Raised in the code that ran out of time."""


def _on_alarm(signum: int, frame: object) -> None:
    if _running is not None:  # else a timer left running after its block (see time_limit)
        raise TimeLimitExceeded(f"took more than {_running:g} s")


def _main_thread() -> bool:
    return threading.get_ident() == threading.main_thread().ident


def _outer_timer() -> bool:
    return signal.getitimer(signal.ITIMER_REAL)[0] > 0


@contextmanager
def time_limits() -> Iterator[None]:
    """Keep the alarm's handler installed for the `time_limit` blocks run inside, and their timer
    running between them: installing the handler, restoring it and stopping the timer cost three
    system calls, at every file and document of a catalog otherwise."""
    global _held
    if not _TIMERS or _held or not _main_thread() or _outer_timer():
        yield
        return
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    _held = True
    try:
        yield
    finally:
        _held = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class time_limit:  # noqa: N801 - used as a function: `with time_limit(seconds):`
    """Run the block with `seconds` (default FILE_SECONDS) of wall-clock time at most (TimeLimitExceeded after that).

    A class, not a generator: it runs for every file and document of a catalog, and inside
    `time_limits` it costs one system call: the timer is set again by the next block (the
    handler ignores it meanwhile) and stopped when `time_limits` ends."""

    __slots__ = ("seconds", "_armed", "_installed", "_previous")

    def __init__(self, seconds: float | None = None) -> None:
        self.seconds = FILE_SECONDS if seconds is None else seconds

    def __enter__(self) -> None:
        global _running
        self._armed = self._installed = False
        if not _TIMERS or _running is not None or not _main_thread():
            return
        if not _held:  # outside time_limits: install it for this block
            if _outer_timer():
                return
            self._previous = signal.signal(signal.SIGALRM, _on_alarm)
            self._installed = True
        signal.setitimer(signal.ITIMER_REAL, self.seconds)
        _running = self.seconds
        self._armed = True

    def __exit__(self, *exception: object) -> None:
        global _running
        if self._armed:
            _running = None
            if self._installed:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, self._previous)
