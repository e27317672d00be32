"""A fuzzer, not only a table: generated configs, command lines, paths and corrupted data files.

For every input: the API raises only its documented exceptions (ConfigError for a config, and
DataError or ResourceError from `check`; never a TypeError or another exception that only a bug
raises), the CLI exits 0 or 2 without a traceback, nothing hangs
(pytest-timeout), and a refusal leaves every file and directory as it was.

The default budget is CI-sized; run longer with
`FEDMD_RAY_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz.py -p no:randomly`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
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
from fedmd_ray.errors import ConfigError, FedMDError

EXAMPLES = int(os.environ.get("FEDMD_RAY_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not os.environ.get("FEDMD_RAY_FUZZ_RANDOM"),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FIELDS = [f.name for f in dataclasses.fields(FedMDConfig)]
# A run that every accepted command line can afford: no training, in this process.
TINY = [
    "--preset",
    "quick",
    "--set",
    "backend=local",
    "--set",
    "rounds=0",
    "--set",
    "pretrain_epochs=0",
    "--set",
    "private_epochs=0",
    "--set",
    "upper_bound=false",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.sampled_from([0, 1, 2, -1, 3, 5000, 10**9]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 0.5, 1.0, 1.5, 1e-9, -0.1]),
    st.text(max_size=12),
    st.sampled_from(
        [
            "mnist",
            "digits",
            "cnn2-8-16",
            "mlp-1000000000",
            "fedmd",
            "os:getcwd",
            "x:y",
            "~nosuchuser/x",
            "/",
            "none",
            "iid",
            "ray",
        ]
    ),
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
    lambda name: st.tuples(st.just(name), st.one_of(_near(QUICK[name]), values))
)


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
    except ConfigError:  # a TypeError (or any other) is a bug, not a refusal
        event("refused by the config")
        return
    try:
        fedmd_ray.check(config)
        event("accepted")
    except FedMDError:  # ConfigError, DataError, ResourceError: what `check` documents
        event("refused by check")


def _text(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join("" if v is None else str(v) for v in value)
    return "none" if value is None else str(value)


paths = st.one_of(
    st.sampled_from(
        [
            "run",
            "a/b/c",
            "file_here",
            "file_here/below",
            "~nosuchuser/r",
            "x" * 300,
            "held",
            "linked",
            "held/../run",
            "",
        ]
    ),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=20),
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


PARTS = ["run", "missing", "..", ".", "link_run", "link_missing", "link_up", "file_here", "dir", "new"]


def _path_scene(root: Path) -> None:
    """A finished run, links to it, to nowhere and up the tree, a file, an empty directory."""
    (root / "run").mkdir()
    (root / "run" / "results.parquet").write_bytes(b"a finished run")
    (root / "dir").mkdir()
    (root / "file_here").write_text("not a directory")
    (root / "link_run").symlink_to(root / "run")
    (root / "link_missing").symlink_to(root / "nowhere" / "at all")
    (root / "dir" / "link_up").symlink_to(root)


@pytest.mark.timeout(600)
@FUZZ
@given(st.lists(st.sampled_from(PARTS), min_size=1, max_size=6), st.booleans())
def test_an_output_path_is_judged_where_the_os_will_put_it(parts, overwrite):
    """Paths with '..', links and missing parents: `check_out_dir` refuses (ConfigError, nothing touched) or
    names the directory that creating the path would give, and never one holding results without overwrite."""

    from fedmd_ray.outdir import check_out_dir

    with tempfile.TemporaryDirectory() as tmp:
        base, again = Path(tmp) / "a", Path(tmp) / "b"  # the scene, and a copy where the OS creates the path
        root = base / "scene"
        root.mkdir(parents=True)
        _path_scene(root)
        given_path = os.path.join(str(root), *parts)
        before = _snapshot(base)
        try:
            target = check_out_dir(given_path, replace=overwrite)
        except ConfigError:
            event("refused")
            assert _snapshot(base) == before
            return
        assert _snapshot(base) == before
        assert overwrite or not (target / "results.parquet").exists()
        if not target.is_relative_to(base):
            event("outside the scene")
            return
        replay = again / "scene"
        replay.mkdir(parents=True)
        _path_scene(replay)
        try:
            os.makedirs(os.path.join(str(replay), *parts), exist_ok=True)
        except OSError:
            event("the OS refuses it too")
            return
        made = os.path.realpath(os.path.join(str(replay), *parts))
        assert made == str(again / target.relative_to(base)), (parts, target)
        event("accepted")


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
@given(
    st.sampled_from(["x_train", "y_train", "x_test", "y_test"]),
    st.sampled_from(["float", "nan", "negative", "huge", "short", "flat", "empty", "text"]),
    st.booleans(),
)
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


# --- config files (`--config`, a run's config.json) ---------------------------------------------
file_scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["quick", "offline", "none", "mnist", "digits", "cnn2-8-16", "os:rmdir", "1,2", "5", "1e300"]),
)
file_values = st.recursive(  # what TOML and JSON can hold: tables and arrays, nested
    file_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8,
)
file_keys = st.one_of(
    st.sampled_from([*FIELDS, "preset", "config", "roundz", "rounds=3", " rounds"]), st.text(max_size=8)
)
documents = st.dictionaries(file_keys, st.one_of(st.none(), file_values), max_size=5).flatmap(
    lambda doc: st.one_of(st.just(doc), st.just({"config": doc, "fingerprint": "x"}))
)


def _toml_document(document: dict) -> str:
    """TOML for any parsed value: keys and strings quoted as JSON does (TOML basic strings), tables inline."""
    import json

    def value(v: object) -> str:
        if v is None:
            return '"none"'
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float):
            return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
        if isinstance(v, int):
            return str(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + "}"
        return json.dumps(v)

    return "".join(f"{json.dumps(k)} = {value(v)}\n" for k, v in document.items())


def _damage(data: bytes, how: str, where: int) -> bytes:
    """A document's bytes as a hostile or careless user leaves them."""
    cut = where % (len(data) + 1)
    return {
        "none": data,
        "truncated": data[:cut],
        "byte": data[:cut] + bytes([where % 256]) + data[cut + 1 :],
        "latin-1": data[:cut] + b"\xe9\xff" + data[cut:],
        "bom": b"\xef\xbb\xbf" + data,
        "deep": b'{"config": ' * 60 + data + b"}" * 60,
        "deep arrays": b"x = " + b"[" * 3000 + b"]" * 3000 + b"\n" + data,
    }[how]


