"""Real two-node Ray clusters on this machine (head + worker node, `ray.cluster_utils.Cluster`)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # two Ray clusters started in a subprocess: ~1 min


@pytest.fixture(scope="module")
def two_nodes():
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("multinode_run.py"))],
        capture_output=True, text=True, timeout=280, env=env, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(300)
def test_parties_run_on_both_nodes(two_nodes):
    assert len(two_nodes["nodes"]) == 2 and two_nodes["head"] in two_nodes["nodes"]
    assert two_nodes["on_worker"]


@pytest.mark.timeout(300)
def test_losing_the_worker_node_mid_run_still_finishes_the_table(two_nodes):
    statuses = {(p, r, ph): s for p, r, ph, s in two_nodes["statuses"]}
    assert {(p, r) for p, r, ph in statuses if ph == "collaborate"} == {(p, r) for p in range(3) for r in (1, 2, 3)}
    for party in range(3):
        later = statuses[(party, 2, "collaborate")]
        if party in two_nodes["on_worker"]:
            assert later in ("restarted", "dropped")  # restarted on the head if it has room, else dropped
        else:
            assert later == "ok"


@pytest.mark.timeout(300)
def test_parties_of_a_lost_node_restart_from_the_states_the_runner_fetched(two_nodes):
    """States saved on the lost node survive through the copy the checkpoint fetch made."""
    statuses = {(p, r, ph): s for p, r, ph, s in two_nodes["fetched_statuses"]}
    assert len(two_nodes["fetched_on_worker"]) == 2
    for party in range(3):
        restarted = party in two_nodes["fetched_on_worker"]
        assert statuses[(party, 2, "collaborate")] == ("restarted" if restarted else "ok")
        assert statuses[(party, 3, "collaborate")] == "ok"


@pytest.mark.timeout(300)
def test_cli_attaches_to_the_cluster_instead_of_starting_one(two_nodes):
    assert two_nodes["cli_rc"] == 0, two_nodes["cli_err"]
    assert "Started a local Ray instance" not in two_nodes["cli_err"]
    assert "Ray: attached to the cluster at " in two_nodes["cli_err"]
