"""The FedMD paper's sources (CIFAR-10/100, EMNIST Letters) on tiny fixtures in tmp_path."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import pickletools
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from scipy.io import savemat

from fedmd_ray.data import load_source, resolve, source_info, source_names, sources
from fedmd_ray.data.formats import read_py2_pickle
from fedmd_ray.errors import DataError

_RECONSTRUCT = np.zeros(1).__reduce__()[0]  # numpy's _reconstruct, wherever it lives
_PurePickler: Any = pickle._Pickler  # the pure-Python pickler, whose dispatch we extend
_PY2_GLOBALS = {"numpy ndarray", "numpy dtype", "numpy.core.multiarray _reconstruct"}


def _latin1(v: Any) -> Any:
    return v.encode("latin1") if isinstance(v, str) else v


class _Py2Pickler(_PurePickler):  # type: ignore[misc]
    """Writes what Python 2 cPickle wrote for CIFAR: bytes as py2 str (BINSTRING, no
    _codecs.encode global), arrays via numpy.core.multiarray._reconstruct with raw bytes."""

    dispatch = dict(_PurePickler.dispatch)

    def save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + n.to_bytes(4, "little") + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            state = (1, obj.shape, obj.dtype, False, obj.tobytes())
            return _RECONSTRUCT, (np.ndarray, (0,), b"b"), state
        if isinstance(obj, np.dtype):
            func, args, state = cast(tuple[Any, ...], obj.__reduce__())
            return func, tuple(map(_latin1, args)), tuple(map(_latin1, state))
        return NotImplemented


def _write_py2_pickle(path: Path, obj: Any) -> None:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    data = buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    names = {str(arg) for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"}
    assert names <= _PY2_GLOBALS  # what real CIFAR files reference (none for `meta`, no _codecs)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _rgb_rows(n: int, r: int = 255, g: int = 0, b: int = 128) -> np.ndarray:
    """(n, 3072) CIFAR rows whose R plane is r, G plane g, B plane b."""
    return np.repeat(np.array([r, g, b], dtype=np.uint8), 1024)[None].repeat(n, axis=0)


def _write_cifar10(root: Path) -> None:
    d = root / "cifar-10-batches-py"
    for i in range(1, 6):
        rows = _rgb_rows(2)
        rows[0, 1] = 7  # R plane, row 0, column 1 of the batch's first image
        batch = {b"batch_label": b"training batch", b"data": rows,
                 b"labels": [i, (i + 5) % 10], b"filenames": [b"a.png", b"b.png"]}  # fmt: skip
        _write_py2_pickle(d / f"data_batch_{i}", batch)
    _write_py2_pickle(d / "test_batch", {b"data": _rgb_rows(3, 0, 255, 0), b"labels": [9, 0, 3]})


def _write_cifar100(root: Path, meta: bool) -> None:
    d = root / "cifar-100-python"
    _write_py2_pickle(d / "train", {b"data": _rgb_rows(4), b"fine_labels": [0, 99, 91, 5],
                                    b"coarse_labels": [4, 13, 1, 19]})  # fmt: skip
    _write_py2_pickle(d / "test", {b"data": _rgb_rows(2), b"fine_labels": [1, 2],
                                   b"coarse_labels": [1, 18]})  # fmt: skip
    if meta:
        meta_dict = {b"fine_label_names": [f"f{i}".encode() for i in range(100)],
                     b"coarse_label_names": [f"c{i}".encode() for i in range(20)]}  # fmt: skip
        _write_py2_pickle(d / "meta", meta_dict)


def _emnist_images(n: int) -> np.ndarray:
    """(n, 784) stored images: only the first 28 stored bytes (row 0 when C-reshaped) are bright."""
    images = np.zeros((n, 784), dtype=np.uint8)
    images[:, :28] = 255
    return images


def _assert_first_column_bright(x: np.ndarray) -> None:
    """Pinned: stored row 0 comes out as column 0 (the reference's reshape(..., order="F"))."""
    assert x.shape[1:] == (1, 28, 28)
    assert (x[:, 0, :, 0] == 1.0).all()
    assert x[:, 0, :, 1:].sum() == 0.0


# ---- cifar ---------------------------------------------------------------------------


def test_cifar10_round_trip(tmp_path: Path) -> None:
    _write_cifar10(tmp_path)
    data = load_source("cifar10", tmp_path)
    assert data.train.x.shape == (10, 3, 32, 32) and data.test.x.shape == (3, 3, 32, 32)
    assert data.train.x.dtype == np.float32 and data.train.y.dtype == np.int64
    assert data.train.x.flags.c_contiguous
    assert (data.train.x[:, 0] == 1.0).sum() == 10 * 1024 - 5  # R plane, minus the marked pixels
    assert (data.train.x[:, 1] == 0.0).all()
    np.testing.assert_array_equal(data.train.x[:, 2], np.float32(128) / np.float32(255))
    np.testing.assert_array_equal(data.train.x[::2, 0, 0, 1], np.float32(7) / np.float32(255))
    assert data.train.x[0, 0, 1, 0] == 1.0  # byte 1 is (row 0, col 1), not (row 1, col 0)
    assert (data.test.x[:, 1] == 1.0).all() and data.test.x[:, [0, 2]].sum() == 0.0
    np.testing.assert_array_equal(data.train.y, [1, 6, 2, 7, 3, 8, 4, 9, 5, 0])
    np.testing.assert_array_equal(data.test.y, [9, 0, 3])
    assert data.class_names[:2] == ("airplane", "automobile") and data.class_names[-1] == "truck"
    assert data.train.groups is None and data.test.groups is None
    assert source_info("cifar10").image_shape == data.train.x.shape[1:]


@pytest.mark.parametrize("meta", [True, False])
def test_cifar100_fine_labels_and_coarse_groups(tmp_path: Path, meta: bool) -> None:
    _write_cifar100(tmp_path, meta)
    data = load_source("cifar100", tmp_path)
    assert data.train.x.shape == (4, 3, 32, 32) and data.test.x.shape == (2, 3, 32, 32)
    np.testing.assert_array_equal(data.train.y, [0, 99, 91, 5])
    np.testing.assert_array_equal(data.test.y, [1, 2])
    assert data.train.groups is not None and data.test.groups is not None
    assert data.train.groups.dtype == np.int64
    np.testing.assert_array_equal(data.train.groups, [4, 13, 1, 19])
    np.testing.assert_array_equal(data.test.groups, [1, 18])
    for arr in (data.train.groups, data.train.x, data.train.y):
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 0
    if meta:
        assert data.class_names == tuple(f"f{i}" for i in range(100))
    else:
        assert data.class_names == source_info("cifar100").class_names
        assert len(data.class_names) == 100 and data.class_names[91] == "trout"
        assert data.class_names[:2] == ("apple", "aquarium_fish") and data.class_names[-1] == "worm"


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (f"touch {self.marker}",)


def test_malicious_cifar_pickle_is_refused_without_running(tmp_path: Path) -> None:
    _write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    bad.write_bytes(pickle.dumps({b"data": _Evil(marker), b"labels": [0]}, protocol=2))
    with pytest.raises(DataError, match="not allowed") as err:
        load_source("cifar10", tmp_path)
    assert str(bad.resolve()) in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("damage", "message"),
    [(lambda b: b[:-20], "corrupt"), (lambda b: b[: len(b) // 2], "corrupt"), (lambda b: b"garbage", "corrupt")],
)
def test_corrupt_cifar_pickle_names_the_file(tmp_path: Path, damage: Any, message: str) -> None:
    _write_cifar100(tmp_path, meta=False)
    bad = tmp_path / "cifar-100-python" / "test"
    bad.write_bytes(damage(bad.read_bytes()))
    with pytest.raises(DataError, match=message) as err:
        load_source("cifar100", tmp_path)
    assert str(bad.resolve()) in str(err.value)


def test_cifar_bad_labels_name_the_file(tmp_path: Path) -> None:
    _write_cifar10(tmp_path)
    bad = tmp_path / "cifar-10-batches-py" / "test_batch"
    _write_py2_pickle(bad, {b"data": _rgb_rows(3), b"labels": [0, 10, 1]})
    with pytest.raises(DataError, match=r"b'labels' must be 3 labels in 0\.\.9") as err:
        load_source("cifar10", tmp_path)
    assert str(bad.resolve()) in str(err.value)


@pytest.mark.parametrize("protocol", [4, 5])
def test_cifar_batches_re_saved_by_python3_load_the_same(tmp_path: Path, protocol: int) -> None:
    """A researcher's re-save (str keys, today's numpy globals, protocol 5 buffers) reads like the original."""
    _write_cifar10(tmp_path / "py2")
    original = load_source("cifar10", tmp_path / "py2")
    resaved = tmp_path / "py3" / "cifar-10-batches-py"
    resaved.mkdir(parents=True)
    for path in (tmp_path / "py2" / "cifar-10-batches-py").iterdir():
        batch = read_py2_pickle(path)
        (resaved / path.name).write_bytes(pickle.dumps({k.decode(): v for k, v in batch.items()}, protocol=protocol))
    again = load_source("cifar10", tmp_path / "py3")
    for before, after in ((original.train, again.train), (original.test, again.test)):
        np.testing.assert_array_equal(before.x, after.x)
        np.testing.assert_array_equal(before.y, after.y)


def test_cifar_fractional_labels_are_refused(tmp_path: Path) -> None:
    _write_cifar10(tmp_path)
    _write_py2_pickle(
        tmp_path / "cifar-10-batches-py" / "test_batch", {b"data": _rgb_rows(3), b"labels": [0.0, 0.5, 1.0]}
    )
    with pytest.raises(DataError, match=r"b'labels' must be 3 labels in 0\.\.9"):
        load_source("cifar10", tmp_path)


# ---- emnist-letters --------------------------------------------------------------------


def _emnist_mat_split(labels: list[int], writers: list[int]) -> dict[str, np.ndarray]:
    n = len(labels)
    return {"images": _emnist_images(n), "labels": np.array(labels, dtype=np.uint8).reshape(n, 1),
            "writers": np.array(writers, dtype=np.uint16).reshape(n, 1)}  # fmt: skip


def _emnist_mat(train: dict[int, int], test: dict[int, int]) -> dict[str, Any]:
    """savemat contents for {label: writer} per split (one image per distinct label)."""
    return {"dataset": {"train": _emnist_mat_split(list(train), list(train.values())),
                        "test": _emnist_mat_split(list(test), list(test.values()))}}  # fmt: skip


@pytest.mark.parametrize("where", ["emnist-letters.mat", "matlab/emnist-letters.mat"])
def test_emnist_mat_labels_writers_and_transpose(tmp_path: Path, where: str) -> None:
    path = tmp_path / where
    path.parent.mkdir(parents=True, exist_ok=True)
    train = _emnist_mat_split([1, 26, 13], [2001, 2001, 517])
    test = _emnist_mat_split([5], [9])  # n == 1: loadmat squeezes it to scalars
    savemat(path, {"dataset": {"train": train, "test": test, "mapping": np.zeros((26, 3))}})
    data = load_source("emnist-letters", tmp_path)
    np.testing.assert_array_equal(data.train.y, [0, 25, 12])
    np.testing.assert_array_equal(data.test.y, [4])
    assert data.train.groups is not None and data.test.groups is not None
    np.testing.assert_array_equal(data.train.groups, [2001, 2001, 517])
    np.testing.assert_array_equal(data.test.groups, [9])
    assert data.train.groups.dtype == np.int64 and not data.train.groups.flags.writeable
    _assert_first_column_bright(data.train.x)
    _assert_first_column_bright(data.test.x)
    assert data.class_names == tuple("abcdefghijklmnopqrstuvwxyz")


@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 2], lambda b: b"MATLAB garbage"])
def test_corrupt_emnist_mat_names_the_file(tmp_path: Path, damage: Any) -> None:
    path = tmp_path / "emnist-letters.mat"
    savemat(path, _emnist_mat({1: 1, 2: 1}, {3: 2}))
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataError) as err:
        load_source("emnist-letters", tmp_path)
    assert str(path.resolve()) in str(err.value)


