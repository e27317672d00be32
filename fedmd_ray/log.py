"""One logger, `fedmd_ray`, for progress (INFO), warnings and failures.

The library only logs: it prints nothing unless asked, by `run(..., verbose=True)` or by
the user's own logging configuration (`logging.basicConfig(level=logging.INFO)` shows
the progress lines). The CLI installs one stderr handler (`configure`): `-v` for debug
output and Ray's and Tune's own banners, `-q` for warnings only, or
`FEDMD_RAY_LOG_LEVEL=DEBUG|INFO|WARNING|ERROR`. Ray's start-up lines (the token
warning, "Started a local Ray instance") and Tune's experiment box are quiet unless the
logger is at DEBUG.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Iterator

LOGGER = logging.getLogger("fedmd_ray")
LOGGER.addHandler(logging.NullHandler())  # a library configures nothing by default
ENV_LEVEL = "FEDMD_RAY_LOG_LEVEL"


class _Format(logging.Formatter):
    """Progress lines as they are; warnings and errors with their level."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {text}"


def _handler() -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Format("%(message)s"))
    handler.set_name("fedmd_ray")
    return handler


def level_from(verbose: int = 0, quiet: bool = False) -> int:
    """The CLI's level: -v debug, -q warnings, else $FEDMD_RAY_LOG_LEVEL, else INFO."""
    if verbose:
        return logging.DEBUG
    if quiet:
        return logging.WARNING
    name = os.environ.get(ENV_LEVEL, "INFO").upper()
    level = logging.getLevelName(name)
    if not isinstance(level, int):
        from fedmd_ray.errors import ConfigError

        raise ConfigError(f"{ENV_LEVEL}={name!r} is not a log level; use DEBUG, INFO, WARNING or ERROR")
    return level


@contextlib.contextmanager
def configured(level: int) -> Iterator[None]:
    """The `fedmd_ray` logger to stderr at `level`, alone (not also to the root logger), for the body:
    what a CLI command runs under. The previous configuration comes back afterwards."""
    saved = (LOGGER.level, LOGGER.propagate)
    handler = _handler()
    LOGGER.setLevel(level)
    LOGGER.addHandler(handler)
    LOGGER.propagate = False
    try:
        yield
    finally:
        LOGGER.removeHandler(handler)
        LOGGER.setLevel(saved[0])
        LOGGER.propagate = saved[1]


@contextlib.contextmanager
def verbosity(verbose: bool | None) -> Iterator[None]:
    """For one call: `True` shows progress on stderr (unless a handler already does), `False` shows
    only warnings, `None` leaves the logging configuration as the user set it."""
    if verbose is None:
        yield
        return
    level = LOGGER.level
    added = None
    if verbose:
        if LOGGER.getEffectiveLevel() > logging.INFO:
            LOGGER.setLevel(logging.INFO)
        if not any(h.get_name() == "fedmd_ray" for h in LOGGER.handlers):
            added = _handler()
            LOGGER.addHandler(added)
    else:
        LOGGER.setLevel(max(logging.WARNING, LOGGER.getEffectiveLevel()))
    try:
        yield
    finally:
        LOGGER.setLevel(level)
        if added is not None:
            LOGGER.removeHandler(added)


class Relay(logging.Handler):
    """Keeps the records of a process that logs for another (the driver actor) until that one takes
    them (`take`) and emits them itself (`emit_taken`). Ray forwards an actor's stderr on its own
    schedule: lines came after the progress line they belong before, and the last ones were lost
    when the command ended."""

    def __init__(self) -> None:
        super().__init__()
        self._records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        # formatted here: arguments may not pickle, and a traceback object never does
        text = record.exc_text or (logging.Formatter().formatException(record.exc_info) if record.exc_info else None)
        self._records.append(logging.makeLogRecord(
            {**record.__dict__, "msg": record.getMessage(), "args": None, "exc_info": None, "exc_text": text}
        ))

    def take(self) -> list[logging.LogRecord]:
        """The records since the last call; safe while another thread logs."""
        self.acquire()
        try:
            records, self._records = self._records, []
        finally:
            self.release()
        return records


def relay_from_here(level: int) -> Relay:
    """In a process that logs for the caller: the `fedmd_ray` logger at the caller's level, kept
    for the caller (`Relay`) instead of written to this process's stderr."""
    relay = Relay()
    LOGGER.setLevel(level)
    LOGGER.handlers = [relay]
    LOGGER.propagate = False
    return relay


def emit_taken(records: list[logging.LogRecord]) -> None:
    """Records another process kept (`Relay.take`), through this process's logging configuration."""
    for record in records:
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)


def chatty() -> bool:
    """Whether Ray's and Tune's own output should show (the logger is at DEBUG)."""
    return LOGGER.isEnabledFor(logging.DEBUG)


def ray_logging_level() -> int:
    """What `ray.init(logging_level=...)` gets: Ray's INFO lines only in debug mode."""
    return logging.INFO if chatty() else logging.ERROR
