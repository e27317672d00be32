"""One logger, `fedmd_ray`, for progress (INFO), warnings and failures.

`run()` and `sweep()` show their progress on stderr by default, as Tune and Lightning do,
unless the user configured logging (a level or handler on `fedmd_ray`, or handlers on the root
logger, e.g. `logging.basicConfig`): then that configuration decides. `verbose=False` keeps
warnings only; `verbose=True` shows progress whatever the configuration. The CLI installs one
stderr handler (`configured`), and the summary on stdout: `-v` for debug output and Ray's and
Tune's own banners, `-q` for warnings only, or
`FEDMD_RAY_LOG_LEVEL=DEBUG|INFO|WARNING|ERROR`. Ray's start-up lines (the token
warning, "Started a local Ray instance") and Tune's experiment box are quiet unless the
logger is at DEBUG.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any, Iterator

LOGGER = logging.getLogger("fedmd_ray")
LOGGER.addHandler(logging.NullHandler())  # a library configures nothing by default
SUMMARY = logging.getLogger("fedmd_ray.summary")  # a run's or sweep's summary and `results:` path: the CLI's stdout
ENV_LEVEL = "FEDMD_RAY_LOG_LEVEL"


class _Format(logging.Formatter):
    """Progress lines as they are; warnings and errors with their level."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {text}"


class _Lines(logging.StreamHandler):  # type: ignore[type-arg]
    """Progress lines on stderr; on a terminal through `tqdm.write`, which keeps a progress bar
    (`progress_bar`) below them instead of breaking it."""

    def emit(self, record: logging.LogRecord) -> None:
        if not on_terminal(self.stream):
            super().emit(record)
            return
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # as StreamHandler.emit: a failing log line never stops the run
            self.handleError(record)


def on_terminal(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


def _handler() -> logging.Handler:
    handler = _Lines(sys.stderr)
    handler.setFormatter(_Format("%(message)s"))
    handler.set_name("fedmd_ray")
    return handler


def progress_bar(total: int, what: str, unit: str) -> Any:
    """A tqdm bar on stderr when our progress lines go to a terminal (`_Lines`), else None: plain lines
    only, in a file, a pipe, a notebook's captured output or under the user's own logging."""
    ours = [h for h in LOGGER.handlers if h.get_name() == "fedmd_ray"]
    if not ours or not LOGGER.isEnabledFor(logging.INFO) or not on_terminal(getattr(ours[0], "stream", None)):
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=what, unit=unit, leave=False, file=getattr(ours[0], "stream", sys.stderr))


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
    """What a CLI command runs under, for the body: the `fedmd_ray` logger to stderr at `level`, alone (not
    also to the root logger), and its summary (`SUMMARY`) to stdout at every level, the output convention:
    progress and warnings on stderr, the result on stdout. The previous configuration comes back afterwards."""
    saved = (LOGGER.level, LOGGER.propagate, SUMMARY.level, SUMMARY.propagate)
    handler, result = _handler(), logging.StreamHandler(sys.stdout)
    handler.addFilter(lambda record: record.name != SUMMARY.name)
    LOGGER.setLevel(level)
    LOGGER.addHandler(handler)
    LOGGER.propagate = False
    SUMMARY.setLevel(logging.INFO)
    SUMMARY.addHandler(result)
    SUMMARY.propagate = False
    try:
        yield
    finally:
        LOGGER.removeHandler(handler)
        SUMMARY.removeHandler(result)
        LOGGER.setLevel(saved[0])
        LOGGER.propagate = saved[1]
        SUMMARY.setLevel(saved[2])
        SUMMARY.propagate = saved[3]


@contextlib.contextmanager
def verbosity(verbose: bool | None) -> Iterator[None]:
    """For one call: `True` shows progress on stderr (unless a handler already does), `False` shows
    only warnings, `None` shows progress unless the user configured logging (`user_configured`)."""
    if verbose is None and user_configured():
        yield
        return
    level = LOGGER.level
    added = None
    if verbose is not False:  # True, or None with logging left alone
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


def user_configured() -> bool:
    """Whether the user set up logging: a level or a handler of their own on `fedmd_ray` (ours and the
    library's NullHandler aside), or any handler on the root logger (`logging.basicConfig`, pytest)."""
    own = [h for h in LOGGER.handlers if not isinstance(h, logging.NullHandler) and h.get_name() != "fedmd_ray"]
    return LOGGER.level != logging.NOTSET or bool(own) or bool(logging.getLogger().handlers)


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
        self._records.append(
            logging.makeLogRecord(
                {**record.__dict__, "msg": record.getMessage(), "args": None, "exc_info": None, "exc_text": text}
            )
        )

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
