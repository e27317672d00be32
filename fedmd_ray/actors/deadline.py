"""`round_timeout_s` for parties in this process (`backend="local"`, a sweep trial's own parties).

Under Ray a host that does not answer in time is killed. In this process nothing can be
killed, so a task runs under an alarm: in the main thread, SIGALRM raises `Overdue` inside
the party's code once the time is up (Python checks signals between bytecodes, so a
torch kernel in progress finishes first); elsewhere (a thread cannot receive signals) the
task's time is checked when it returns. Either way the host counts as failed, like a
Ray host that did not answer, and `on_party_failure` decides.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from types import FrameType
from typing import Iterator

from fedmd_ray.errors import Overdue


@contextlib.contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Raise `Overdue` in the body after `seconds` (None: never). An alarm set before (pytest-timeout's,
    say) keeps its own time: whichever is due first fires, and the outer one is re-armed after."""
    if seconds is None:
        yield
        return
    start = time.monotonic()
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        if time.monotonic() - start > seconds:
            raise Overdue(f"answered after {time.monotonic() - start:.0f} s, more than round_timeout_s={seconds:g}")
        return
    due = start + seconds

    def expire(signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if now >= due:
            raise Overdue(f"no answer within {seconds:g} s")
        signal.setitimer(signal.ITIMER_REAL, due - now)  # the outer alarm's time came first: ours stays armed
        if callable(previous):
            previous(signum, frame)

    previous = signal.signal(signal.SIGALRM, expire)
    outer_delay, outer_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    if outer_delay:
        signal.setitimer(signal.ITIMER_REAL, min(seconds, outer_delay))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_delay:
            signal.setitimer(signal.ITIMER_REAL, max(outer_delay - (time.monotonic() - start), 1e-3), outer_interval)
