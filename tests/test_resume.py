"""Checkpoints and resume: a run killed mid-round continues to the same table."""

import fcntl
import json
import os
import shutil
import signal
import subprocess
import time

import pyarrow.parquet as pq
import pytest
from cli_helpers import CLI

import fedmd_ray
from fedmd_ray import runner
from fedmd_ray.checkpoint import load_checkpoint
from fedmd_ray.cli import main
from fedmd_ray.errors import ConfigError
from fedmd_ray.outdir import CHECKPOINT_FILE, LOCK_FILE

# digest_epochs=40 makes a round last seconds, so a kill lands inside one
SLOW = dict(backend="local", rounds=4, torch_threads=1, digest_epochs=40)


def _metrics(table):
    return table.select(["party", "phase", "round", "test_accuracy", "test_loss"]).to_pylist()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    return fedmd_ray.run(fedmd_ray.preset("quick", **SLOW), out_dir=out, verbose=False), out


def _stop_in_round_two(out, signum, **fields):
    """Start a CLI run of `SLOW` (with `fields` changed) into `out` and send it `signum` inside round 2
    (after round 1's checkpoint); returns its exit code and stderr."""
    sets = [a for k, v in {**SLOW, **fields}.items() for a in ("--set", f"{k}={v}")]
    proc = subprocess.Popen(
        [*CLI, "run", "--preset", "quick", *sets, "--out", str(out), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            checkpoint = load_checkpoint(out) if (out / CHECKPOINT_FILE).exists() else None
            if checkpoint is not None and checkpoint.round >= 1:
                break
            assert proc.poll() is None, "the run ended before it could be stopped"
            time.sleep(0.05)
        time.sleep(0.5)  # well inside the next round (a round takes seconds)
        os.kill(proc.pid, signum)
        _, err = proc.communicate(timeout=120)  # a clean stop saves and exits within bounds
    finally:
        proc.kill()
        proc.wait(timeout=30)
    return proc.returncode, err


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """A CLI run SIGKILLed inside round 2 (after round 1's checkpoint)."""
    out = tmp_path_factory.mktemp("killed") / "run"
    _stop_in_round_two(out, signal.SIGKILL)
    return out


@pytest.mark.parametrize("backend", ["local", "ray"])
def test_sigterm_stops_a_run_as_ctrl_c_does_and_it_resumes(backend, tmp_path, reference):
    """`kill`, `timeout` or a batch scheduler: exit 130 with one line, no abort, the checkpoint kept."""
    code, err = _stop_in_round_two(tmp_path / "run", signal.SIGTERM, backend=backend)
    assert code == 130 and "fedmd-ray: interrupted" in err, err
    assert "SIGTERM received" not in err and "Traceback" not in err
    assert load_checkpoint(tmp_path / "run").round in (1, 2)
    if backend == "local":  # the reference's backend: the same numbers
        resumed = fedmd_ray.run(fedmd_ray.preset("quick", **SLOW), out_dir=tmp_path / "run", resume=True, verbose=False)
        assert _metrics(resumed) == _metrics(reference[0])


def test_results_are_readable_after_sigkill(killed, capsys):
    table = pq.read_table(killed / "results.parquet")
    rounds = set(table.column("round").to_pylist())
    assert {0, 1} <= rounds and 4 not in rounds
    assert load_checkpoint(killed).round in (1, 2)
    assert main(["report", str(killed)]) == 0  # says the run is unfinished and how to continue it
    done = max(r for r in rounds if r is not None)
    assert f"the run stopped after round {done} of 4; continue it with `fedmd-ray run --resume {killed}`" in (
        capsys.readouterr().out
    )


def test_resume_after_sigkill_gives_the_uninterrupted_table(killed, reference):
    table, _ = reference
    resumed = fedmd_ray.run(fedmd_ray.preset("quick", **SLOW), out_dir=killed, resume=True, verbose=False)
    # CPU, same seed and thread count: bit-identical accuracies and losses.
    assert _metrics(resumed) == _metrics(table)
    assert _metrics(fedmd_ray.load_results(killed)) == _metrics(table)
    assert load_checkpoint(killed).round == 4


def test_resume_with_a_different_config_is_refused_and_changes_nothing(reference):
    _, out = reference
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(ConfigError, match=r"digest_epochs \(saved 40, given 2\)"):
        fedmd_ray.run(fedmd_ray.preset("quick", **{**SLOW, "digest_epochs": 2}), out_dir=out, resume=True)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_resume_may_change_how_the_run_executes(reference):
    table, out = reference  # finished: resuming runs no round and returns the same rows
    again = fedmd_ray.run(
        fedmd_ray.preset("quick", **{**SLOW, "parties_per_actor": 2}), out_dir=out, resume=True, verbose=False
    )
    assert _metrics(again) == _metrics(table)


def test_cli_resume_reads_the_saved_config_and_refuses_changes(reference, capsys):
    _, out = reference
    assert main(["run", "--resume", str(out), "--quiet"]) == 0
    assert main(["run", "--resume", str(out), "--set", "seed=3"]) == 2
    assert "seed (saved 0, given 3)" in capsys.readouterr().err


def test_a_run_saved_before_a_field_existed_resumes_with_the_field_at_its_default(reference, tmp_path, capsys):
    """Upgrading fedmd_ray adds fields; a run saved without one did what its default does."""
    _, out = reference
    old = tmp_path / "old"
    shutil.copytree(out, old)
    saved = json.loads((old / "config.json").read_text())
    for part in ("config", "identity"):
        del saved[part]["head_epochs"]
    (old / "config.json").write_text(json.dumps(saved))
    assert main(["run", "--resume", str(old), "--quiet"]) == 0
    assert main(["run", "--resume", str(old), "--set", "head_epochs=3"]) == 2
    assert "head_epochs (saved None, given 3)" in capsys.readouterr().err


def test_resume_without_a_run_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="config.json is missing"):
        fedmd_ray.run(fedmd_ray.preset("quick", backend="local"), out_dir=tmp_path, resume=True)


def test_a_corrupt_checkpoint_is_refused(reference, tmp_path):
    _, out = reference
    for name in ("config.json", CHECKPOINT_FILE):
        (tmp_path / name).write_bytes((out / name).read_bytes())
    (tmp_path / CHECKPOINT_FILE).write_bytes((out / CHECKPOINT_FILE).read_bytes()[:100])
    with pytest.raises(ConfigError, match="checkpoint.pt is damaged: it is not a file torch can read"):
        fedmd_ray.run(fedmd_ray.preset("quick", **SLOW), out_dir=tmp_path, resume=True)
    (tmp_path / CHECKPOINT_FILE).unlink()  # what that message says to do; the results stay
    (tmp_path / "results.parquet").write_bytes((out / "results.parquet").read_bytes())
    with pytest.raises(ConfigError, match=r"no checkpoint.pt \(it was removed\).*--out DIR --overwrite"):
        fedmd_ray.run(fedmd_ray.preset("quick", **SLOW), out_dir=tmp_path, resume=True)


def test_an_overwrite_that_dies_before_its_first_checkpoint_leaves_the_old_run_whole(reference, tmp_path, monkeypatch):
    """The old run stays intact until the new one's first phase is on disk; the new run's config cannot
    resume the old run's states (its config differs), the old run's config still can."""
    _, finished = reference
    out = tmp_path / "reused"
    shutil.copytree(finished, out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    models = {p.name: p.read_bytes() for p in (out / "models").iterdir()}

    def dies_at_start(*args, **kwargs):
        raise RuntimeError("killed before transfer learning finished")
        yield  # a generator, like the real one

    monkeypatch.setattr(runner, "run_phases", dies_at_start)
    other = fedmd_ray.preset("quick", **{**SLOW, "seed": 1})
    with pytest.raises(RuntimeError, match="killed before"):
        fedmd_ray.run(other, out_dir=out, overwrite=True, verbose=False)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert {p.name: p.read_bytes() for p in (out / "models").iterdir()} == models  # its party models too
    with pytest.raises(ConfigError, match=r"with a different config: seed \(saved 0, given 1\)"):
        fedmd_ray.run(other, out_dir=out, resume=True, verbose=False)


def test_a_checkpoint_of_another_run_is_refused(reference, tmp_path):
    _, finished = reference
    out = tmp_path / "mixed"
    shutil.copytree(finished, out)
    saved = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**saved, "fingerprint": "0123456789abcdef"}))
    with pytest.raises(ConfigError, match="belongs to run"):
        fedmd_ray.run(fedmd_ray.preset("quick", **SLOW), out_dir=out, resume=True, verbose=False)


