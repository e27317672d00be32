"""Parquet and JSON on disk, always written whole: temporary file, then rename.

A reader (or a crash) never sees a half-written `results.parquet`. The temporary file
is created next to its target with `O_CREAT | O_EXCL | O_NOFOLLOW` (Python's
`mkstemp`) and renamed over the target, so nothing is ever written through a link; a
link at the target itself is refused. Files get the permissions the umask allows
(colleagues on a shared filesystem can read results), not `mkstemp`'s 0600.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from fedmd_ray.analysis.schema import ADDED_COLUMNS, RESULT_SCHEMA
from fedmd_ray.errors import ConfigError, DataError, DiskFull
from fedmd_ray.outdir import RESULTS_FILE, SWEEP_FILE


def file_mode() -> int:
    """0o666 less the process's umask, read without changing it (Linux: /proc; elsewhere a set-and-restore,
    which is not thread-safe, hence only as the fallback)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # the disk, a quota or the file-size limit


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """`payload` as the whole of `path`: written to a temporary file next to it, then renamed over it.
    DiskFull (one message, no traceback) when the disk or a quota is full; the old file stays."""
    replace_files({path: payload})


def replace_files(files: dict[Path, bytes], remove: tuple[Path, ...] = ()) -> None:
    """Every file in `files` written whole, then all renamed into place, then `remove` deleted: the
    writes, which can fail (a full disk), all happen before the first old file is replaced, and
    renames need no space. Used alone for one file, and for a run's first save, which replaces a
    finished run's files (`--overwrite`) only once the new run's are all on disk."""
    staged: list[tuple[str, Path]] = []
    try:
        for path, payload in files.items():
            staged.append((_staged(path, payload), path))
        for tmp, path in staged:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
        raise
    for path in remove:
        path.unlink(missing_ok=True)


def _staged(path: Path, payload: bytes) -> str:
    """A temporary file next to `path` holding `payload`, synced to disk; its name."""
    if path.is_symlink():
        raise ConfigError(f"{path} is a symbolic link; fedmd_ray never writes through links: remove it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        if exc.errno in FULL:
            raise _full(exc, path, len(payload)) from None
        raise
    try:
        _write_all(fd, payload, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in FULL:
            raise _full(exc, path, len(payload)) from None
        raise
    return tmp


def _write_all(fd: int, payload: bytes, path: Path) -> None:
    """Write `payload` to the new file `fd` (for `path`), synced to disk, and close it."""
    os.fchmod(fd, file_mode())
    with os.fdopen(fd, "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())


def _full(exc: OSError, path: Path, size: int) -> DiskFull:
    try:
        free = f"; {shutil.disk_usage(path.parent).free:,} bytes are free there"
    except OSError:
        free = ""
    return DiskFull(f"cannot write {path}: {exc.strerror} ({size:,} bytes to write{free})")


def table_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def json_bytes(values: dict[str, Any]) -> bytes:
    return (json.dumps(values, indent=2, sort_keys=True) + "\n").encode()


def write_table(table: pa.Table, target: Path | str) -> None:
    """Parquet, written whole to a local path (temp file + rename) or a pyarrow-filesystem URI."""
    write_bytes_uri(str(target), table_bytes(table))


def write_json(values: dict[str, Any], path: Path) -> None:
    atomic_write_bytes(path, json_bytes(values))


def load_results(path: str | os.PathLike[str]) -> pa.Table:
    """A run's (or sweep's) result table from a Parquet file or the directory that holds it."""
    if "://" in str(path):
        return _result_table(pq.read_table(str(path)), str(path))
    target = Path(path)
    if target.is_dir():
        candidates = [target / RESULTS_FILE, target / SWEEP_FILE]
        found = next((c for c in candidates if c.exists()), None)
        if found is None:
            raise DataError(f"no results in {target}: expected {RESULTS_FILE} or {SWEEP_FILE} there")
        target = found
    if not target.exists():
        raise DataError(f"results file {target} does not exist")
    try:
        table = pq.read_table(target)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{target} is not a readable Parquet file: {exc}") from exc
    return _result_table(table, str(target))


def _result_table(table: pa.Table, where: str) -> pa.Table:
    """`table` if it has the result schema's columns, of compatible types, and rows (summaries index
    round 0); DataError naming the first column that is missing or of another kind. Columns added
    since the first release (`schema.ADDED_COLUMNS`) come back as nulls when an older table lacks them."""
    for name in ADDED_COLUMNS:
        if name not in table.column_names:
            field = RESULT_SCHEMA.field(name)
            table = table.append_column(field, pa.nulls(table.num_rows, field.type))
    missing = [name for name in RESULT_SCHEMA.names if name not in table.column_names]
    if missing or table.num_rows == 0:
        what = f"lacks the columns {missing}" if missing else "has no rows"
        raise DataError(f"{where} is not a fedmd_ray result table: it {what}")
    for field in RESULT_SCHEMA:
        actual = table.schema.field(field.name).type
        if not _compatible(actual, field.type):
            raise DataError(
                f"{where} is not a fedmd_ray result table: column {field.name!r} holds {actual}, where a result "
                f"table has {field.type}"
            )
    return table.replace_schema_metadata(RESULT_SCHEMA.metadata)  # pandas: `round` as Int32, as written now


def _compatible(actual: pa.DataType, expected: pa.DataType) -> bool:
    """Types a result table may have been written with (pandas writes int64; all-null columns are null)."""
    kinds: tuple[Any, ...] = (pa.types.is_null,)
    if pa.types.is_string(expected):
        kinds += (pa.types.is_string, pa.types.is_large_string, pa.types.is_dictionary)
    elif pa.types.is_integer(expected):
        kinds += (pa.types.is_integer,)
    elif pa.types.is_boolean(expected):
        kinds += (pa.types.is_boolean,)
    else:
        kinds += (pa.types.is_floating, pa.types.is_integer)
    return any(bool(kind(actual)) for kind in kinds)


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and path for a local path or a URI (s3://, gs://, file://, ...)."""
    if "://" not in uri:
        return pafs.LocalFileSystem(), str(Path(uri).expanduser().resolve())
    fs, path = pafs.FileSystem.from_uri(uri)
    return fs, str(path)


def join_uri(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def write_bytes_uri(uri: str, payload: bytes) -> None:
    """Write a whole file to a local path (atomically) or a pyarrow-filesystem URI."""
    fs, path = _filesystem(uri)
    if isinstance(fs, pafs.LocalFileSystem):
        atomic_write_bytes(Path(path), payload)
        return
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as out:  # object stores publish a key only when it is complete
        out.write(payload)


def read_bytes_uri(uri: str) -> bytes | None:
    """The file's bytes, or None if it does not exist."""
    fs, path = _filesystem(uri)
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as stream:
        data: bytes = stream.read()
    return data


def list_uri(uri: str, suffix: str) -> list[str]:
    """Files directly under a directory URI whose names end with `suffix` (sorted)."""
    fs, path = _filesystem(uri)
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    prefix = uri.rstrip("/")
    return sorted(join_uri(prefix, i.base_name) for i in infos if i.base_name.endswith(suffix))
