"""A run's (or a sweep's) output directory: every refusal before, every write after.

`check_out_dir` finds everything that would stop a run from writing its directory
without touching the disk: a path that cannot be expanded or is too long, a file where a
directory should be, a parent that is not writable, a symbolic link where one of our
files should be, a directory another run holds, results that would be replaced without
`overwrite`. It looks at the directory the path really names: resolved as the OS will
resolve it once the missing parents exist (`nothere/../victim` is `victim`; links
followed; a link to nothing refused), and that resolved path is the one written.
`claim_out_dir` is called once the run is certain to start (data, models, cluster all
checked, actors up): only then is the directory created and locked, and under the lock
the same checks run again (two runs started on one fresh directory: the second is
refused) and leftovers of a killed write (`.results.parquet.*.tmp`) are removed.

Every file written here is created next to its target under a fresh temporary name with
`O_CREAT | O_EXCL | O_NOFOLLOW` and then renamed over it (`atomic_write_bytes`), so a
link planted at a target is never written through: it is refused, or replaced by the
rename, never followed. The lock file is opened with `O_NOFOLLOW`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import os
from pathlib import Path
from typing import Iterator

from fedmd_ray.errors import ConfigError

# What a run or a sweep writes in its directory (one definition: every module names them from here).
RESULTS_FILE = "results.parquet"  # a run's long table
CHECKPOINT_FILE = "checkpoint.pt"  # what a resume needs after the last finished round
CONFIG_FILE = "config.json"  # the run's config, identity and environment
STRATEGY_STATE_FILE = "strategy_state.parquet"  # the strategy's state, round by round
SWEEP_FILE = "sweep.parquet"  # every trial's long table
SUMMARY_FILE = "summary.parquet"  # one row per trial
SPEC_FILE = "fedmd_sweep.json"  # what a sweep was started with (a resume must match it)
LOCK_FILE = ".fedmd_ray.lock"  # held (flock) by the run or sweep writing the directory
MODELS_DIR = "models"  # each party's model (`party_models`)
OWNED_FILES = (RESULTS_FILE, CHECKPOINT_FILE, CONFIG_FILE, STRATEGY_STATE_FILE, SWEEP_FILE, SUMMARY_FILE, SPEC_FILE,
               LOCK_FILE, MODELS_DIR)  # fmt: skip


def as_path(value: object, what: str) -> Path:
    """`value` (str or os.PathLike) as an absolute path with `~` expanded; TypeError for other types,
    ConfigError for a path that cannot be expanded or is too long for the filesystem."""
    if not isinstance(value, (str, os.PathLike)) or isinstance(value, bytes):
        raise TypeError(f"{what} must be a path (str or os.PathLike), got {type(value).__name__}: {value!r}")
    text = os.fspath(value)
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{what}={text!r} is not a usable path")
    if "\0" in text:
        raise ConfigError(f"{what}={text!r} contains a NUL byte, which no path can hold")
    try:
        path = Path(text).expanduser().absolute()
    except RuntimeError as exc:  # '~nosuchuser/x'
        raise ConfigError(f"{what}={text!r}: cannot expand '~' ({exc})") from None
    _check_lengths(path, what)
    return path


def _check_lengths(path: Path, what: str) -> None:
    ancestor = _existing_ancestor(path)
    try:
        name_max = os.pathconf(ancestor, "PC_NAME_MAX")
        path_max = os.pathconf(ancestor, "PC_PATH_MAX")
    except (OSError, ValueError):
        name_max, path_max = 255, 4096
    long = [part for part in path.parts if len(os.fsencode(part)) > name_max]
    if long:
        raise ConfigError(
            f"{what}: the name {long[0][:40]!r}... is {len(os.fsencode(long[0]))} bytes long; "
            f"this filesystem allows {name_max}"
        )
    if len(os.fsencode(str(path))) + 64 > path_max:  # room for our own file names below it
        raise ConfigError(
            f"{what}: the path is {len(os.fsencode(str(path)))} bytes long; this filesystem allows {path_max} in all"
        )


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path("/")


def resolve_dir(value: object, what: str) -> Path:
    """The directory `value` names, as the OS will resolve it once its missing parents are created:
    absolute, links followed, `..` applied after them (`nothere/../victim` is `victim`, however
    `nothere` is created later). A link to nothing is refused: writing through it would create
    its target somewhere the user did not name."""
    path = as_path(value, what)
    if os.path.islink(path) and not os.path.exists(path):
        raise ConfigError(
            f"{what}={str(value)!r} is a symbolic link to {os.readlink(path)!r}, which does not exist; "
            "create that directory or choose another one"
        )
    return Path(os.path.realpath(path))


def check_writable_dir(directory: object, what: str) -> Path:
    """The directory, resolved (`resolve_dir`), if it is one, or can be created, and is writable; else
    ConfigError. Reads only."""
    path = resolve_dir(directory, what)
    ancestor = _existing_ancestor(path)
    if ancestor == path and not path.is_dir():
        raise ConfigError(f"{what}={str(directory)!r} is a file, not a directory")
    if ancestor != path and not ancestor.is_dir():
        raise ConfigError(f"{what}={str(directory)!r}: {ancestor} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(f"{what}={str(directory)!r} is not writable: no write permission on {ancestor}")
    return path


def check_out_dir(
    out_dir: object, *, replace: bool, resume: bool = False, what: str = "out_dir", sweep: bool = False
) -> Path:
    """The directory as an absolute path if a run (a sweep, with `sweep`) may write it, else ConfigError;
    reads only. `replace`: results already there may be replaced (`--overwrite`); `resume`: they are
    continued. A run's and a sweep's results never share a directory (`report` reads one of them)."""
    path = check_writable_dir(out_dir, what)
    shown = repr(str(out_dir)) + ("" if as_path(out_dir, what) == path else f" (that is {path})")
    _check_links(path)
    holder = _lock_holder(path) if os.path.lexists(path) else None
    if holder is not None:
        raise ConfigError(
            f"{what}={shown} is in use by another run or sweep (pid {holder}); wait for it to finish or "
            "choose another directory"
        )
    _check_contents(path, replace=replace, resume=resume, sweep=sweep, what=what, shown=shown)
    return path


def _check_contents(path: Path, *, replace: bool, resume: bool, sweep: bool, what: str, shown: str) -> None:
    """What is in the (resolved) directory, checked before the run and again under its lock."""
    if not os.path.lexists(path):
        return  # nothing there yet: nothing to refuse
    _check_links(path)
    other = RESULTS_FILE if sweep else SWEEP_FILE
    if (path / other).exists():
        raise ConfigError(
            f"{what}={shown} holds a {'run' if sweep else 'sweep'}'s {other}; a "
            f"{'sweep' if sweep else 'run'} needs a directory of its own: choose another one"
        )
    if (path / RESULTS_FILE).exists() and not (replace or resume):
        raise ConfigError(
            f"{what}={shown} already holds a run's results.parquet; choose another directory "
            "or pass --overwrite (overwrite=True) to replace it"
        )


def _check_links(path: Path) -> None:
    for name in OWNED_FILES:
        if (path / name).is_symlink():
            raise ConfigError(
                f"{path / name} is a symbolic link; a run never writes through links: remove it or choose another "
                "directory"
            )


def _lock_holder(path: Path) -> str | None:
    """The pid written by the process holding the directory's lock, or None when nobody holds it."""
    try:
        fd = os.open(path / LOCK_FILE, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read the lock file {path / LOCK_FILE}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextlib.contextmanager
def claim_out_dir(
    path: Path, *, replace: bool = False, resume: bool = False, sweep: bool = False, what: str = "out_dir"
) -> Iterator[Path]:
    """Create `path` (resolved by `check_out_dir`) and hold its lock for the body (an OS lock: a killed
    run never leaves it locked). Under the lock, its contents are checked again with the flags of
    `check_out_dir` (another run may have written there since) and the temporary files of a killed
    write are removed. The lock file goes when the body ends: a finished run leaves only its files."""
    fd = _locked(path, what)
    try:
        _check_contents(path, replace=replace, resume=resume, sweep=sweep, what=what, shown=repr(str(path)))
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        remove_leftovers(path)
        try:
            yield path
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path / LOCK_FILE)  # unlinked while still held: nobody can lock it in between
    finally:
        os.close(fd)  # releases the lock