def test_a_directory_in_use_by_another_run_is_refused(tmp_path):
    """Two runs writing one directory would mix their files; the second one stops before writing."""
    out = tmp_path / "busy"
    out.mkdir()
    with open(out / LOCK_FILE, "w") as held:  # what a running run holds
        held.write("4242")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(ConfigError, match=r"in use by another run or sweep \(pid 4242\)"):
            fedmd_ray.run(fedmd_ray.preset("quick", **{**SLOW, "rounds": 0}), out_dir=out, verbose=False)
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]
    fedmd_ray.run(fedmd_ray.preset("quick", **{**SLOW, "rounds": 0}), out_dir=out, verbose=False)  # free again
    assert (out / "results.parquet").exists()


def test_resuming_a_finished_run_writes_its_table_again(reference, tmp_path):
    table, finished = reference
    out = tmp_path / "finished"
    shutil.copytree(finished, out)
    (out / "results.parquet").unlink()
    resumed = fedmd_ray.run(fedmd_ray.preset("quick", **SLOW), out_dir=out, resume=True, verbose=False)
    assert _metrics(pq.read_table(out / "results.parquet")) == _metrics(resumed) == _metrics(table)


def test_a_resumed_swa_run_continues_from_the_saved_average(stopped_and_resumed):
    """`swa`: the running average is party state; a run stopped in round 3 resumes to the same table
    (3 rounds: the average starts at round 2, so round 3 needs round 2's weights from the checkpoint)."""
    config = fedmd_ray.preset("quick", swa=True, backend="local", rounds=3, torch_threads=1)
    straight, resumed = stopped_and_resumed(config)
    assert _metrics(resumed) == _metrics(straight)
    plain = fedmd_ray.run(config.replace(swa=False), verbose=False)
    assert [r["test_loss"] for r in _metrics(plain) if r["round"] == 3] != [
        r["test_loss"] for r in _metrics(straight) if r["round"] == 3
    ]


