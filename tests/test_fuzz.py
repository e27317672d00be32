"""A fuzzer, not only a table: generated configs, command lines, paths and corrupted data files.

For every input: the API raises only its documented exceptions (ConfigError, DataError,
ResourceError, TypeError), the CLI exits 0 or 2 without a traceback, nothing hangs
(pytest-timeout), and a refusal leaves every file and directory as it was.

The default budget is CI-sized; run longer with
`FEDMD_RAY_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz.py -p no:randomly`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import fedmd_ray
from fedmd_ray.cli import main
from fedmd_ray.config import FedMDConfig
from fedmd_ray.errors import FedMDError

EXAMPLES = int(os.environ.get("FEDMD_RAY_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("FEDMD_RAY_FUZZ_RANDOM"),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FIELDS = [f.name for f in dataclasses.fields(FedMDConfig)]
# A run that every accepted command line can afford: no training, in this process.
TINY = ["--preset", "quick", "--set", "backend=local", "--set", "rounds=0", "--set", "pretrain_epochs=0",
        "--set", "private_epochs=0", "--set", "upper_bound=false"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.sampled_from([0, 1, 2, -1, 3, 5000, 10**9]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, 0.5, 1.0, 1.5, 1e-9, -0.1]),
    st.text(max_size=12), st.sampled_from(["mnist", "digits", "cnn2-8-16", "mlp-1000000000", "fedmd",
                                           "os:getcwd", "x:y", "~nosuchuser/x", "/", "none", "iid", "ray"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=4), st.tuples(scalars, scalars))
QUICK = fedmd_ray.preset("quick").to_dict()


def _near(value: object) -> st.SearchStrategy:
    """Values close to a valid one, so that a good share of generated inputs is accepted."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.integers(max(value - 2, -1), value + 2)
    if isinstance(value, float):
        return st.sampled_from([value, value * 2, value / 2, 0.0, -value])
    return st.just(value)


field_assignments = st.sampled_from(FIELDS).flatmap(
    lambda name: st.tuples(st.just(name), st.one_of(_near(QUICK[name]), values)))


def _snapshot(root: Path) -> dict[str, str]:
    """Every entry below `root`: a link's target, a file's content hash, or 'dir'."""
    tree = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            tree[key] = "link:" + os.readlink(path)
        elif path.is_dir():
            tree[key] = "dir"
        else:
            tree[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return tree


@pytest.mark.timeout(600)
@FUZZ
@given(st.lists(st.one_of(field_assignments, st.tuples(st.just("roundz"), values)), max_size=4))
def test_configs_are_accepted_or_refused_with_a_documented_error(assignments):
    try:
        config = fedmd_ray.preset("quick", **dict(assignments))
    except (FedMDError, TypeError):
        event("refused by the config")
        return
    try:
        fedmd_ray.check(config)
        event("accepted")
    except (FedMDError, TypeError):
        event("refused by check")


def _text(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join("" if v is None else str(v) for v in value)
    return "none" if value is None else str(value)


paths = st.one_of(
    st.sampled_from(["run", "a/b/c", "file_here", "file_here/below", "~nosuchuser/r", "x" * 300, "held",
                     "linked", "held/../run", ""]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1,
            max_size=20),
)


def _scene(root: Path) -> None:
    """What a user's disk holds: a file, a finished run with links planted in it, a data file."""
    (root / "file_here").write_text("not a directory")
    (root / "linked").mkdir()
    (root / "target").write_text("must never change")
    (root / "linked" / ".fedmd_ray.lock").symlink_to(root / "target")
    (root / "linked" / "results.parquet").symlink_to(root / "target")


@pytest.mark.timeout(900)
@FUZZ
@given(st.lists(field_assignments, max_size=3), paths, st.booleans())
def test_command_lines_exit_0_or_2_and_a_refusal_changes_nothing(sets, out, overwrite):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _scene(root)
        argv = ["run", *TINY, *[a for k, v in sets for a in ("--set", f"{k}={_text(v)}")], "--quiet"]
        argv += ["--out", out if out.startswith("~") else str(root / out)] + (["--overwrite"] if overwrite else [])
        before = _snapshot(root)
        cwd = os.getcwd()
        os.chdir(root)  # relative import paths and files resolve inside the scratch directory
        try:
            code = main(argv)
        finally:
            os.chdir(cwd)
        assert code in (0, 2)
        event(f"exit {code}")
        if code == 2:
            assert _snapshot(root) == before
        assert (root / "target").read_text() == "must never change"


def _corrupt(arrays: dict[str, np.ndarray], key: str, how: str) -> dict[str, np.ndarray]:
    arr = arrays[key]
    damaged = {
        "float": arr.astype(np.float64) + 0.5,
        "nan": np.where(np.arange(arr.size).reshape(arr.shape) == 0, np.nan, arr.astype(np.float32)),
        "negative": arr.astype(np.int64) - 3,
        "huge": arr.astype(np.int64) + 10**6,
        "short": arr[: max(len(arr) // 2, 1)],
        "flat": arr.reshape(len(arr), -1),
        "empty": arr[:0],
        "text": np.array(["x"] * len(arr)),
    }[how]
    return {**arrays, key: damaged}


@pytest.mark.timeout(600)
@FUZZ
@given(st.sampled_from(["x_train", "y_train", "x_test", "y_test"]),
       st.sampled_from(["float", "nan", "negative", "huge", "short", "flat", "empty", "text"]),
       st.booleans())
def test_corrupted_data_files_are_refused_with_a_data_error(key, how, as_public):
    digits = fedmd_ray.data.load_source("digits")
    good = dict(x_train=digits.train.x, y_train=digits.train.y, x_test=digits.test.x, y_test=digits.test.y)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        np.savez(path, **_corrupt(good, key, how))
        before = _snapshot(Path(tmp))
        entry = {"public_data" if as_public else "private_data": str(path)}
        with pytest.raises(FedMDError):
            fedmd_ray.check(fedmd_ray.preset("quick", **entry))
        assert _snapshot(Path(tmp)) == before
