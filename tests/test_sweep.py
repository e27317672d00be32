"""Ray Tune sweeps of `quick` on a 2-CPU Ray: tables, packing, ASHA, resume, report."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from cli_helpers import CLI

import fedmd_ray
from fedmd_ray.analysis.schema import RESULT_SCHEMA
from fedmd_ray.errors import ConfigError, ResourceError, TrialsFailed
from fedmd_ray.faults import VARIABLE

GRID = {"subset_size": [100, 300], "digest_epochs": [1, 2]}


class PlacementSampler(threading.Thread):
    """Polls the placement groups while a sweep runs: how many trials hold resources at once."""

    def __init__(self, ray) -> None:
        super().__init__(daemon=True)
        self.ray, self.stop, self.max_groups, self.max_cpus = ray, threading.Event(), 0, 0.0

    def run(self) -> None:
        from ray.util import placement_group_table

        while not self.stop.is_set():
            created = [g for g in placement_group_table().values() if g["state"] == "CREATED"]
            self.max_groups = max(self.max_groups, len(created))
            self.max_cpus = max(self.max_cpus, sum(b.get("CPU", 0) for g in created for b in g["bundles"].values()))
            time.sleep(0.1)


@pytest.fixture(scope="module")
def grid_sweep(ray_cluster, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    sampler = PlacementSampler(ray_cluster)
    sampler.start()
    # 3 parties x 0.3 CPU + 0.05 for the trial = 0.95 CPU: two trials fit in 2 CPUs
    config = fedmd_ray.preset("quick", cpus_per_party=0.3, torch_threads=1)
    table = fedmd_ray.sweep(config, GRID, out_dir=out, verbose=False)
    sampler.stop.set()
    sampler.join()
    return table, out, sampler


def test_sweep_table_has_one_row_set_per_trial_and_param_columns(grid_sweep):
    table, out, _ = grid_sweep
    assert table.column_names == RESULT_SCHEMA.names + ["trial_id", "subset_size", "digest_epochs", "trial_status"]
    assert set(table["trial_status"].to_pylist()) == {"finished"}
    df = table.to_pandas()
    per_trial = df.groupby("trial_id").size()
    assert len(per_trial) == 4 and set(per_trial) == {3 * (2 + 2)}  # 3 parties x (transfer, upper bound, 2 rounds)
    points = df.groupby("trial_id")[["subset_size", "digest_epochs"]].first()
    assert sorted(map(tuple, points.values.tolist())) == [(100, 1), (100, 2), (300, 1), (300, 2)]
    assert pq.read_table(out / "sweep.parquet").num_rows == table.num_rows
    # Tune's TensorBoard logger wrote each trial's reports (see docs/sweeps.md)
    assert len(list((out / "tune" / "fedmd_sweep").glob("trainable_*/events.out.tfevents*"))) == 4


def test_sweep_summary_is_sorted_by_gain(grid_sweep):
    _, out, _ = grid_sweep
    summary = pq.read_table(out / "summary.parquet").to_pandas()
    assert len(summary) == 4 and set(summary["status"]) == {"finished"}
    assert summary["gain"].is_monotonic_decreasing
    assert (summary["final"] - summary["baseline"] - summary["gain"]).abs().max() < 1e-12


def test_trials_pack_without_oversubscribing(grid_sweep, ray_cluster):
    *_, sampler = grid_sweep
    assert sampler.max_groups == 2  # two trials at once ...
    assert sampler.max_cpus <= ray_cluster.cluster_resources()["CPU"]  # ... never more CPU than exists


def test_transfer_learning_is_shared_by_trials(grid_sweep):
    table, *_ = grid_sweep
    df = table.to_pandas()
    round0 = df[df["phase"] == "transfer"].groupby("trial_id")["test_accuracy"].apply(tuple)
    assert len(set(round0)) == 1  # same transfer settings => identical round 0 in every trial


def test_report_writes_readable_pngs(grid_sweep):
    from matplotlib.image import imread

    from fedmd_ray.analysis.report import report

    _, out, _ = grid_sweep
    text, paths = report(out)
    assert "gain" in text
    assert {p.name for p in paths} == {"gain_vs_subset_size.png", "gain_vs_digest_epochs.png", "gain_heatmap.png"}
    for path in paths:
        assert imread(path).shape[:2] == (500, 800)


def test_report_of_a_run(tmp_path):
    from matplotlib.image import imread

    from fedmd_ray.analysis.report import report

    fedmd_ray.run(fedmd_ray.preset("quick", backend="local", rounds=1), out_dir=tmp_path, verbose=False)
    text, paths = report(tmp_path)
    assert text.startswith("mean test accuracy: ") and "after transfer learning (round 0)" in text
    assert [p.name for p in paths] == ["accuracy_by_round.png"] and imread(paths[0]).shape[:2] == (500, 800)


@pytest.mark.slow  # ~40-50 s: a four-trial ASHA sweep
def test_asha_stops_poor_trials_early(ray_cluster, tmp_path):
    # Designed case: the first trial (ASHA always lets it through) trains on its private data;
    # the next two barely or never do, so their round-0 accuracy falls below the first rung's cutoff.
    config = fedmd_ray.preset("quick", backend="local", rounds=4)
    table = fedmd_ray.sweep(
        config,
        {"private_epochs": [40, 0, 1]},
        scheduler="asha",
        max_concurrent_trials=1,
        out_dir=tmp_path,
        verbose=False,
    )
    rounds_run = table.to_pandas().groupby("private_epochs")["round"].max().to_dict()
    assert rounds_run[40] == 4
    assert rounds_run[0] < 4 and rounds_run[1] < 4
    status = table.to_pandas().groupby("private_epochs")["trial_status"].first().to_dict()
    assert status == {40: "finished", 0: "stopped", 1: "stopped"}


def _latest(results: Path) -> list[Path]:
    """Each trial's latest attempt's table, in trial order."""
    from fedmd_ray.sweeps.trainable import latest_attempts

    return [Path(uri) for _, uri in sorted(latest_attempts(str(results)).items())]


def _past_round_one(paths) -> bool:
    try:
        return bool(paths) and 1 in pq.read_table(paths[0], columns=["round"])["round"].to_pylist()
    except OSError:  # being replaced
        return False


def _metrics(rows):
    return sorted((r["party"], r["phase"], r["round"] or 0, r["test_accuracy"], r["test_loss"]) for r in rows)


def _run_alone(**overrides):
    config = fedmd_ray.preset("quick", backend="local", torch_threads=1, **overrides)
    return fedmd_ray.run(config, verbose=False).to_pylist()


@pytest.mark.slow  # ~60-90 s: a sweep killed and resumed
def test_resume_after_kill_redoes_nothing_finished(ray_cluster, tmp_path):
    """Killed mid-trial: finished trials are not rerun, the interrupted one continues from its last
    finished round (its transfer rows are kept, not recomputed) and ends with an uninterrupted run's table."""
    script = textwrap.dedent(
        f"""
        import ray, fedmd_ray
        ray.init(address="local", num_cpus=2, include_dashboard=False)
        config = fedmd_ray.preset("quick", backend="local", rounds=4, torch_threads=1)
        fedmd_ray.sweep(config, {{"subset_size": [100, 150, 200]}}, max_concurrent_trials=1,
                        out_dir={str(tmp_path)!r}, verbose=False)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.DEVNULL, start_new_session=True)
    experiment = tmp_path / "tune" / "fedmd_sweep"
    results = experiment / "fedmd_results"
    deadline = time.monotonic() + 180
    while not _past_round_one(_latest(results)[1:2]):  # trial 2 finished its round 1
        assert time.monotonic() < deadline and proc.poll() is None, "the sweep did not get going"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    first, second = _latest(results)[:2]
    finished = first.stat().st_mtime_ns
    interrupted = pq.read_table(second).to_pylist()
    kept = [r for r in interrupted if r["phase"] != "collaborate"]

    table = fedmd_ray.sweep(
        fedmd_ray.preset("quick", backend="local", rounds=4, torch_threads=1),
        {"subset_size": [100, 150, 200]},
        max_concurrent_trials=1,
        out_dir=tmp_path,
        resume=True,
        verbose=False,
    )
    df = table.to_pandas()
    assert sorted(df["subset_size"].unique()) == [100, 150, 200]
    assert df.groupby("trial_id")["round"].max().min() == 4
    assert _latest(results)[0] == first and first.stat().st_mtime_ns == finished  # not rerun
    resumed = pq.read_table(_latest(results)[1]).to_pylist()
    assert [r for r in resumed if r["phase"] != "collaborate"] == kept  # round 0 not recomputed (same seconds)
    subset = resumed[0]["subset_size"]
    assert _metrics(resumed) == _metrics(_run_alone(rounds=4, subset_size=subset))


def test_a_trial_whose_latest_table_holds_the_whole_run_is_not_run_again(tmp_path):
    """Tune saves its experiment state on a timer: killed after a trial ended and before that save, a
    resumed sweep restores the trial from an earlier checkpoint. Its own table says it is done."""
    from fedmd_ray.sweeps.trainable import _finished_rows

    config = fedmd_ray.preset("quick", backend="local", rounds=2, torch_threads=1)
    fedmd_ray.run(config, out_dir=tmp_path / "run", verbose=False)
    results = tmp_path / "results"
    results.mkdir()
    (results / "t1.5.parquet").write_bytes((tmp_path / "run" / "results.parquet").read_bytes())
    done = _finished_rows(str(results), "t1", config)
    assert done is not None and max(r["round"] or 0 for r in done) == 2
    assert _finished_rows(str(results), "t1", config.replace(rounds=3)) is None  # a longer run is not done
    assert _finished_rows(str(results), "t2", config) is None  # another trial has no table yet
    whole = pq.read_table(results / "t1.5.parquet")
    pq.write_table(whole.filter(pc.equal(whole["phase"], "transfer")), results / "t1.9.parquet")
    assert _finished_rows(str(results), "t1", config) is None  # the latest attempt counts: it stopped early


@pytest.mark.slow
def test_a_failed_trial_is_retried_from_its_last_round(tmp_path):
    script = textwrap.dedent(
        f"""
        import ray, fedmd_ray
        ray.init(address="local", num_cpus=2, include_dashboard=False)
        config = fedmd_ray.preset("quick", backend="local", rounds=3, on_party_failure="fail", torch_threads=1)
        fedmd_ray.sweep(config, {{"seed": [0]}}, max_failures=1, out_dir={str(tmp_path)!r}, verbose=True)
        """
    )
    env = {**os.environ, VARIABLE: f"party=1,round=2,method=digest,action=raise,once={tmp_path / 'fired'}"}
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=280, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "fired").exists()  # the fault did fire once
    rows = pq.read_table(tmp_path / "sweep.parquet").to_pylist()
    assert _metrics(rows) == _metrics(_run_alone(rounds=3))


def test_a_second_sweep_into_the_same_directory_is_refused(grid_sweep):
    _, out, _ = grid_sweep
    with pytest.raises(ConfigError, match="already exists"):
        fedmd_ray.sweep(fedmd_ray.preset("quick"), GRID, out_dir=out, verbose=False)


def test_bad_grid_values_are_refused_before_any_trial(ray_cluster, tmp_path):
    with pytest.raises(ConfigError, match="subset_size=99999 exceeds the public set"):
        fedmd_ray.sweep(fedmd_ray.preset("quick"), {"subset_size": [100, 99999]}, out_dir=tmp_path, verbose=False)
    assert not (tmp_path / "tune").exists()


def test_trials_larger_than_the_cluster_are_refused(ray_cluster, tmp_path):
    with pytest.raises(ResourceError, match=r"one trial needs CPU=3.05.*cluster has CPU=2"):
        fedmd_ray.sweep(fedmd_ray.preset("quick", cpus_per_party=1.0), {"rounds": [1]}, out_dir=tmp_path, verbose=False)


def test_a_failing_trial_is_retried_the_sweep_goes_on_and_then_raises(ray_cluster, tmp_path, capsys):
    # actor_start_timeout_s=0.001 passes validation but no actor starts that fast: the trial
    # raises ResourceError, is retried once, fails again; the other trial still finishes, the
    # tables are written, and only then does the sweep raise: a failure never looks finished.
    # (cpus_per_party=0.6: 1.8 CPUs make two party actors, not parties inside the trial.)
    # Tune's storage is given as a URI (pyarrow filesystems) rather than a plain path.
    with pytest.raises(TrialsFailed, match=r"1 of 2 trials failed") as failed:
        fedmd_ray.sweep(
            fedmd_ray.preset("quick", rounds=1, cpus_per_party=0.6),
            {"actor_start_timeout_s": [0.001, 120.0]},
            max_failures=1,
            storage_path=f"file://{tmp_path}/store",
            out_dir=tmp_path / "out",
            verbose=True,
        )
    table = failed.value.table
    assert table.to_pandas()["actor_start_timeout_s"].unique().tolist() == [120.0]
    assert len(failed.value.failed) == 1 and failed.value.failed[0] not in table["trial_id"].to_pylist()
    assert re.fullmatch(r"[0-9a-f]+_0000[01]", failed.value.failed[0])  # Tune's id, though it never reported
    err = capsys.readouterr().err
    assert f"trial {failed.value.failed[0]} {{'actor_start_timeout_s': 0.001}} failed (after 1 retries)" in err
    assert "ResourceError: " in err and "error.txt" in err
    assert "Trial task failed" not in err  # Tune's own report of it only with debug output
    assert pq.read_table(tmp_path / "out" / "sweep.parquet").num_rows == table.num_rows


@pytest.mark.slow  # ~45-60 s: sampled domains over several trials
def test_tune_search_domains_and_samples(ray_cluster, tmp_path):
    from ray import tune

    table = fedmd_ray.sweep(
        fedmd_ray.preset("quick", backend="local", rounds=1),
        {"collab_lr": tune.loguniform(1e-4, 1e-3), "subset_size": [100, 200]},
        num_samples=2,
        out_dir=tmp_path,
        verbose=False,
    )
    points = table.to_pandas().groupby("trial_id")[["collab_lr", "subset_size"]].first()
    assert len(points) == 4 and sorted(points["subset_size"]) == [100, 100, 200, 200]
    assert points["collab_lr"].between(1e-4, 1e-3).all() and points["collab_lr"].nunique() == 4


def test_resuming_a_sweep_with_other_settings_is_refused(grid_sweep):
    """Tune would return the saved trials whatever is asked: a changed sweep must be refused."""
    _, out, _ = grid_sweep
    config = fedmd_ray.preset("quick", cpus_per_party=0.3, torch_threads=1)
    with pytest.raises(ConfigError, match=r"cannot resume the sweep .*space \(saved"):
        fedmd_ray.sweep(config, {**GRID, "subset_size": [100, 200]}, out_dir=out, resume=True, verbose=False)
    with pytest.raises(ConfigError, match=r"rounds \(saved 2, given 1\)"):
        fedmd_ray.sweep(config.replace(rounds=1), GRID, out_dir=out, resume=True, verbose=False)


def test_bad_sweep_arguments_are_refused_before_ray(tmp_path):
    with pytest.raises(ConfigError, match="gives rounds no values"):
        fedmd_ray.sweep(fedmd_ray.preset("quick"), {"rounds": []}, out_dir=tmp_path, verbose=False)
    with pytest.raises(ConfigError, match="same seed: identical trials"):
        fedmd_ray.sweep(fedmd_ray.preset("quick"), GRID, num_samples=2, out_dir=tmp_path, verbose=False)
    with pytest.raises(TypeError, match="takes a FedMDConfig"):
        fedmd_ray.sweep("quick", GRID, out_dir=tmp_path, verbose=False)  # type: ignore[arg-type]
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ConfigError, match="is a file, not a directory"):
        fedmd_ray.sweep(fedmd_ray.preset("quick"), GRID, out_dir=tmp_path / "a_file", verbose=False)
    with pytest.raises(TypeError, match="takes a FedMDConfig"):
        fedmd_ray.run({"rounds": 1})  # type: ignore[arg-type]


def test_ctrl_c_stops_a_sweep_with_exit_130_and_no_final_table(tmp_path):
    """Tune catches Ctrl-C and returns what it has; that must not look like a finished sweep."""
    proc = subprocess.Popen(
        [
            *CLI,
            "sweep",
            "--preset",
            "quick",
            "--set",
            "backend=local",
            "--set",
            "rounds=3",
            "--grid",
            "subset_size=100,150,200,250",
            "--max-concurrent",
            "1",
            "--out",
            str(tmp_path),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    results = tmp_path / "tune" / "fedmd_sweep" / "fedmd_results"
    deadline = time.monotonic() + 180
    while len(list(results.glob("*.parquet"))) < 2:
        assert time.monotonic() < deadline and proc.poll() is None, "the sweep did not get going"
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "sweep interrupted with" in err and "--resume" in err
    assert not (tmp_path / "sweep.parquet").exists()


def test_a_sweep_directory_in_use_is_refused(tmp_path):
    """A second sweep (or a --resume) while one runs would restore and run the same trials twice."""
    import fcntl

    from fedmd_ray.outdir import LOCK_FILE

    with open(tmp_path / LOCK_FILE, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(ConfigError, match="in use by another run or sweep"):
            fedmd_ray.sweep(fedmd_ray.preset("quick"), GRID, out_dir=tmp_path, verbose=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE]


@pytest.mark.parametrize("sizes", [[1, 3], [2, 3], [3], [1]])
def test_a_sweep_picks_cpu_shares_that_every_actor_size_can_ask_for(sizes):
    """With cpus_per_party left to the sweep, a fixed parties_per_actor must still give Ray valid requests."""
    from fedmd_ray.actors.placement import actor_resources
    from fedmd_ray.sweeps.tuner import _explicit_resources, _plan

    base = fedmd_ray.preset("quick")
    configs = [base.replace(parties_per_actor=k) for k in sizes]
    chosen = _explicit_resources(base, configs, _plan(base, configs, 1, {"CPU": 2.0}, None))
    for config in configs:
        resources = actor_resources(config.replace(cpus_per_party=chosen.cpus_per_party), {})
        assert resources.cpus * resources.count + base.driver_cpus <= 2.0 + 1e-9


class _Recorder:
    """A Tune logger callback of the user's: one JSON line per result, in its own file."""

    def __new__(cls, path):
        from ray import tune

        class Recorder(tune.Callback):
            def on_trial_result(self, iteration, trials, trial, result, **info):
                import json

                keys = ["round", "mean_accuracy", "mean_gain", "parties_in_gain"]
                keys += [k for k in result if k.startswith("party_")]
                with open(path, "a") as out:
                    out.write(json.dumps({k: result[k] for k in keys}) + "\n")

        return Recorder()


def test_callbacks_and_search_algorithms_reach_tune_and_see_every_party(ray_cluster, tmp_path):
    import json

    from ray.tune.search import BasicVariantGenerator

    log = tmp_path / "results.jsonl"
    fedmd_ray.sweep(
        fedmd_ray.preset("quick", rounds=2, cpus_per_party=0.3, torch_threads=1),
        {"seed": [0]},
        callbacks=[_Recorder(log)],
        search_alg=BasicVariantGenerator(max_concurrent=1),
        out_dir=tmp_path / "out",
        verbose=False,
    )
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["round"] for line in lines] == [0, 1, 2]
    assert all(set(line) >= {"party_0_accuracy", "party_1_accuracy", "party_2_accuracy"} for line in lines)
    assert lines[-1]["parties_in_gain"] == 3
    mean = sum(lines[-1][f"party_{p}_accuracy"] for p in range(3)) / 3
    assert lines[-1]["mean_accuracy"] == pytest.approx(mean)


