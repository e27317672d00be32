"""A run's (or a sweep's) output directory: every refusal before, every write after.

`check_out_dir` finds everything that would stop a run from writing its directory
without touching the disk: a path that cannot be expanded or is too long, a file where a
directory should be, a parent that is not writable, a symbolic link where one of our
files should be, a directory another run holds, results that would be replaced without
`overwrite`. `claim_out_dir` is called once the run is certain to start (data, models,
cluster all checked, actors up): only then is the directory created, locked, the old
run's files removed and new ones written.

Every file written here is created next to its target under a fresh temporary name with
`O_CREAT | O_EXCL | O_NOFOLLOW` and then renamed over it (`atomic_write_bytes`), so a
link planted at a target is never written through: it is refused, or replaced by the
rename, never followed. The lock file is opened with `O_NOFOLLOW`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path
from typing import Iterator

from fedmd_ray.errors import ConfigError

LOCK_FILE = ".fedmd_ray.lock"  # held (flock) by the run or sweep writing the directory
OWNED_FILES = ("results.parquet", "checkpoint.pt", "config.json", "strategy_state.parquet", "sweep.parquet",
               "summary.parquet", "fedmd_sweep.json", LOCK_FILE)  # fmt: skip


def as_path(value: object, what: str) -> Path:
    """`value` (str or os.PathLike) as an absolute path with `~` expanded; TypeError for other types,
    ConfigError for a path that cannot be expanded or is too long for the filesystem."""
    if not isinstance(value, (str, os.PathLike)) or isinstance(value, bytes):
        raise TypeError(f"{what} must be a path (str or os.PathLike), got {type(value).__name__}: {value!r}")
    text = os.fspath(value)
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{what}={text!r} is not a usable path")
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
        raise ConfigError(f"{what}: the name {long[0][:40]!r}... is {len(os.fsencode(long[0]))} bytes long; "
                          f"this filesystem allows {name_max}")
    if len(os.fsencode(str(path))) + 64 > path_max:  # room for our own file names below it
        raise ConfigError(f"{what}: the path is {len(os.fsencode(str(path)))} bytes long; this filesystem allows "
                          f"{path_max} in all")


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path("/")


def check_writable_dir(directory: object, what: str) -> Path:
    """The directory as an absolute path if it is one, or can be created, and is writable; else
    ConfigError. Reads only."""
    path = as_path(directory, what)
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
    if not os.path.lexists(path):
        return path  # nothing there yet: nothing to refuse
    for name in OWNED_FILES:
        if (path / name).is_symlink():
            raise ConfigError(
                f"{path / name} is a symbolic link; a run never writes through links: remove it or choose another "
                "directory"
            )
    holder = _lock_holder(path)
    if holder is not None:
        raise ConfigError(
            f"{what}={str(out_dir)!r} is in use by another run or sweep (pid {holder}); wait for it to finish or "
            "choose another directory"
        )
    other = "results.parquet" if sweep else "sweep.parquet"
    if (path / other).exists():
        raise ConfigError(
            f"{what}={str(out_dir)!r} holds a {'run' if sweep else 'sweep'}'s {other}; a "
            f"{'sweep' if sweep else 'run'} needs a directory of its own: choose another one"
        )
    if (path / "results.parquet").exists() and not (replace or resume):
        raise ConfigError(
            f"{what}={str(out_dir)!r} already holds a run's results.parquet; choose another directory "
            "or pass --overwrite (overwrite=True) to replace it"
        )
    return path


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
def claim_out_dir(path: Path, *, remove: tuple[str, ...] = (), what: str = "out_dir") -> Iterator[Path]:
    """Create `path`, hold its lock (an OS lock: a killed run never leaves it locked) and remove the
    files named in `remove` (an overwritten run's: a resume must never find them), for the body."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigError(f"{path / LOCK_FILE} is a symbolic link; a run never writes through links") from None
        raise ConfigError(f"{what}={str(path)!r} is not writable: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise ConfigError(
                f"{what}={str(path)!r} is in use by another run or sweep (pid {holder}); wait for it to finish or "
                "choose another directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        for name in remove:
            (path / name).unlink(missing_ok=True)
        try:
            yield path
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
