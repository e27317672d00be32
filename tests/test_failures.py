"""Party failures: restart, drop, fail; hangs; absent parties. Nothing hangs, nothing is lost."""

import os
import re
import signal
import subprocess

import pyarrow.parquet as pq
import pytest
from cli_helpers import run_cli, sets

import fedmd_ray
from fedmd_ray.actors.backends import open_driver
from fedmd_ray.checkpoint import load_checkpoint
from fedmd_ray.errors import NoPartyLeft, PartyFailure
from fedmd_ray.experiment import prepare
from fedmd_ray.faults import DELAY_VARIABLE, VARIABLE
from fedmd_ray.runner import iterate_phases

LOCAL = dict(backend="local", rounds=3, torch_threads=1)


def _metrics(table):
    return table.select(["party", "phase", "round", "test_accuracy", "test_loss"]).to_pylist()


def _status(table, party):
    rows = table.to_pylist()
    return {r["round"]: r["status"] for r in rows if r["party"] == party and r["phase"] != "upper_bound"}


@pytest.fixture(scope="module")
def reference():
    return fedmd_ray.run(fedmd_ray.preset("quick", **LOCAL), verbose=False)


def test_a_restarted_party_redoes_its_round_with_the_same_numbers(reference, monkeypatch, tmp_path):
    monkeypatch.setenv(VARIABLE, f"party=1,round=2,method=digest,action=raise,once={tmp_path / 'fired'}")
    table = fedmd_ray.run(fedmd_ray.preset("quick", **LOCAL), verbose=False)
    assert _status(table, 1) == {0: "ok", 1: "ok", 2: "restarted", 3: "ok"}
    assert _metrics(table) == _metrics(reference)  # restored from round 1's state, redone: identical


def test_a_restarted_party_keeps_its_round0_weights_for_wise_ft(monkeypatch, tmp_path):
    """The state a restart restores holds theta_0 (and the `swa` average): the blend goes on unchanged."""
    config = fedmd_ray.preset("quick", **LOCAL, swa=True, wise_ft=0.5)
    straight = fedmd_ray.run(config, verbose=False)
    monkeypatch.setenv(VARIABLE, f"party=1,round=3,method=digest,action=raise,once={tmp_path / 'fired'}")
    table = fedmd_ray.run(config, verbose=False)
    assert _status(table, 1) == {0: "ok", 1: "ok", 2: "ok", 3: "restarted"}
    assert _metrics(table) == _metrics(straight)


@pytest.mark.parametrize(
    "policy, checkpoints, saved",
    [
        ("restart", False, True),
        ("drop", True, True),
        ("drop", False, False),
        ("fail", False, False),
    ],
)
def test_states_are_saved_only_when_a_restart_or_a_checkpoint_needs_them(policy, checkpoints, saved):
    """Saving every party's model and optimizers each round costs time (most on a GPU)."""
    config = fedmd_ray.preset("quick", on_party_failure=policy, **LOCAL)
    experiment = prepare(config)
    specs, data = experiment.party_inputs()
    with open_driver(experiment.setup, specs, data, "test", save_states=checkpoints) as driver:
        driver.transfer_learn()
        driver.run_round(1)
        hosts = driver.usage()["hosts"]
        assert (sum(h["state_s"] for h in hosts) > 0) == saved
        states = driver.export_states().parties.resolve()  # a checkpoint can be written either way
    assert sorted(states) == list(range(config.n_parties))


def test_a_party_failing_again_after_its_restarts_is_dropped(monkeypatch, capsys, caplog):
    monkeypatch.setenv(VARIABLE, "party=1,round=2,method=revisit,action=raise")
    table = fedmd_ray.run(fedmd_ray.preset("quick", max_party_restarts=1, **LOCAL), verbose=True)
    assert _status(table, 1) == {0: "ok", 1: "ok", 2: "dropped", 3: "dropped"}
    dropped = [r for r in table.to_pylist() if r["status"] == "dropped"]
    assert all(r["test_accuracy"] is None for r in dropped)
    assert all(r["test_accuracy"] is not None for r in table.to_pylist() if r["party"] != 1)
    err = capsys.readouterr().err
    assert "party 1 (mlp-64) dropped from round 2" in err
    assert "injected fault in party 1, round 2, revisit') (-v shows the traceback)" in caplog.text
    assert "Traceback" not in caplog.text  # at debug level only: `-v`