def test_a_sweep_saved_before_a_field_existed_resumes_with_the_field_at_its_default():
    """The resume check of a sweep reads a saved spec without a newer field as that field's default."""
    import json

    from fedmd_ray.sweeps.tuner import _check_same_sweep, _spec

    base = fedmd_ray.preset("quick")
    points = [base.replace(seed=0), base.replace(seed=1)]
    spec = _spec(base, {"seed": [0, 1]}, 1, points)
    old = json.loads(json.dumps(spec))
    del old["base"]["head_epochs"]
    _check_same_sweep(json.dumps(old).encode(), spec, "exp")  # the same sweep
    with pytest.raises(ConfigError, match=r"head_epochs \(saved None, given 3\)"):
        _check_same_sweep(
            json.dumps(old).encode(), _spec(base.replace(head_epochs=3), {"seed": [0, 1]}, 1, points), "exp"
        )


def test_a_sweep_resumes_in_another_environment_and_keeps_the_first():
    """Library versions and the CPU are saved with the sweep (they change the last bits), not compared."""
    import json

    import numpy as np

    from fedmd_ray.sweeps.tuner import _check_same_sweep, _spec

    base = fedmd_ray.preset("quick")
    spec = _spec(base, {"seed": [0, 1]}, 1, [base.replace(seed=s) for s in (0, 1)])
    assert spec["environment"]["numpy"] == np.__version__
    saved = json.loads(json.dumps(spec))
    saved["environment"] = {**saved["environment"], "numpy": "0.0", "cpu": "x86_64 DEFAULT"}
    _check_same_sweep(json.dumps(saved).encode(), spec, "exp")  # no refusal


