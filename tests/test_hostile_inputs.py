"""Hostile inputs (issue 34): config files, numbers, labels in data files, sweeps.

Each refusal is one ConfigError or DataError (the CLI: one line, exit 2, no traceback), comes
before anything is written, and leaves the scratch directory byte for byte as it was.
Nothing here starts Ray, except to show that a refusal comes before it.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import logging
import math
import os
import socket
import stat
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from test_fuzz import TINY  # a run that any accepted command line affords

import fedmd_ray
from fedmd_ray.cli import main
from fedmd_ray.config import PRESETS, FedMDConfig, _field_types, _is_optional
from fedmd_ray.config_file import MAX_FILE_BYTES, config_from, read_config_file
from fedmd_ray.errors import ConfigError, DataError


def _tree(root: Path) -> dict[str, object]:
    """Every entry below `root`, byte for byte: a file's bytes, a link's target, 'dir', or another kind
    of file by its type (a FIFO is never opened)."""
    tree: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            tree[key] = ("link", os.readlink(path))
        elif stat.S_ISDIR(mode):
            tree[key] = "dir"
        elif stat.S_ISREG(mode):
            tree[key] = path.read_bytes()
        else:
            tree[key] = ("special", stat.S_IFMT(mode))
    return tree


def _refused(argv: list[str], root: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Runs the CLI in this process; asserts exit 2 with one line and no traceback, and that nothing
    under `root` changed; returns the line."""
    capsys.readouterr()
    before = _tree(root)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("fedmd-ray: error: "), err
    assert _tree(root) == before
    return lines[0]


# --- config files ------------------------------------------------------------------------------

