"""Sweep packing: the default plan (`sweeps.plan`: every trial that fits at once) against the old
default (one trial at a time over the whole machine, `max_concurrent_trials=1`).

Both sides run the same 4-trial grid x 3 parties through `fedmd_ray.sweep` on the
same Ray, without the transfer cache (every trial does its whole run;
`transfer_cache.py` measures the cache). Prints the wall times, the ratio, the most
trials that held placement groups at the same time and the machine's CPU utilisation.

    python benchmarks/sweep_packing.py [--preset quick] [--rounds 2]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time

import ray
from common import CpuMeter, record

import fedmd_ray


class TrialCounter(threading.Thread):
    """Most placement groups (= running trials) alive at once."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop, self.most = threading.Event(), 0

    def run(self) -> None:
        from ray.util import placement_group_table

        while not self.stop.is_set():
            created = [g for g in placement_group_table().values() if g["state"] == "CREATED"]
            self.most = max(self.most, len(created))
            time.sleep(0.2)


def timed_sweep(config: fedmd_ray.FedMDConfig, grid: dict, concurrent: int | None) -> tuple[float, float, int]:
    counter, meter = TrialCounter(), CpuMeter()
    counter.start()
    meter.start()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        fedmd_ray.sweep(
            config, grid, max_concurrent_trials=concurrent, out_dir=out, transfer_cache=False, verbose=False
        )
    seconds = time.perf_counter() - start
    busy = meter.stop()
    counter.stop.set()
    counter.join()
    return seconds, busy, counter.most


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    config = fedmd_ray.preset(args.preset, n_parties=3, rounds=args.rounds)
    grid = {"digest_epochs": [1, 2], "subset_size": [200, 300]}
    ray.init(address="local", include_dashboard=False)
    try:
        one_s, one_cpu, one_most = timed_sweep(config, grid, 1)
        packed_s, packed_cpu, packed_most = timed_sweep(config, grid, None)  # the default
    finally:
        ray.shutdown()
    print(
        f"\n{args.preset}, 4 trials x 3 parties: one at a time (old default) {one_s:.1f} s, default plan "
        f"{packed_s:.1f} s ({packed_most} at once): {one_s / packed_s:.2f}x"
    )
    record(
        "sweep_packing",
        {
            "preset": args.preset,
            "trials": 4,
            "parties": 3,
            "rounds": args.rounds,
            "sequential_s": one_s,
            "packed_s": packed_s,
            "speedup": one_s / packed_s,
            "packed_most_trials_at_once": packed_most,
            "sequential_most_trials_at_once": one_most,
            "packed_cpu": packed_cpu,
            "sequential_cpu": one_cpu,
        },
    )


if __name__ == "__main__":
    main()
