"""Trust boundaries: paths that lie, code nobody asked to run, full disks, plug-ins that exit.

Each test is an input a hostile or unlucky user can give; the guarantee is the one the README
states ("Check everything, then touch the disk", "Failures and resume"): one message and a
non-zero exit, no traceback, and nothing of a previous run lost.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fedmd_ray
from fedmd_ray.cli import main
from fedmd_ray.errors import ConfigError, DiskFull

QUICK = ["--preset", "quick", "--set", "backend=local", "--set", "rounds=1"]
CLI = str(Path(sys.executable).with_name("fedmd-ray"))  # the console script: what users type


def tree(root: Path) -> dict[str, str]:
    """Every entry under `root`: a link's target, a file's content hash, or 'dir'."""
    entries = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            entries[key] = "link:" + os.readlink(path)
        else:
            entries[key] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return entries


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """One finished `quick` run (one round), copied by the tests that need a victim."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main([*["run", *QUICK], "--out", str(out), "--quiet"]) == 0
    return out


def victim(finished: Path, where: Path) -> Path:
    shutil.copytree(finished, where)
    return where


def refused(
    argv: list[str], capsys: pytest.CaptureFixture[str], fragment: str, code: int = 2, party_traceback: bool = False
) -> str:
    """`fedmd-ray ARGV` exits with `code` and one error line holding `fragment`, without a traceback of
    fedmd_ray's own (`party_traceback`: a party's, which `on_party_failure=fail` shows as a warning)."""
    capsys.readouterr()
    assert main(argv) == code
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("fedmd-ray: error: ")]
    assert len(errors) == 1 and fragment in errors[0], err
    assert ("warning: Traceback" in err) if party_traceback else ("Traceback" not in err), err
    return errors[0]


# --- output paths ------------------------------------------------------------------------------


def test_a_path_through_a_missing_directory_is_checked_where_it_lands(finished, tmp_path, capsys, monkeypatch):
    """`nothere/../victim` is `victim` once `nothere` exists: refused without --overwrite, nothing created."""
    target = victim(finished, tmp_path / "victim")
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    refused(["run", *QUICK, "--out", "nothere/../victim"], capsys, f"(that is {target}) already holds a run's results")
    assert tree(tmp_path) == before


