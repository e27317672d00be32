"""Parquet and JSON on disk, always written whole: temporary file, then rename.

A reader (or a crash) never sees a half-written `results.parquet`.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fedmd_ray.errors import DataError

RESULTS_FILE = "results.parquet"
CONFIG_FILE = "config.json"


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_table(table: pa.Table, path: Path) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def write_json(values: dict[str, Any], path: Path) -> None:
    atomic_write_bytes(path, (json.dumps(values, indent=2, sort_keys=True) + "\n").encode())


def load_results(path: str | os.PathLike[str]) -> pa.Table:
    """A run's (or sweep's) result table from a Parquet file or the directory that holds it."""
    target = Path(path)
    if target.is_dir():
        candidates = [target / RESULTS_FILE, target / "sweep.parquet"]
        found = next((c for c in candidates if c.exists()), None)
        if found is None:
            raise DataError(f"no results in {target}: expected {RESULTS_FILE} or sweep.parquet there")
        target = found
    if not target.exists():
        raise DataError(f"results file {target} does not exist")
    try:
        return pq.read_table(target)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{target} is not a readable Parquet file: {exc}") from exc
