"""Real two-node Ray clusters on this machine (head + worker node, `ray.cluster_utils.Cluster`)."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # Ray clusters started in subprocesses: ~1-2 min


@pytest.fixture(scope="module")
def two_nodes():
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("multinode_run.py"))],
        capture_output=True,
        text=True,
        timeout=540,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(600)
def test_parties_run_on_both_nodes(two_nodes):
    assert len(two_nodes["nodes"]) == 2 and two_nodes["head"] in two_nodes["nodes"]
    assert two_nodes["on_worker"]


@pytest.mark.timeout(600)
def test_losing_the_worker_node_mid_run_still_finishes_the_table(two_nodes):
    statuses = {(p, r, ph): s for p, r, ph, s in two_nodes["statuses"]}
    assert {(p, r) for p, r, ph in statuses if ph == "collaborate"} == {(p, r) for p in range(3) for r in (1, 2, 3)}
    for party in range(3):
        later = statuses[(party, 2, "collaborate")]
        if party in two_nodes["on_worker"]:
            assert later in ("restarted", "dropped")  # restarted on the head if it has room, else dropped
        else:
            assert later == "ok"


@pytest.mark.timeout(600)
def test_parties_of_a_lost_node_restart_from_the_states_the_runner_fetched(two_nodes):
    """States saved on the lost node survive through the copy the checkpoint fetch made."""
    statuses = {(p, r, ph): s for p, r, ph, s in two_nodes["fetched_statuses"]}
    assert len(two_nodes["fetched_on_worker"]) == 2
    for party in range(3):
        restarted = party in two_nodes["fetched_on_worker"]
        assert statuses[(party, 2, "collaborate")] == ("restarted" if restarted else "ok")
        assert statuses[(party, 3, "collaborate")] == "ok"


@pytest.mark.timeout(600)
def test_cli_attaches_to_the_cluster_instead_of_starting_one(two_nodes):
    assert two_nodes["cli_rc"] == 0, two_nodes["cli_err"]
    assert "Started a local Ray instance" not in two_nodes["cli_err"]
    assert "Ray: attached to the cluster at " in two_nodes["cli_err"]


@pytest.mark.timeout(300)
def test_a_run_without_address_starts_its_own_ray_where_ray_start_left_an_address(tmp_path):
    """`ray start` leaves the head's address in Ray's temp dir, and a bare `ray.init()` attaches to
    it (or hangs when that head is gone): a run without `address` must start its own instance."""
    temp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths live below it
    try:
        (temp / "ray").mkdir()
        (temp / "ray" / "ray_current_cluster").write_text("127.0.0.1:1")  # a head that is gone
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"RAY_TMPDIR": str(temp)}
        done = subprocess.run(
            [sys.executable, "-m", "fedmd_ray.cli", "run", "--preset", "quick", "--set", "rounds=1"],
            capture_output=True,
            text=True,
            timeout=280,
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
        )
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Ray: started a local instance" in done.stderr
