"""What the transfer-learning cache saves in a sweep: the same grid with and without it.

Trials of a sweep over collaboration knobs share their transfer phase (public
pretraining, private training, upper bound). Runs the grid twice, one trial at a
time, and prints the wall times, the ratio and the seconds saved per trial.

    python benchmarks/transfer_cache.py [--preset offline] [--rounds 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import ray

import fedmd_ray


def timed_sweep(config: fedmd_ray.FedMDConfig, grid: dict, cache: bool, out: str) -> float:
    start = time.perf_counter()
    fedmd_ray.sweep(config, grid, max_concurrent_trials=1, out_dir=out, transfer_cache=cache, verbose=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="offline")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--subset-size", type=int, default=1000)
    args = parser.parse_args()
    config = fedmd_ray.preset(args.preset, rounds=args.rounds, subset_size=args.subset_size)
    grid = {"digest_epochs": [1, 2, 3]}
    ray.init(address="local", include_dashboard=False)
    try:
        with tempfile.TemporaryDirectory() as cold, tempfile.TemporaryDirectory() as warm:
            without = timed_sweep(config, grid, cache=False, out=cold)
            with_cache = timed_sweep(config, grid, cache=True, out=warm)
    finally:
        ray.shutdown()
    trials = len(grid["digest_epochs"])
    print(f"preset {args.preset}, {trials} trials one at a time, rounds={args.rounds}, subset_size={args.subset_size}")
    print(f"without cache: {without:.1f} s   with cache: {with_cache:.1f} s   ratio {without / with_cache:.2f}x")
    print(f"saved per trial that hit the cache: {(without - with_cache) / (trials - 1):.1f} s")


if __name__ == "__main__":
    main()