def _locked(path: Path, what: str) -> int:
    """A descriptor of `path`'s lock file, locked. A lock file unlinked by the run that held it (between
    our open and our lock) is not the directory's lock any more: open it again."""
    for _ in range(10):
        try:
            path.mkdir(parents=True, exist_ok=True)
            fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ConfigError(f"{path / LOCK_FILE} is a symbolic link; a run never writes through links") from None
            raise ConfigError(f"{what}={str(path)!r} is not writable: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ConfigError(
                f"{what}={str(path)!r} is in use by another run or sweep (pid {holder}); wait for it to finish or "
                "choose another directory"
            ) from None
        with contextlib.suppress(OSError):
            if os.fstat(fd).st_ino == os.stat(path / LOCK_FILE, follow_symlinks=False).st_ino:
                return fd
        os.close(fd)
    raise ConfigError(f"{what}={str(path)!r}: its lock file keeps changing; another program is writing there")


def remove_leftovers(path: Path) -> None:
    """The temporary files of writes that a killed process never finished (`.results.parquet.x1y2.tmp`,
    see `analysis.io.atomic_write_bytes`): only ever ours, and never complete."""
    for name in OWNED_FILES:
        for leftover in path.glob(f".{glob.escape(name)}.*.tmp"):
            with contextlib.suppress(OSError):
                leftover.unlink()