def test_resuming_a_sweep_whose_plug_in_code_changed_is_refused():
    """The same import path with other code is another sweep: its trials' checkpoints would not match."""
    import json

    from fedmd_ray.sweeps.tuner import _check_same_sweep, _spec

    base = fedmd_ray.preset("quick")
    space = {"strategy": ["fedmd", "plugin_fixtures:InverseDeviation"]}
    points = [base.replace(strategy=s) for s in space["strategy"]]
    spec = _spec(base, space, 1, points)
    saved = json.loads(json.dumps(spec))
    _check_same_sweep(json.dumps(saved).encode(), spec, "exp")
    saved["identities"][1]["strategy"] += "0"  # what an edit of the class's source does to its identity
    with pytest.raises(
        ConfigError,
        match=r"strategy \(\['fedmd', 'plugin_fixtures:InverseDeviation'\] reads the "
        r"same, but its code or data changed",
    ):
        _check_same_sweep(json.dumps(saved).encode(), spec, "exp")


SIMULATED = """
import json, tempfile, time
import ray
import fedmd_ray
from torch import nn

ray.init(num_cpus=16, include_dashboard=False, log_to_driver=False)  # 16 logical CPUs on a 2-core machine

@ray.remote(num_cpus=0)
class Barrier:
    def __init__(self):
        self.groups, self.gave_up = set(), False
    def arrive(self, group):  # how many groups' parties have arrived (once one gave up: no one waits)
        self.groups.add(group)
        return 8 if self.gave_up else len(self.groups)
    def give_up(self):
        self.gave_up = True
    def most(self):  # trials alive at once: none left before all had arrived
        return -1 if self.gave_up else len(self.groups)

barrier = Barrier.options(name="trials-at-once").remote()

def waits_for_eight(input_shape, n_classes):
    # each trial's parties wait (bounded) until parties of 8 trials' placement groups are alive at once: the
    # count does not depend on how fast a loaded machine starts trials (a trial holds its group meanwhile)
    group = ray.get_runtime_context().get_placement_group_id()
    if group is not None:
        deadline = time.monotonic() + 90  # within actor_start_timeout_s below
        barrier = ray.get_actor("trials-at-once")
        while ray.get(barrier.arrive.remote(group), timeout=30) < 8:
            if time.monotonic() > deadline:
                ray.get(barrier.give_up.remote(), timeout=30)
                break
            time.sleep(0.2)
    c, h, w = input_shape
    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, n_classes))

fedmd_ray.register_model("waits-for-eight", waits_for_eight)
config = fedmd_ray.preset(
    "quick", models=("waits-for-eight",), rounds=0, pretrain_epochs=0, private_epochs=0, upper_bound=False,
    torch_threads=1, actor_start_timeout_s=300,
)
with tempfile.TemporaryDirectory() as out:
    fedmd_ray.sweep(config, {"seed": list(range(8))}, out_dir=out, transfer_cache=False, verbose=False)
print(json.dumps({"most": ray.get(barrier.most.remote(), timeout=30)}))
"""


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_by_default_a_sweep_runs_every_trial_that_fits_at_once_on_a_larger_cluster(tmp_path):
    """8 quick trials on a Ray of 16 logical CPUs: parties of all 8 run at once, each trial in its own placement
    group (the plan, not the speed: the machine has 2 cores)."""
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", SIMULATED], capture_output=True, text=True, timeout=550, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["most"] == 8