def test_emnist_mat_with_wrong_structure_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "emnist-letters.mat"
    savemat(path, _emnist_mat({1: 1, 27: 1}, {3: 2}))
    with pytest.raises(DataError, match=r"labels in 1\.\.26") as err:
        load_source("emnist-letters", tmp_path)
    assert str(path.resolve()) in str(err.value)
    savemat(path, {"something_else": np.zeros(3)})
    resolve._load_cached.cache_clear()
    with pytest.raises(DataError, match="lacks dataset.train"):
        load_source("emnist-letters", tmp_path)


def test_emnist_mat_images_stored_across_columns_are_refused(tmp_path: Path) -> None:
    """(784, n) has the right size but would scramble every letter."""
    path = tmp_path / "emnist-letters.mat"
    train = _emnist_mat_split([1, 2, 3], [1, 1, 1])
    train["images"] = np.ascontiguousarray(train["images"].T)
    savemat(path, {"dataset": {"train": train, "test": _emnist_mat_split([5, 6], [9, 9])}})
    with pytest.raises(DataError, match="expected n x 784 uint8"):
        load_source("emnist-letters", tmp_path)


def _idx_bytes(arr: np.ndarray) -> bytes:
    magic = 0x803 if arr.ndim == 3 else 0x801
    dims = b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return magic.to_bytes(4, "big") + dims + arr.astype(np.uint8).tobytes()


