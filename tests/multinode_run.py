"""Driven by tests/test_multinode.py in a subprocess: two-node Ray clusters on this machine.

Prints one JSON line: where the parties ran, the statuses of the finished
tables, and how a CLI run attached to the cluster.
"""

import json
import subprocess
import sys
import tempfile

import ray
from ray.cluster_utils import Cluster
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

import fedmd_ray
from fedmd_ray.experiment import prepare
from fedmd_ray.runner import iterate_phases


class Placeholder:
    def ready(self) -> bool:
        return True


def statuses(rows: list[dict]) -> list[list]:
    return [[r["party"], r["round"], r["phase"], r["status"]] for r in rows]


# actor_start_timeout_s: how long a restart waits for room before its party is dropped (scenario 1 drops
# one); an actor process that imports torch can take tens of seconds to start on a loaded machine
config = fedmd_ray.preset(
    "quick", rounds=3, parties_per_actor=1, cpus_per_party=0.45, torch_threads=1, actor_start_timeout_s=60
)
result = {}

# 1. 3 actors x 0.45 CPU + 0.05 for the driver cannot fit one 1-CPU node: Ray must use both.
#    The worker node leaves after round 1; nothing was fetched from it (no checkpoints).
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
worker = cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
ray.init(address=cluster.address)
hosts, rows = [], []
for phase, round_, phase_rows in iterate_phases(prepare(config), on_start=hosts.extend):
    rows.extend(phase_rows)
    if phase == "collaborate" and round_ == 1:
        cluster.remove_node(worker)  # the node leaves mid-run
ray.shutdown()
result.update(
    nodes=sorted({h["node"] for h in hosts}),
    head=cluster.head_node.node_id,
    statuses=statuses(rows),
    on_worker=sorted(p for h in hosts if h["node"] == worker.node_id for p in h["parties"]),
)
# attach a CLI run to the (now one-node) cluster instead of starting a second one
cli = subprocess.run(
    [
        sys.executable,
        "-m",
        "fedmd_ray.cli",
        "run",
        "--preset",
        "quick",
        "--set",
        "rounds=1",
        "--set",
        f"address={cluster.address}",
        "--set",
        "cpus_per_party=0.3",
    ],
    capture_output=True,
    text=True,
    timeout=240,
    stdin=subprocess.DEVNULL,
    cwd=tempfile.mkdtemp(),  # its runs/
)
result.update(cli_rc=cli.returncode, cli_err=cli.stderr)
cluster.shutdown()

# 2. The worker node leaves after the runner fetched round 1's states (as run() does for its
#    checkpoint): Ray recovers them from that copy, and the lost parties restart on the head.
#    Placeholders fill the head at first (two actors must go to the worker) and leave with it.
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
worker = cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
ray.init(address=cluster.address)
pin = NodeAffinitySchedulingStrategy(cluster.head_node.node_id, soft=False)
holders = [ray.remote(num_cpus=cpus)(Placeholder).options(scheduling_strategy=pin).remote() for cpus in (1, 0.45)]
ray.get([h.ready.remote() for h in holders], timeout=60)


def leave_after_fetch(round_: int, states: dict, strategy_state: dict) -> None:
    if round_ == 1:
        cluster.remove_node(worker)
        for holder in holders:
            ray.kill(holder)


# States over Ray's 100 KB inline limit (~200 KB each): they live in the worker's object store,
# not in the driver's memory.
large = config.replace(models=("mlp-128",))
hosts, rows = [], []
for _, _, phase_rows in iterate_phases(prepare(large), on_start=hosts.extend, on_checkpoint=leave_after_fetch):
    rows.extend(phase_rows)
ray.shutdown()
result.update(
    fetched_on_worker=sorted(p for h in hosts if h["node"] == worker.node_id for p in h["parties"]),
    fetched_statuses=statuses(rows),
)
cluster.shutdown()
print(json.dumps(result))