@pytest.mark.timeout(600)
@FUZZ
@given(
    documents,
    st.sampled_from([".toml", ".json"]),
    st.booleans(),
    st.sampled_from(["none", "none", "truncated", "byte", "latin-1", "bom", "deep", "deep arrays"]),
    st.integers(0, 10**6),
    st.one_of(st.none(), st.binary(max_size=300)),
)
def test_config_files_give_a_config_or_a_config_error(document, suffix, as_json, how, where, random_bytes):
    """`--config FILE` (and a run's config.json): a FedMDConfig or one ConfigError, whatever the bytes;
    never another exception (a TypeError, RecursionError or UnicodeDecodeError is a bug)."""
    import json

    from fedmd_ray.config_file import config_from, read_config_file

    if random_bytes is not None:
        data = random_bytes
    else:
        text = json.dumps(document) if as_json else _toml_document(document)
        data = _damage(text.encode("utf-8", "surrogatepass"), how, where)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"exp{suffix}"
        path.write_bytes(data)
        before = _snapshot(Path(tmp))
        try:
            name, values = read_config_file(path)
            assert name is None or isinstance(name, str)
            assert isinstance(values, dict)
            config = config_from(path, None, {})
        except ConfigError:
            event("refused")
        else:
            assert isinstance(config, FedMDConfig)
            event("accepted")
        assert _snapshot(Path(tmp)) == before