def test_an_overwrite_through_a_missing_directory_replaces_the_run_it_names_and_creates_nothing_else(
    finished, tmp_path, monkeypatch
):
    victim(finished, tmp_path / "victim")
    monkeypatch.chdir(tmp_path)
    assert main(["run", *QUICK, "--set", "seed=3", "--out", "nothere/../victim", "--overwrite", "-q"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim"]
    assert (
        fedmd_ray.load_results(tmp_path / "victim")["run_id"][0].as_py()
        != fedmd_ray.load_results(finished)["run_id"][0].as_py()
    )


def test_a_link_to_a_finished_run_is_refused_as_that_run(finished, tmp_path, capsys):
    target = victim(finished, tmp_path / "victim")
    (tmp_path / "link").symlink_to(target)
    before = tree(tmp_path)
    refused(["run", *QUICK, "--out", str(tmp_path / "link")], capsys, "already holds a run's results")
    assert tree(tmp_path) == before


def test_a_dangling_link_is_named_as_one(tmp_path, capsys):
    (tmp_path / "dangling").symlink_to(tmp_path / "gone" / "away")
    before = tree(tmp_path)
    refused(["run", *QUICK, "--out", str(tmp_path / "dangling")], capsys, "is a symbolic link to")
    assert tree(tmp_path) == before


def test_a_nul_byte_in_out_dir_is_refused_before_anything_loads(tmp_path):
    with pytest.raises(ConfigError, match="NUL byte"):
        fedmd_ray.run(fedmd_ray.preset("quick", backend="local", out_dir=str(tmp_path / "a\0b")))
    assert list(tmp_path.iterdir()) == []


def test_claiming_a_directory_checks_it_again_under_the_lock(tmp_path):
    """Two runs started on one fresh directory both pass the first check; the second to claim it is refused."""
    from fedmd_ray.outdir import check_out_dir, claim_out_dir

    path = check_out_dir(tmp_path / "fresh", replace=False)
    path.mkdir()
    (path / "results.parquet").write_bytes(b"the other run's")
    with pytest.raises(ConfigError, match="already holds a run's results"):
        with claim_out_dir(path):
            pass
    assert (path / "results.parquet").read_bytes() == b"the other run's"


def test_a_finished_run_leaves_no_lock_and_a_new_claim_removes_a_killed_write(finished, tmp_path):
    from fedmd_ray.outdir import LOCK_FILE, claim_out_dir

    assert not (finished / LOCK_FILE).exists()
    run = victim(finished, tmp_path / "run")
    (run / ".results.parquet.k1ll3d.tmp").write_bytes(b"half a table")
    (run / "notes.tmp").write_bytes(b"not ours")
    with claim_out_dir(run, resume=True):
        pass
    assert sorted(p.name for p in run.iterdir()) == sorted([*(p.name for p in finished.iterdir()), "notes.tmp"])


# --- code nobody asked to run ------------------------------------------------------------------


def test_the_current_directory_never_shadows_an_installed_package(finished, tmp_path):
    """A `pyarrow.py` where the user types `fedmd-ray report` is not imported (it would run its code)."""
    (tmp_path / "pyarrow.py").write_text("open('IMPORTED', 'w').close()\nraise SystemExit('shadowed')\n")
    done = subprocess.run([CLI, "report", str(finished)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "IMPORTED").exists()


def test_a_users_module_in_the_current_directory_is_still_found(tmp_path):
    (tmp_path / "mynets.py").write_text(
        "from torch import nn\n\ndef mlp(shape, n):\n    return nn.Sequential(nn.Flatten(), nn.Linear(64, n))\n"
    )
    done = subprocess.run(
        [CLI, "run", *QUICK, "--set", "models=mynets:mlp", "--out", "r", "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert set(fedmd_ray.load_results(tmp_path / "r")["model"].to_pylist()) == {"mynets:mlp"}


@pytest.mark.slow
def test_ray_workers_do_not_import_a_module_from_the_current_directory(tmp_path):
    """Ray puts the driver's directory first on its workers' paths: a `torch.py` there must not be imported."""
    (tmp_path / "torch.py").write_text("open('IMPORTED', 'w').close()\nraise SystemExit('shadowed')\n")
    done = subprocess.run(
        [CLI, "run", "--preset", "quick", "--set", "rounds=1", "--out", "r", "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "IMPORTED").exists()


TRUSTED_NOWHERE = {
    "a standard-library function": ("public_data", "os:rmdir"),
    "a standard-library function of the same shape": ("public_data", "shutil:rmtree"),
    "a function of a package fedmd_ray runs on": ("models", "numpy:save"),
    "a strategy from the standard library": ("strategy", "subprocess:run"),
    "a re-export of a standard-library function": ("public_data", "plugin_fixtures:reexported_rmtree"),
    "a path through a module": ("private_data", "plugin_fixtures:np.save"),
    "a class that is no model": ("models", "plugin_fixtures:Float64Overflow"),
}


@pytest.mark.parametrize("case", list(TRUSTED_NOWHERE))
def test_a_config_string_reaches_only_plug_ins(case, tmp_path, capsys):
    """A config file's (or --set's) import path never calls what is not a plug-in: a data root that
    `os:rmdir` would remove is still there after the refusal."""
    field, entry = TRUSTED_NOWHERE[case]
    (tmp_path / "root" / "keep").mkdir(parents=True)
    config = tmp_path / "evil.toml"
    value = f'["{entry}"]' if field == "models" else f'"{entry}"'
    config.write_text(f'preset = "quick"\n{field} = {value}\ndata_root = "{tmp_path / "root"}"\nbackend = "local"\n')
    before = tree(tmp_path)
    refused(["run", "--config", str(config), "--out", str(tmp_path / "out")], capsys, entry.partition(":")[0])
    assert tree(tmp_path) == before


# --- plug-ins that exit ------------------------------------------------------------------------


def test_a_strategy_calling_sys_exit_fails_the_run(tmp_path, capsys):
    refused(
        ["run", *QUICK, "--set", "strategy=plugin_fixtures:ExitsInAggregate", "--out", str(tmp_path / "r")],
        capsys,
        "strategy ExitsInAggregate raised in aggregate of round 1: PluginExit",
    )


def test_a_data_loader_calling_sys_exit_is_a_refusal(tmp_path, capsys):
    refused(
        ["run", *QUICK, "--set", "public_data=plugin_fixtures:exiting_loader", "--out", str(tmp_path / "r")],
        capsys,
        "its loader raised PluginExit",
    )
    assert not (tmp_path / "r").exists()


def test_a_party_calling_sys_exit_is_a_party_failure(tmp_path, capsys):
    refused(
        [
            "run",
            *QUICK,
            "--set",
            "strategy=plugin_fixtures:ExitsInDigest",
            "--set",
            "on_party_failure=fail",
            "--out",
            str(tmp_path / "r"),
        ],
        capsys,
        "PluginExit",
        party_traceback=True,
    )


def test_sys_exit_anywhere_in_a_command_is_not_a_success(monkeypatch, capsys):
    import fedmd_ray.analysis.report

    monkeypatch.setattr(fedmd_ray.analysis.report, "report", lambda directory: sys.exit(0))
    refused(["report", "anything"], capsys, "called sys.exit(0)", code=1)


def test_a_strategy_whose_targets_overflow_float32_is_named(tmp_path, capsys):
    refused(
        ["run", *QUICK, "--set", "strategy=plugin_fixtures:Float64Overflow", "--out", str(tmp_path / "r")],
        capsys,
        "beyond float32's range",
    )


# --- full disks --------------------------------------------------------------------------------


def fill_disk_after(monkeypatch: pytest.MonkeyPatch, writes: int) -> list[Path]:
    """Every file write after the first `writes` fails with ENOSPC, as on a full disk; the list
    collects the targets tried."""
    import fedmd_ray.analysis.io as io_module

    tried: list[Path] = []
    original = io_module._write_all

    def write_all(fd: int, payload: bytes, path: Path) -> None:
        tried.append(path)
        if len(tried) > writes:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        original(fd, payload, path)

    monkeypatch.setattr(io_module, "_write_all", write_all)
    return tried


@pytest.mark.parametrize("writes", [0, 2])
def test_a_full_disk_never_costs_the_run_an_overwrite_would_replace(finished, tmp_path, capsys, monkeypatch, writes):
    """The new run's first save stages every file before any old one is replaced: whichever write fails,
    the old run is whole, and no temporary file is left."""
    run = victim(finished, tmp_path / "run")
    before = tree(tmp_path)
    tried = fill_disk_after(monkeypatch, writes)
    line = refused(
        ["run", *QUICK, "--set", "seed=3", "--out", str(run), "--overwrite"], capsys, "No space left on device"
    )
    assert "what the directory held before is kept as it was" in line and len(tried) == writes + 1
    assert tree(tmp_path) == before


def test_a_full_disk_mid_run_keeps_the_last_round_and_the_run_resumes(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    tried = fill_disk_after(monkeypatch, 3)  # the first save (config, results, checkpoint), then nothing
    line = refused(["run", *QUICK[:-1], "rounds=2", "--out", str(out)], capsys, "No space left on device")
    assert "continue it with --resume" in line and len(tried) == 4
    assert max(fedmd_ray.load_results(out)["round"].drop_null().to_pylist()) == 0
    monkeypatch.undo()
    assert main(["run", "--resume", str(out), "-q"]) == 0
    assert max(fedmd_ray.load_results(out)["round"].drop_null().to_pylist()) == 2


def test_disk_full_is_one_error_with_the_sizes(tmp_path, monkeypatch):
    from fedmd_ray.analysis.io import atomic_write_bytes

    fill_disk_after(monkeypatch, 0)
    (tmp_path / "f").write_bytes(b"old")
    with pytest.raises(
        DiskFull, match=r"cannot write .*/f: No space left on device \(5 bytes to write; .* bytes are free"
    ):
        atomic_write_bytes(tmp_path / "f", b"new!!")
    assert [p.name for p in tmp_path.iterdir()] == ["f"] and (tmp_path / "f").read_bytes() == b"old"


# --- round_timeout_s in this process ----------------------------------------------------------


def test_backend_local_holds_round_timeout_s(tmp_path, capsys, monkeypatch):
    from fedmd_ray.faults import VARIABLE

    monkeypatch.setenv(VARIABLE, "party=1,round=1,method=digest,action=hang")
    refused(
        ["run", *QUICK, "--set", "round_timeout_s=2", "--set", "on_party_failure=fail", "--out", str(tmp_path / "r")],
        capsys,
        "party 1 (mlp-64) failed in digest/revisit/evaluate of round 1: no answer within 2 s",
    )


def test_the_deadline_leaves_an_outer_alarm_armed():
    import signal

    from fedmd_ray.actors.deadline import deadline

    fired = []
    previous = signal.signal(signal.SIGALRM, lambda *_: fired.append(True))
    signal.setitimer(signal.ITIMER_REAL, 30)
    try:
        with deadline(5):
            pass
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 20 < remaining <= 30
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert not fired


# --- damaged run directories -------------------------------------------------------------------


def damaged(finished: Path, where: Path, change) -> Path:
    import torch

    run = victim(finished, where)
    payload = torch.load(run / "checkpoint.pt", weights_only=True)
    change(payload)
    torch.save(payload, run / "checkpoint.pt")
    return run


def random_states(payload: dict) -> None:
    import torch

    generator = np.random.default_rng(0)
    payload["states"] = {
        p: torch.from_numpy(generator.integers(0, 256, 5000, dtype=np.uint8)) for p in payload["states"]
    }


DAMAGE = {
    "party states of random bytes": (random_states, "party 0's saved state is not a model"),
    "junk rows": (lambda p: p.update(rows=[{"junk": 1}]), "row 0 is not a result row"),
    "rows of a later round": (lambda p: p.update(round=0), "belongs to round 1, but the checkpoint is of round 0"),
    "rows without their rounds": (
        lambda p: p.update(rows=[r for r in p["rows"] if r["phase"] != "collaborate"]),
        "its rows hold rounds [], not 1..1",
    ),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_checkpoint_is_one_message_naming_the_damage(case, finished, tmp_path, capsys):
    change, fragment = DAMAGE[case]
    run = damaged(finished, tmp_path / "run", change)
    before = tree(tmp_path)
    line = refused(["run", "--resume", str(run)], capsys, fragment)
    assert "weights_only" not in line and "is damaged" in line
    assert tree(tmp_path) == before


def test_an_image_folder_with_a_link_loop_is_refused_not_read_again_and_again(tmp_path):
    from PIL import Image

    from fedmd_ray.errors import DataError

    for part in ("train", "test"):
        for name in ("a", "b"):
            (tmp_path / part / name).mkdir(parents=True)
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / part / name / "0.png")
    (tmp_path / "train" / "a" / "again").symlink_to(tmp_path / "train" / "a")
    with pytest.raises(DataError, match="leads back to .*a loop"):
        fedmd_ray.data.load_source(str(tmp_path))