def _write_emnist_idx(root: Path, gz: bool, train_labels: tuple[int, ...] = (1, 26, 2)) -> None:
    d = root / "EMNIST" / "raw"
    d.mkdir(parents=True, exist_ok=True)
    files = {
        "train-images-idx3": _emnist_images(len(train_labels)).reshape(-1, 28, 28),
        "train-labels-idx1": np.array(train_labels),
        "test-images-idx3": _emnist_images(2).reshape(-1, 28, 28),
        "test-labels-idx1": np.array([3, 4]),
    }
    for kind, arr in files.items():
        data = _idx_bytes(arr)
        name = f"emnist-letters-{kind}-ubyte"
        (d / (name + ".gz" if gz else name)).write_bytes(gzip.compress(data) if gz else data)


@pytest.mark.parametrize("gz", [True, False])
def test_emnist_idx_layout(tmp_path: Path, gz: bool) -> None:
    _write_emnist_idx(tmp_path, gz)
    data = load_source("emnist-letters", tmp_path)
    np.testing.assert_array_equal(data.train.y, [0, 25, 1])
    np.testing.assert_array_equal(data.test.y, [2, 3])
    assert data.train.groups is None and data.test.groups is None
    _assert_first_column_bright(data.train.x)
    _assert_first_column_bright(data.test.x)


