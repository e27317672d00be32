"""SIGTERM as Ctrl-C: `kill`, a batch scheduler's time limit or `timeout` stop a run through the code
that saves what finished (exit 130 from the CLI, `fedmd-ray run --resume` continues it), instead of
dying mid-write or, once `ray.init` has installed its own handler, aborting with a stack dump."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises KeyboardInterrupt; the previous handler comes back after. Only in
    the main thread, where Python can handle signals (elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
