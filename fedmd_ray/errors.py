"""Exceptions that the CLI turns into one clear message and exit code 2.

Everything a user can cause (bad config, missing data, a cluster too small)
raises a subclass of :class:`FedMDError`; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

from typing import Any


class FedMDError(Exception):
    """Base class of the errors a user can fix."""


class ConfigError(FedMDError, ValueError):
    """A config field has a value that is not allowed."""


class DataError(FedMDError):
    """A data set is missing, corrupt, or cannot serve the requested split."""


class ResourceError(FedMDError):
    """The cluster cannot host what the run asks for (it would hang forever)."""


class PartyFailure(FedMDError):
    """A party failed and the policy (`on_party_failure=fail`) stops the run; it can be resumed.
    `detail` is the party's traceback: carried by the error (`run` logs it once, as a warning),
    since a log line of the remote driver may be lost when the process stops right after."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:  # across Ray: the detail travels with the message
        return (type(self), (str(self), self.detail))


class NoPartyLeft(FedMDError):
    """Every party failed and was dropped: the run stops with the rows it has."""


class TrialsFailed(FedMDError):
    """Trials of a sweep failed: raised once every trial has ended and the tables are written, so a
    failure never looks like a finished sweep. `table` holds every trial's rows (`trial_status` says
    which failed; None when no trial wrote any), `failed` the failed trials' ids."""

    def __init__(self, message: str, table: Any, failed: list[str]) -> None:
        super().__init__(message)
        self.table = table
        self.failed = failed


class PluginExit(Exception):
    """A plug-in called `sys.exit()` (or raised another BaseException that is not an interrupt): a failure
    of that plug-in like any exception it raises (`plugins.plugin_code`), never a finished run."""


class Overdue(BaseException):
    """A task of parties in this process ran past `round_timeout_s` (`actors.deadline`). A BaseException,
    so that no `except Exception` in a party's or a plug-in's code can swallow it."""


class DiskFull(FedMDError):
    """A file of a run or sweep could not be written: the disk, a quota or the file-size limit is full.
    What was on disk before the write stays as it was (see `analysis.io.replace_files`)."""


class PluginError(FedMDError):
    """A plug-in (a model, data source or strategy) failed during a run; the message names it and the
    round. The run stops with its checkpoint; a fixed plug-in is a new run (its code is part of the
    run's identity), so it starts again."""