def test_emnist_idx_label_zero_is_refused(tmp_path: Path) -> None:
    _write_emnist_idx(tmp_path, gz=False, train_labels=(0, 1))
    with pytest.raises(DataError, match="label 0; expected 1..26") as err:
        load_source("emnist-letters", tmp_path)
    assert "emnist-letters-train-labels-idx1-ubyte" in str(err.value)


def test_emnist_mat_wins_over_idx(tmp_path: Path) -> None:
    _write_emnist_idx(tmp_path, gz=True)
    savemat(tmp_path / "emnist-letters.mat", _emnist_mat({7: 1}, {8: 2}))
    data = load_source("emnist-letters", tmp_path)
    np.testing.assert_array_equal(data.train.y, [6])
    assert data.train.groups is not None


# ---- errors and registry ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected_paths", "hints"),
    [("cifar10", ["cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/test_batch"],
      ["torchvision.datasets.CIFAR10", "cifar-10-python.tar.gz"]),
     ("cifar100", ["cifar-100-python/train", "cifar-100-python/test"],
      ["torchvision.datasets.CIFAR100", "cifar-100-python.tar.gz"]),
     ("emnist-letters", ["emnist-letters.mat", "matlab/emnist-letters.mat", "EMNIST/raw"],
      ["matlab.zip", "torchvision.datasets.EMNIST", "emnist-letters-{train,test}"])],
)  # fmt: skip
def test_missing_files_say_where_and_how(
    tmp_path: Path, name: str, expected_paths: list[str], hints: list[str]
) -> None:
    with pytest.raises(DataError) as err:
        load_source(name, tmp_path)
    msg = str(err.value)
    for rel in expected_paths:
        assert str(tmp_path.resolve() / rel) in msg
    for hint in hints:
        assert hint in msg
    assert "DATA_ROOT" not in msg  # replaced by the real root