CONFIG_FILES = {  # name: (suffix, bytes, what the one line says)
    "not UTF-8": (".toml", b"rounds = 1\n# caf\xe9\n", "is not UTF-8 text (byte 0xe9 at offset 16)"),
    "deep TOML arrays": (
        ".toml",
        b"rounds = " + b"[" * 3000 + b"]" * 3000 + b"\n",
        "nests tables or arrays too deeply",
    ),
    "deep JSON arrays": (
        ".json",
        b'{"rounds": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "nests tables or arrays too",
    ),
    "deep JSON tables": (".json", b'{"a": ' * 40 + b"1" + b"}" * 40, "nests tables or arrays too deeply"),
    "preset as a list": (".toml", b'preset = ["quick"]\n', "preset must be a preset's name (a string), not a list"),
    "preset as a table": (
        ".toml",
        b"[preset]\nname = 'quick'\n",
        "preset must be a preset's name (a string), not a table",
    ),
    "preset as a number": (".json", b'{"preset": 3}', "preset must be a preset's name (a string), not a number"),
    "a table for a number": (".toml", b"[rounds]\nn = 1\n", "rounds={'n': 1} is not allowed: must be an integer"),
    "a list for a number": (".json", b'{"lr": [0.1]}', "lr=[0.1] is not allowed: must be a number"),
    "config not a table": (".json", b'{"config": [1, 2]}', "`config` must be a table of config fields, not a list"),
    "a list at the top": (".json", b"[1, 2]", "must hold a table of config fields, not a list"),
    "a key with '='": (".json", b'{"rounds=3": "4"}', "unknown config field 'rounds=3'"),
    "a NUL in a value": (".json", b'{"data_root": "/tmp/a\\u0000b"}', "holds a string with a NUL character"),
    "a lone surrogate": (".json", b'{"out_dir": "\\ud800"}', "holds a string that is not valid Unicode"),
    "too large": (".toml", b"# padding\n" * (MAX_FILE_BYTES // 10 + 1), "a config file may hold at most 1048576 bytes"),
    "a seed beyond numpy's": (
        ".toml",
        b"seed = " + b"9" * 30 + b"\n",
        "seed=999999999999999999999999999999 is not allowed",
    ),
    "a timeout that overflows": (".toml", b"round_timeout_s = 1e300\n", "round_timeout_s=1e+300 is not allowed"),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", list(CONFIG_FILES))
def test_a_hostile_config_file_is_one_config_error(case, tmp_path, capsys):
    suffix, data, message = CONFIG_FILES[case]
    path = tmp_path / f"exp{suffix}"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match=None) as err:
        config_from(path, None, {})
    assert message in str(err.value)
    line = _refused(
        [
            "run",
            "--preset",
            "quick",
            "--config",
            str(path),
            "--set",
            "backend=local",
            "--out",
            str(tmp_path / "out"),
            "-q",
        ],
        tmp_path,
        capsys,
    )
    assert message in line


def _special_files(tmp: Path) -> dict[str, tuple[str, str]]:
    fifo = tmp / "fifo.toml"
    os.mkfifo(fifo)  # nobody writes it: reading it would block forever
    (tmp / "a_directory.toml").mkdir()
    files = {
        "a FIFO": (str(fifo), "is a named pipe (FIFO), not a regular file"),
        "a directory": (str(tmp / "a_directory.toml"), "is a directory, not a regular file"),
        "an empty path": ("", "the path is empty"),
        "a missing file": (str(tmp / "nothere.toml"), "cannot read it (No such file or directory)"),
    }
    if Path("/dev/zero").exists():  # reading it would fill the memory
        files["/dev/zero"] = ("/dev/zero", "is a character device, not a regular file")
    return files


@pytest.mark.timeout(30)  # a FIFO read by a blocking open would hang here
@pytest.mark.parametrize("case", ["a FIFO", "a directory", "an empty path", "a missing file", "/dev/zero"])
def test_special_files_as_config_are_refused_without_reading_them(case, tmp_path, capsys):
    files = _special_files(tmp_path)
    if case not in files:
        pytest.skip(f"{case} does not exist here")
    path, message = files[case]
    with pytest.raises(ConfigError) as err:
        read_config_file(path)
    assert message in str(err.value)
    assert message in _refused(
        ["run", "--preset", "quick", "--config", path, "--set", "backend=local", "-q", "--out", str(tmp_path / "out")],
        tmp_path,
        capsys,
    )


def test_a_byte_order_mark_is_skipped_and_a_valid_file_still_reads(tmp_path):
    path = tmp_path / "exp.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"preset": "quick", "rounds": "3", "models": ["mlp-64"]}).encode())
    config = config_from(path, None, {})
    assert (config.rounds, config.models, config.n_parties) == (3, ("mlp-64",), 3)


def _run_dir_with_config(tmp: Path, data: bytes | None) -> Path:
    """A run directory whose config.json holds `data` (None: a FIFO nobody writes)."""
    run = tmp / "run"
    run.mkdir()
    if data is None:
        os.mkfifo(run / "config.json")
    else:
        (run / "config.json").write_bytes(data)
    return run


RESUME_CONFIGS = {
    "a FIFO": (None, "config.json is a named pipe (FIFO), not a regular file"),
    "deep": (b'{"config": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nests tables or arrays too deeply"),
    "not UTF-8": (b'{"config": {"seed": "\xff"}}', "is not UTF-8 text"),
    "too large": (b" " * (MAX_FILE_BYTES + 1), "a config file may hold at most"),
    "config not a table": (b'{"config": [["seed", 1]]}', "is not a fedmd_ray run config: it holds no `config` table"),
}


@pytest.mark.timeout(30)  # today's `read_text` blocks forever on the FIFO
@pytest.mark.parametrize("case", list(RESUME_CONFIGS))
def test_resume_reads_config_json_as_safely_as_config(case, tmp_path, capsys):
    data, message = RESUME_CONFIGS[case]
    run = _run_dir_with_config(tmp_path, data)
    assert message in _refused(["run", "--resume", str(run), "-q"], tmp_path, capsys)


# --- numbers -------------------------------------------------------------------------------------


def _numeric_fields() -> list[dataclasses.Field]:
    types_ = _field_types(FedMDConfig)
    return [f for f in dataclasses.fields(FedMDConfig) if _is_optional(types_[f.name])[1] in (int, float)]


def test_every_numeric_field_has_finite_bounds_on_both_sides():
    fields = _numeric_fields()
    assert len(fields) > 30
    for f in fields:
        bounds = f.metadata["bounds"]
        assert bounds is not None, f.name
        assert bounds.low is not None and math.isfinite(bounds.low), f.name
        assert bounds.high is not None and math.isfinite(bounds.high), f.name
        if _is_optional(_field_types(FedMDConfig)[f.name])[1] is int:
            assert bounds.high < 2**63, f.name  # a swept value is an int64 column


def test_defaults_and_presets_stay_valid():
    FedMDConfig()
    for name in PRESETS:
        fedmd_ray.preset(name)


def test_timeouts_at_their_bound_are_handled_by_threads_sockets_and_ray():
    for name in ("connect_timeout_s", "actor_start_timeout_s", "round_timeout_s"):
        high = FedMDConfig.__dataclass_fields__[name].metadata["bounds"].high
        fedmd_ray.preset("quick", **{name: high})
        assert threading.Lock().acquire(timeout=high)  # an OverflowError beyond threading.TIMEOUT_MAX
        with socket.socket() as sock:
            sock.settimeout(high)  # the socket layer's limit
        assert int(high * 1000) < 2**63  # Ray's waits: milliseconds in int64
        with pytest.raises(ConfigError, match=rf"{name}=1e\+300 is not allowed: must be a number in \(0, 1e\+07\]"):
            fedmd_ray.preset("quick", **{name: 1e300})


def test_seeds_at_their_bound_are_accepted_by_numpy_and_torch():
    import torch

    from fedmd_ray.config import MAX_PARTIES
    from fedmd_ray.seeding import derive_seed, rng

    high = FedMDConfig.__dataclass_fields__["seed"].metadata["bounds"].high
    fedmd_ray.preset("quick", seed=high)
    torch.Generator().manual_seed(derive_seed(high, "party", MAX_PARTIES - 1))
    rng(high, "alignment", 10**6).random()
    np.random.RandomState(high)  # numpy's legacy range, which many tools share
    with pytest.raises(ConfigError, match=r"seed=4294967296 is not allowed: must be an integer in \[0, 4294967295\]"):
        fedmd_ray.preset("quick", seed=high + 1)


def test_temperatures_at_their_bounds_keep_every_loss_and_target_finite():
    import torch

    from fedmd_ray.aggregation import era_consensus
    from fedmd_ray.training import consensus_distance, kl_to_probabilities

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 10, generator=generator) * 100  # far beyond what a trained model gives
    target = torch.randn(16, 10, generator=generator) * 100
    probabilities = np.random.default_rng(0).dirichlet(np.ones(10), size=(3, 16)).astype(np.float32)
    for name in ("temperature", "era_temperature"):
        bounds = FedMDConfig.__dataclass_fields__[name].metadata["bounds"]
        for t in (bounds.low, bounds.high):
            fedmd_ray.preset("quick", **{name: t})
            assert torch.isfinite(consensus_distance("kl", logits, target, t))
            assert torch.isfinite(kl_to_probabilities(logits, (target / t).softmax(dim=1), t))
            assert np.isfinite(era_consensus(probabilities, t)).all()
        with pytest.raises(ConfigError, match=rf"{name}=1e\+300 is not allowed: must be a number in \[0.001, 1000\]"):
            fedmd_ray.preset("quick", **{name: 1e300})


def test_resource_shares_are_zero_or_what_ray_can_count():
    from ray._common.ray_option_utils import _validate_resource_quantity

    from fedmd_ray.config import MAX_SHARE, MIN_SHARE

    assert _validate_resource_quantity("CPU", MIN_SHARE) is None
    assert _validate_resource_quantity("CPU", 0.00001) is not None  # why MIN_SHARE
    assert MAX_SHARE * 10_000 < 2**63
    assert fedmd_ray.preset("quick", gpus_per_party=0, driver_cpus=0).driver_cpus == 0
    for name in ("gpus_per_party", "driver_cpus"):
        with pytest.raises(
            ConfigError, match=rf"{name}=1e-05 is not allowed: must be 0 or a number in \[0.0001, 4096\]"
        ):
            fedmd_ray.preset("quick", **{name: 0.00001})
    with pytest.raises(
        ConfigError,
        match=r"cpus_per_party=1e-05 is not allowed: must be a number in \[0.0001, 4096\] "
        "or None",
    ):
        fedmd_ray.preset("quick", cpus_per_party=0.00001)


@pytest.mark.timeout(120)
def test_a_timeout_that_would_overflow_is_refused_before_anything_is_written(tmp_path, capsys):
    line = _refused(
        ["run", *TINY, "--set", "round_timeout_s=1e300", "--out", str(tmp_path / "out"), "-q"], tmp_path, capsys
    )
    assert "round_timeout_s=1e+300 is not allowed: must be a number in (0, 1e+07] or None" in line


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("n_parties=1000000", "n_parties=1000000 is not allowed: must be an integer in [1, 100000]"),
        (
            "torch_threads=10000000000",
            "torch_threads=10000000000 is not allowed: must be an integer in [1, 4096] or None",
        ),
        ("eval_batch_size=10**30", "eval_batch_size='10**30' is not allowed: must be an integer or None"),
        ("eval_batch_size=1000000000000", "must be an integer in [1, 1000000] or None"),
        ("lr=1e300", "lr=1e+300 is not allowed: must be a number in (0, 10]"),
        ("pretrain_min_delta=2", "pretrain_min_delta=2.0 is not allowed: must be a number in [0, 1]"),
    ],
)
def test_numbers_beyond_what_their_consumers_handle_are_refused_with_the_range(assignment, message):
    from fedmd_ray.config import parse_overrides

    with pytest.raises(ConfigError) as err:
        fedmd_ray.preset("quick", **parse_overrides([assignment]))
    assert message in str(err.value)


