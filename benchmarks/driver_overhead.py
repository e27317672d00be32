"""Driver overhead per round: the time a round takes beyond its parties' work.

Runs rounds at 10 parties x subset 5000 x 16 classes on Ray (driver actor +
party actors) and, per round, compares the driver's wall time with the busiest
host's own time inside its calls: the rest is sampling the subset, gathering
scores, aggregating, distributing the consensus, saving every party's state
after the round (for restarts and checkpoints), building rows and the Ray
calls. Fetching the states, writing the table and handing the checkpoint to its
writer thread (what `run()` does after each round) is timed too.
Also times each driver step alone.

    python benchmarks/driver_overhead.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import ray
from common import record

import fedmd_ray
from fedmd_ray.actors.backends import open_driver
from fedmd_ray.analysis.io import write_table
from fedmd_ray.analysis.schema import rows_to_table
from fedmd_ray.checkpoint import Checkpoint, CheckpointWriter
from fedmd_ray.data.sampling import sample_alignment
from fedmd_ray.experiment import prepare
from fedmd_ray.seeding import rng
from fedmd_ray.strategy import RoundInfo


def _ms(fn, repeat: int = 20) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def _busy(driver) -> np.ndarray:
    """Each host's seconds of party work so far (snapshots and checkpoints count as overhead)."""
    return np.array([host["busy_s"] for host in driver.usage()["hosts"]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    # 10 MNIST digits public + 6 sklearn digits classes private = 16 outputs; a short transfer phase.
    config = fedmd_ray.preset(
        "offline",
        public_classes=None,
        private_data="digits",
        private_classes=(0, 1, 2, 3, 4, 5),
        subset_size=5000,
        rounds=args.rounds,
        pretrain_epochs=1,
        private_epochs=1,
        upper_bound=False,
    )
    experiment = prepare(config)
    task = experiment.task
    specs, data = experiment.party_inputs()
    ray.init(address="local", include_dashboard=False)
    rounds = []
    try:
        with (
            open_driver(experiment.setup, specs, data, experiment.run_id) as driver,
            tempfile.TemporaryDirectory() as tmp,
        ):
            writer = CheckpointWriter(Path(tmp))
            rows = driver.transfer_learn()
            for round_ in range(1, config.rounds + 1):
                before = _busy(driver)
                start = time.perf_counter()
                rows += driver.run_round(round_)
                wall = time.perf_counter() - start
                work = float(np.max(_busy(driver) - before))
                start = time.perf_counter()  # what run() does after each round
                write_table(rows_to_table(rows), Path(tmp) / "results.parquet")
                snapshot = driver.export_states()
                writer.submit(
                    Checkpoint(experiment.run_id, round_, list(rows), snapshot.parties.resolve(), snapshot.strategy)
                )
                write = time.perf_counter() - start
                rounds.append((wall + write, work))
                print(
                    f"round {round_}: {wall + write:.3f} s, busiest host {work:.3f} s, "
                    f"overhead {(wall + write - work) * 1000:.0f} ms (table write + checkpoint hand-off "
                    f"{write * 1000:.1f} ms)"
                )
            writer.close()
        scores = np.random.default_rng(0).standard_normal((10, 5000, task.n_classes)).astype(np.float32)
        info = RoundInfo(1, tuple(range(10)), 10)
        steps = {
            "sample_ms": _ms(lambda: sample_alignment(rng(0, "alignment", 1), task.public_y, 5000)),
            "aggregate_ms": _ms(lambda: experiment.strategy.aggregate(scores, info)),
            "put_consensus_ms": _ms(lambda: ray.put(scores[0])),
            "get_10_scores_ms": _ms(lambda: ray.get([ray.put(s) for s in scores], timeout=60)),
        }
    finally:
        ray.shutdown()
    steady = rounds[1:] or rounds  # round 1 also gathers scores in a call of its own
    overhead = np.array([w - p for w, p in steady])
    walls = np.array([w for w, _ in steady])
    print(f"\n10 parties x subset 5000 x {task.n_classes} classes, rounds 2..{config.rounds}:")
    record(
        "driver_overhead",
        {
            "parties": config.n_parties,
            "subset": config.subset_size,
            "classes": task.n_classes,
            "round_s": float(walls.mean()),
            "overhead_ms": float(overhead.mean() * 1000),
            "overhead_share": float((overhead / walls).mean()),
            "round1_overhead_ms": (rounds[0][0] - rounds[0][1]) * 1000,
            **steps,
        },
    )


if __name__ == "__main__":
    main()