def test_drop_policy_leaves_the_party_out_and_the_others_go_on(monkeypatch):
    monkeypatch.setenv(VARIABLE, "party=0,round=1,method=digest,action=raise")
    table = fedmd_ray.run(fedmd_ray.preset("quick", on_party_failure="drop", **LOCAL), verbose=False)
    assert _status(table, 0) == {0: "ok", 1: "dropped", 2: "dropped", 3: "dropped"}
    assert set(_status(table, 2).values()) == {"ok"}


def test_a_run_whose_every_party_is_dropped_stops_with_an_error_and_keeps_its_rows(monkeypatch, tmp_path):
    """No party left must not look like a finished run (the CLI exits 2, not 0)."""
    monkeypatch.setenv(VARIABLE, "party=0,round=1,method=digest,action=raise")
    config = fedmd_ray.preset("quick", n_parties=1, on_party_failure="drop", **LOCAL)
    with pytest.raises(NoPartyLeft, match="every party failed and was dropped"):
        fedmd_ray.run(config, out_dir=tmp_path, verbose=False)
    kept = pq.read_table(tmp_path / "results.parquet")
    assert _status(kept, 0) == {0: "ok", 1: "dropped"}  # round 1 written, rounds 2-3 never run


def test_fail_policy_stops_with_a_clear_message_and_a_resumable_checkpoint(reference, monkeypatch, tmp_path, caplog):
    monkeypatch.setenv(VARIABLE, "party=2,round=3,method=digest,action=raise")
    config = fedmd_ray.preset("quick", on_party_failure="fail", **LOCAL)
    with pytest.raises(PartyFailure, match=r"party 2 \(cnn1-16\) failed in digest/revisit/evaluate of round 3: raised"):
        fedmd_ray.run(config, out_dir=tmp_path, verbose=False)
    tracebacks = [r.getMessage() for r in caplog.records if "injected fault in party 2" in r.getMessage()]
    assert len(tracebacks) == 1 and "Traceback" in tracebacks[0]  # the party's traceback, once, as a warning
    assert load_checkpoint(tmp_path).round == 2
    assert max(r for r in pq.read_table(tmp_path / "results.parquet").column("round").to_pylist() if r is not None) == 2
    monkeypatch.delenv(VARIABLE)
    resumed = fedmd_ray.run(config, out_dir=tmp_path, resume=True, verbose=False)
    assert _metrics(resumed) == _metrics(reference)


def test_party_dropout_is_seeded_and_recorded():
    config = fedmd_ray.preset("quick", party_dropout=0.4, **LOCAL)
    first = fedmd_ray.run(config, verbose=False)
    absent = [r for r in first.to_pylist() if r["status"] == "absent"]
    assert absent and all(r["test_accuracy"] is None and r["round"] > 0 for r in absent)
    grouped = fedmd_ray.run(config.replace(parties_per_actor=1), verbose=False)
    assert _metrics(grouped) == _metrics(first) and grouped["status"].equals(first["status"])


@pytest.mark.parametrize("kill", ["sigkill", pytest.param("ray.kill", marks=pytest.mark.slow)])  # ~25 s each
def test_a_party_actor_killed_from_outside_is_restarted(ray_cluster, reference, kill):
    """SIGKILL: the worker process dies as under the OOM killer; ray.kill: by its actor name.
    The run finishes with the numbers of an uninterrupted run."""
    config = fedmd_ray.preset("quick", **{**LOCAL, "backend": "ray"})
    hosts = []
    rows = []
    for phase, round_, phase_rows in iterate_phases(prepare(config), on_start=hosts.extend):
        rows.extend(phase_rows)
        if phase == "collaborate" and round_ == 1:
            if kill == "sigkill":
                os.kill(hosts[0]["pid"], signal.SIGKILL)
            else:
                ray_cluster.kill(ray_cluster.get_actor(hosts[0]["actor"]))
    by_party = {(r["party"], r["round"]): r["status"] for r in rows if r["phase"] == "collaborate"}
    killed = hosts[0]["parties"]
    assert all(by_party[(p, 2)] == "restarted" for p in killed)
    expected = {(r["party"], r["phase"], r["round"]): r["test_accuracy"] for r in reference.to_pylist()}
    assert {(r["party"], r["phase"], r["round"]): r["test_accuracy"] for r in rows} == expected