# --- labels and other numbers inside data files ----------------------------------------------


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    x = np.zeros((20, 8, 8), np.uint8)
    y = np.arange(20) % 10
    np.savez(path, **{"x_train": x, "y_train": y, "x_test": x[:10], "y_test": y[:10], **arrays})
    return path


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "labels, message",
    [
        (
            np.where(np.arange(20) == 0, 2_000_000, np.arange(20) % 10),
            (
                "its largest label is 2000000, so without "
                "class_names its classes would be 0..2000000: 2000001 classes for 30 images (train and test)"
            ),
        ),
        (np.full(20, 2**64 - 1, dtype=np.uint64), "its largest label is 18446744073709551615"),
    ],
)
def test_a_label_larger_than_the_archive_is_refused_with_the_numbers(labels, message, tmp_path):
    path = _npz(tmp_path / "labels.npz", y_train=labels)
    before = _tree(tmp_path)
    started = time.perf_counter()
    with pytest.raises(DataError) as err:
        fedmd_ray.check(fedmd_ray.preset("quick", private_data=str(path)))
    assert message in str(err.value) and "number the classes 0..K-1" in str(err.value)
    assert time.perf_counter() - started < 20  # no names built
    assert _tree(tmp_path) == before


def test_group_names_that_are_not_a_list_are_a_data_error(tmp_path):
    from fedmd_ray.data.files import load_npz

    y = np.arange(20) % 10
    path = _npz(
        tmp_path / "groups.npz",
        groups_train=y % 2,
        groups_test=y[:10] % 2,
        group_kind=np.array("superclass"),
        group_names=np.array(5),
    )
    with pytest.raises(DataError, match=r"group_names is shaped \(\); expected a 1-D array of names"):
        load_npz(path)