def test_registry_lists_paper_sources() -> None:
    assert {"cifar10", "cifar100", "emnist-letters"} <= set(source_names())
    assert source_info("cifar10").image_shape == (3, 32, 32)
    assert len(source_info("cifar100").class_names) == 100
    assert source_info("emnist-letters").image_shape == (1, 28, 28)


def test_existing_sources_have_no_groups(tmp_path: Path) -> None:
    d = tmp_path / "MNIST" / "raw"
    d.mkdir(parents=True)
    for stem, arr in zip(sources.IDX_STEMS, (np.zeros((2, 28, 28)), np.array([0, 1]),
                                             np.zeros((1, 28, 28)), np.array([2]))):  # fmt: skip
        (d / stem).write_bytes(_idx_bytes(arr))
    for name in ("digits", "mnist-idx"):
        data = load_source(name, tmp_path)
        assert data.train.groups is None and data.test.groups is None
    assert sources.Split(np.zeros((1, 1, 2, 2)), np.zeros(1)).groups is None


def test_fetch_uses_torchvision_download_and_reports_a_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.error

    import torchvision.datasets

    from fedmd_ray.data.fetch import fetch

    calls: list[bool] = []

    def offline(root: str, train: bool, download: bool) -> None:
        calls.append(train)
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DataError, match="cifar10: download failed .*cifar-10-batches-py"):
        fetch("cifar10", tmp_path, log=lambda _: None)
    assert calls == [True]
    _write_cifar10(tmp_path)  # once the files are there, nothing is downloaded
    assert fetch("cifar10", tmp_path, log=lambda _: None) == tmp_path.resolve()
    assert calls == [True]


def test_a_failed_download_leaves_no_new_empty_directories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torchvision makes its root and folders before it fails; a failed fetch removes them."""
    import urllib.error

    import torchvision.datasets

    from fedmd_ray.data.fetch import fetch

    def offline(root: str, train: bool, download: bool) -> None:
        (Path(root) / "cifar-10-batches-py").mkdir(parents=True)
        (Path(root) / "partial").mkdir()
        (Path(root) / "partial" / "cifar-10-python.tar.gz").write_bytes(b"half")
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    (tmp_path / "mine").mkdir()
    with pytest.raises(DataError, match="download failed"):
        fetch("cifar10", tmp_path / "new" / "root", log=lambda _: None)
    assert sorted(p.name for p in tmp_path.rglob("*")) == [
        "cifar-10-python.tar.gz", "mine", "new", "partial", "root"]  # fmt: skip
    (tmp_path / "new" / "root" / "partial" / "cifar-10-python.tar.gz").unlink()
    with pytest.raises(DataError, match="download failed"):
        fetch("cifar10", tmp_path / "new" / "root", log=lambda _: None)
    # the partial/ folder existed before this attempt and is kept; nothing else was made
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["mine", "new", "partial", "root"]