def _cli(tmp_path, fault: str, *fields: str, flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    args = sets("rounds=2", "torch_threads=1", *fields)
    return run_cli("run", "--preset", "quick", *args, "--out", str(tmp_path / "run"), *flags, env={VARIABLE: fault})


def test_an_actor_that_exits_inside_digest_is_restarted(tmp_path):
    done = _cli(tmp_path, f"party=1,round=2,method=digest,action=exit,once={tmp_path / 'fired'}")
    assert done.returncode == 0, done.stderr
    table = pq.read_table(tmp_path / "run" / "results.parquet")
    assert _status(table, 1)[2] == "restarted"
    assert "its actor died" in done.stderr and "party 1 (mlp-64) restarted in round(s) 2" in done.stdout
    assert "Unhandled error" not in done.stderr


def test_a_raising_party_under_fail_policy_prints_its_traceback_once(tmp_path):
    done = _cli(tmp_path, "party=1,round=1,method=digest,action=raise", "on_party_failure=fail")
    assert done.returncode == 2
    assert done.stderr.count("RuntimeError: injected fault in party 1, round 1, digest\n") == 1, done.stderr
    assert "Unhandled error" not in done.stderr
    assert "fedmd-ray: error: party 1 (mlp-64)" in done.stderr


@pytest.mark.parametrize("backend, flags", [("local", ()), ("ray", ("-v",))])
def test_a_party_failing_on_every_restart_warns_one_line_per_failure_and_its_traceback_only_with_v(
    tmp_path, backend, flags
):
    done = _cli(tmp_path, "party=1,round=1,method=digest,action=raise", f"backend={backend}", flags=flags)
    assert done.returncode == 0, done.stderr  # the others go on without it (Ray: those on its actor, too)
    err = done.stderr
    party = r"party 1 \(mlp-64\)(, party \d \([\w-]+\))*"
    assert len(re.findall(party + " failed in digest/revisit/evaluate of round 1: raised RuntimeError", err)) == 1
    assert len(re.findall(party + " failed again after a restart: raised RuntimeError", err)) == 2  # the restarts
    assert len(re.findall(party + " dropped for the rest of the run", err)) == 1
    assert err.index("dropped for the rest of the run") < err.index("round 1/2")  # before the round it is about
    assert "(DriverActor pid=" not in err  # relayed by the command itself, not by Ray's log forwarding
    assert "\x1b[" not in err  # no terminal colours in a log that goes to a file
    assert err.count("(-v shows the traceback)") == (0 if flags else 3), err
    tracebacks = err.count("RuntimeError: injected fault in party 1, round 1, digest\n")  # the reason reads ('...')
    assert tracebacks == (3 if flags else 0), err  # with -v, the driver actor's too
    assert "During handling of the above exception" not in err  # no earlier failure chained to it


def test_a_hanging_party_times_out_and_fail_policy_exits_2(tmp_path):
    done = _cli(tmp_path, "party=0,round=1,method=digest,action=hang", "round_timeout_s=5", "on_party_failure=fail")
    assert done.returncode == 2
    assert "party 0 (cnn2-8-16) failed in digest/revisit/evaluate of round 1: no answer within 5 s" in done.stderr
    assert "Traceback" not in done.stderr.split("fedmd-ray: error:")[-1]
    assert load_checkpoint(tmp_path / "run").round == 0


@pytest.mark.slow  # ~35-50 s: every party step delayed at random
def test_random_reply_order_changes_no_number(tmp_path, reference):
    """Parties sleep a random time before every step, so they answer in a random order."""
    args = sets("rounds=3", "torch_threads=1", "parties_per_actor=1")
    done = run_cli(
        "run", "--preset", "quick", *args, "--out", str(tmp_path / "run"), "--quiet", env={DELAY_VARIABLE: "0.3"}
    )
    assert done.returncode == 0, done.stderr
    assert _metrics(pq.read_table(tmp_path / "run" / "results.parquet")) == _metrics(reference)