def test_a_resumed_wise_ft_run_blends_with_the_saved_round0_weights(stopped_and_resumed):
    """`wise_ft`: theta_0 is party state; a run stopped in round 3 (with `swa`: the blend of theta_0
    and the saved average) resumes to the same table."""
    config = fedmd_ray.preset("quick", swa=True, wise_ft=0.5, backend="local", rounds=3, torch_threads=1)
    straight, resumed = stopped_and_resumed(config)
    assert _metrics(resumed) == _metrics(straight)
    unblended = fedmd_ray.run(config.replace(wise_ft=1.0), verbose=False)
    assert [r["test_loss"] for r in _metrics(unblended) if r["round"] == 3] != [
        r["test_loss"] for r in _metrics(straight) if r["round"] == 3
    ]


def test_a_resumed_run_with_revisit_shift_draws_the_same_offsets(stopped_and_resumed):
    """`revisit_shift`: the offsets come from each party's own RNG stream, which checkpoints carry, so a
    run stopped in round 3 resumes to the uninterrupted table; the shift changes what the rounds give."""
    config = fedmd_ray.preset("quick", revisit_shift=1, backend="local", rounds=3, torch_threads=1)
    straight, resumed = stopped_and_resumed(config)
    assert _metrics(resumed) == _metrics(straight)
    unshifted = fedmd_ray.run(config.replace(revisit_shift=0), verbose=False)
    assert [r["test_loss"] for r in _metrics(unshifted) if r["round"] == 3] != [
        r["test_loss"] for r in _metrics(straight) if r["round"] == 3
    ]