def _idx_header(dims: tuple[int, ...]) -> bytes:
    return (0x800 + len(dims)).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)


def test_a_gzip_idx_file_that_unpacks_beyond_its_header_is_not_unpacked(tmp_path):
    import tracemalloc

    from fedmd_ray.data.formats import read_idx

    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(_idx_header((3, 28, 28)) + bytes(64 << 20)))  # 64 MiB of zeros in ~64 KiB
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="is longer than its header says: header dims \\(3, 28, 28\\) need 2368"):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def test_an_idx_header_claiming_more_than_the_memory_is_refused_before_reading(tmp_path):
    from fedmd_ray.data.formats import read_idx

    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(_idx_header((2**32 - 1,) * 3) + bytes(100)))
    with pytest.raises(DataError, match=r"claim 79228162458924105385300197375 bytes of data, more than the \d+ bytes"):
        read_idx(path)


def test_an_npz_that_unpacks_beyond_the_memory_is_refused_before_unpacking(tmp_path, monkeypatch):
    from fedmd_ray.data import files

    path = _npz(tmp_path / "big.npz")
    monkeypatch.setattr(files, "available_memory", lambda: 1000)
    with pytest.raises(DataError, match=r"big.npz unpacks to \d+ bytes \(x_train.npy: 1408\), more than the 1000"):
        files.load_npz(path)


# --- sweeps ----------------------------------------------------------------------------------------


