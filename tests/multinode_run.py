"""Driven by tests/test_multinode.py in a subprocess: a two-node Ray cluster on this machine.

Prints one JSON line: where the parties ran, the statuses of the finished
table, and the cluster's address for a CLI run that attaches to it.
"""

import json
import subprocess
import sys

import ray
from ray.cluster_utils import Cluster

import fedmd_ray
from fedmd_ray.data.task import build_task
from fedmd_ray.runner import iterate_phases

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
worker = cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
ray.init(address=cluster.address)
# 3 actors x 0.45 CPU + 0.05 for the driver cannot fit one 1-CPU node: Ray must use both.
config = fedmd_ray.preset("quick", rounds=3, parties_per_actor=1, cpus_per_party=0.45, torch_threads=1,
                          actor_start_timeout_s=15)
hosts, rows = [], []
for phase, round_, phase_rows in iterate_phases(config, build_task(config), on_start=hosts.extend):
    rows.extend(phase_rows)
    if phase == "collaborate" and round_ == 1:
        cluster.remove_node(worker)  # the node leaves mid-run
ray.shutdown()
on_worker = sorted(p for h in hosts if h["node"] == worker.node_id for p in h["parties"])
# attach a CLI run to the (now one-node) cluster instead of starting a second one
cli = subprocess.run(
    [sys.executable, "-m", "fedmd_ray.cli", "run", "--preset", "quick", "--set", "rounds=1",
     "--set", f"address={cluster.address}", "--set", "cpus_per_party=0.3"],
    capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL,
)
print(json.dumps({
    "nodes": sorted({h["node"] for h in hosts}),
    "head": cluster.head_node.node_id,
    "on_worker": on_worker,
    "statuses": [[r["party"], r["round"], r["phase"], r["status"]] for r in rows],
    "cli_rc": cli.returncode,
    "cli_err": cli.stderr[-3000:],
}))
cluster.shutdown()