def _tiny_base() -> FedMDConfig:
    return fedmd_ray.preset("quick", backend="local", rounds=0, pretrain_epochs=0, private_epochs=0, upper_bound=False)


def _sweep_refused(space: dict, tmp_path: Path, **kwargs) -> str:
    """`sweep` refuses with a ConfigError before Ray starts or anything is written; returns the message."""
    import ray

    before, ray_was_up = _tree(tmp_path), ray.is_initialized()
    with pytest.raises(ConfigError) as err:
        fedmd_ray.sweep(_tiny_base(), space, out_dir=tmp_path / "sweep", verbose=False, **kwargs)
    assert _tree(tmp_path) == before and ray.is_initialized() == ray_was_up
    return str(err.value)


def _domains() -> dict:
    from ray import tune

    return {
        "a string": ({"rounds": "1,2"}, "the sweep gives rounds='1,2' (str); give a list of values"),
        "a tuple": ({"rounds": (1, 2)}, "the sweep gives rounds=(1, 2) (tuple); give a list of values"),
        "a number": ({"rounds": 3}, "the sweep gives rounds=3 (int)"),
        "grid_search of a string": ({"rounds": {"grid_search": "12"}}, "tune.grid_search('12'); give it a list"),
        "a float domain for an integer": (
            {"rounds": tune.uniform(1, 3)},
            ("the sweep's rounds domain (Float from 1 to 3) can draw rounds=1.0, which is refused"),
        ),
        "a category that overflows": (
            {"round_timeout_s": tune.choice([60.0, 1e300])},
            "can draw round_timeout_s=1e+300",
        ),
        "a normal over a positive field": ({"lr": tune.randn(0, 1)}, "can draw lr=-inf, which is refused"),
    }


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "case",
    [
        "a string",
        "a tuple",
        "a number",
        "grid_search of a string",
        "a float domain for an integer",
        "a category that overflows",
        "a normal over a positive field",
    ],
)
def test_a_sweep_space_of_the_wrong_form_is_refused_before_ray(case, tmp_path):
    space, message = _domains()[case]
    assert message in _sweep_refused(space, tmp_path)


@pytest.mark.timeout(60)  # today every one of the million points is built and checked: minutes
def test_a_grid_beyond_the_limit_is_refused_with_its_count_before_any_config_is_built(tmp_path):
    started = time.perf_counter()
    message = _sweep_refused({"seed": list(range(1000)), "digest_epochs": list(range(1000))}, tmp_path)
    assert "the sweep's grid has 1000000 points (1000 seed x 1000 digest_epochs); a sweep runs at most 10000" in message
    assert time.perf_counter() - started < 10


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_samples": "2"}, "num_samples='2' is not allowed: must be an integer in [1, 10000]"),
        ({"num_samples": 0}, "num_samples=0 is not allowed"),
        ({"max_failures": 1.5}, "max_failures=1.5 is not allowed"),
        ({"max_concurrent_trials": "2"}, "max_concurrent_trials='2' is not allowed"),
        ({"name": "../elsewhere"}, "name='../elsewhere' is not allowed: the sweep's name is one directory name"),
    ],
)
def test_sweep_arguments_of_the_wrong_type_are_refused_before_ray(kwargs, message, tmp_path):
    assert message in _sweep_refused({"seed": [0, 1]}, tmp_path, **kwargs)


def test_too_many_trials_from_num_samples_are_refused(tmp_path):
    from ray import tune

    message = _sweep_refused({"seed": list(range(100)), "lr": tune.loguniform(1e-4, 1e-2)}, tmp_path, num_samples=101)
    assert "num_samples=101 x 100 grid points make 10100 trials; a sweep runs at most 10000" in message


def test_checking_many_grid_points_says_how_far_it_got(monkeypatch, caplog):
    from fedmd_ray.sweeps import space

    monkeypatch.setattr(space, "PROGRESS_S", 0.0)
    caplog.set_level(logging.INFO, logger="fedmd_ray")
    monkeypatch.setattr(logging.getLogger("fedmd_ray"), "propagate", True)
    configs = space.check_points(_tiny_base(), {"seed": [0, 1, 2, 3]})
    assert len(configs) == 4
    assert "checked 1 of 4 grid points" in caplog.text and "checked 3 of 4 grid points" in caplog.text


def test_a_trailing_comma_in_a_grid_names_the_empty_value(tmp_path, capsys):
    line = _refused(["sweep", *TINY, "--grid", "seed=1,2,", "--out", str(tmp_path / "sweep"), "-q"], tmp_path, capsys)
    assert (
        "--grid 'seed=1,2,': its last value is empty (a stray ','); separate the values of seed by single ','" in line
    )
    line = _refused(
        ["sweep", *TINY, "--grid", "models=mlp-64;;cnn1-16", "--out", str(tmp_path / "s"), "-q"], tmp_path, capsys
    )
    assert "its 2nd value is empty (a stray ';')" in line


@pytest.fixture
def s3_without_credentials_lookup(monkeypatch):
    pafs = pytest.importorskip("pyarrow.fs")
    if not hasattr(pafs, "S3FileSystem"):
        pytest.skip("pyarrow without S3")
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(name, value)


@pytest.mark.timeout(60)  # pyarrow alone waits ~100 s on a silent endpoint, then raises a traceback
def test_a_silent_storage_endpoint_is_one_message_before_ray(tmp_path, monkeypatch, s3_without_credentials_lookup):
    from fedmd_ray.sweeps import tuner

    monkeypatch.setattr(tuner, "STORAGE_PROBE_S", 1.0)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)  # connections are accepted by the kernel and never answered
    try:
        uri = f"s3://bucket/sweeps?endpoint_override=127.0.0.1:{server.getsockname()[1]}&scheme=http"
        message = _sweep_refused({"seed": [0, 1]}, tmp_path, storage_path=uri)
    finally:
        server.close()
    assert f"storage_path={uri!r} did not answer within 1 s" in message


def test_a_storage_that_fails_to_answer_is_one_message_before_ray(tmp_path, monkeypatch):
    """What pyarrow raises for an unreachable storage (here without waiting for its retries) is one message."""
    import types

    from fedmd_ray.sweeps import tuner

    class Unreachable:
        def get_file_info(self, path):
            raise OSError(
                "When getting information for key 'sweeps' in bucket 'bucket': AWS Error NETWORK_CONNECTION\n"
                "during HeadObject operation"
            )

    fake = types.SimpleNamespace(
        FileSystem=types.SimpleNamespace(from_uri=lambda uri: (Unreachable(), "bucket/sweeps"))
    )
    monkeypatch.setattr(tuner, "pafs", fake)
    message = _sweep_refused({"seed": [0, 1]}, tmp_path, storage_path="s3://bucket/sweeps")
    assert message == (
        "storage_path='s3://bucket/sweeps' cannot be read: OSError: When getting information for key "
        "'sweeps' in bucket 'bucket': AWS Error NETWORK_CONNECTION; check the address, the network and "
        "the credentials, or use a local directory"
    )


@pytest.mark.slow  # ~12 s: pyarrow retries a refused connection
@pytest.mark.timeout(60)
def test_a_dead_storage_endpoint_is_one_message_before_ray(tmp_path, s3_without_credentials_lookup):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    uri = f"s3://bucket/sweeps?endpoint_override=127.0.0.1:{port}&scheme=http"
    message = _sweep_refused({"seed": [0, 1]}, tmp_path, storage_path=uri)
    assert f"storage_path={uri!r} cannot be read: OSError: " in message


@pytest.mark.parametrize(
    "saved, message",
    [
        (b"\xff\xfe", "fedmd_sweep.json at x is not UTF-8 text"),
        (b"[" * 100_000, "nests tables or arrays too deeply"),
        (b"[1, 2]", "is not a fedmd_ray sweep spec"),
        (b'{"base": 3}', "is not a fedmd_ray sweep spec"),
    ],
)
def test_a_damaged_sweep_spec_in_storage_is_one_config_error(saved, message):
    from fedmd_ray.sweeps.tuner import _check_same_sweep

    with pytest.raises(ConfigError) as err:
        _check_same_sweep(saved, {"base": {}, "space": {}, "num_samples": 1, "identities": []}, "x")
    assert message in str(err.value)


def test_a_zip_of_config_files_is_no_config(tmp_path):
    """A binary file named .toml (here a zip archive) is refused as text, not parsed."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("config.toml", "rounds = 1\n")
    path = tmp_path / "exp.toml"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(ConfigError, match="is not UTF-8 text|is not valid TOML"):
        read_config_file(path)
