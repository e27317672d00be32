"""Ray against the sequential loop: the same FedMD run on three executions.

* `ray`: one party per actor, the CPUs shared evenly (fractional `cpus_per_party`).
* `local, 1 thread`: every party in this process, one after another, torch on 1 thread.
* `local, all cores`: the same loop with torch on every core (what a user runs otherwise).

Same seed, same work (the final accuracies are printed side by side). Prints
the ratios for the whole run and for the rounds alone, and the machine's CPU
utilisation during the rounds.

    python benchmarks/backends.py [--preset offline] [--rounds 5] [--models paper]
"""

from __future__ import annotations

import argparse
import os

import ray
from common import PhaseTimes, record, timed_run

import fedmd_ray
from fedmd_ray.config import parse_overrides
from fedmd_ray.model_registry import PAPER_MODELS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="offline")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--models",
        choices=["preset", "paper"],
        default="preset",
        help="paper: the paper's 10 CNNs at reduced size (500 public images, subset 200, 2 private "
        "classes, 500 held-out and 500 test images)",
    )
    parser.add_argument("--set", nargs="*", default=[], help="more config overrides, field=value")
    args = parser.parse_args()
    overrides: dict = dict(rounds=args.rounds)
    if args.models == "paper":
        overrides.update(
            models=PAPER_MODELS,
            public_size=500,
            subset_size=200,
            eval_size=500,
            pretrain_epochs=1,
            private_classes=(5, 6),
            private_epochs=5,
            upper_bound=False,
        )
    overrides.update(parse_overrides(args.set))
    base = fedmd_ray.preset(args.preset, **overrides)
    cores = os.cpu_count() or 1

    ray.init(address="local", include_dashboard=False)  # started once: Ray start is not what this compares
    try:
        ray_times = timed_run(base.replace(backend="ray"))
    finally:
        ray.shutdown()
    one = timed_run(base.replace(backend="local", torch_threads=1))
    every = timed_run(base.replace(backend="local", torch_threads=cores))

    print(f"\n{args.preset} ({args.models} models), {base.n_parties} parties, {base.rounds} rounds, {cores} cores")
    print(f"{'':<20}{'startup':>9}{'transfer':>10}{'rounds':>9}{'total':>9}{'CPU in rounds':>15}{'accuracy':>10}")
    for label, t in (("ray", ray_times), ("local 1 thread", one), (f"local {cores} threads", every)):
        print(
            f"{label:<20}{t.startup:9.1f}{t.transfer:10.1f}{sum(t.rounds):9.1f}{t.total:9.1f}"
            f"{t.rounds_cpu:15.0%}{t.accuracy:10.3f}"
        )
    record(
        "backends",
        {
            "preset": args.preset,
            "models": args.models,
            "parties": base.n_parties,
            "rounds": base.rounds,
            **_figures("ray", ray_times),
            **_figures("local1", one),
            **_figures("local_all", every),
            "speedup_vs_1thread_total": one.total / ray_times.total,
            "speedup_vs_all_cores_total": every.total / ray_times.total,
            "speedup_vs_1thread_rounds": sum(one.rounds) / sum(ray_times.rounds),
            "speedup_vs_all_cores_rounds": sum(every.rounds) / sum(ray_times.rounds),
            "speedup_vs_all_cores_transfer": every.transfer / ray_times.transfer,
        },
    )


def _figures(prefix: str, t: PhaseTimes) -> dict:
    return {
        f"{prefix}_startup_s": t.startup,
        f"{prefix}_transfer_s": t.transfer,
        f"{prefix}_rounds_s": sum(t.rounds),
        f"{prefix}_total_s": t.total,
        f"{prefix}_rounds_cpu": t.rounds_cpu,
        f"{prefix}_accuracy": t.accuracy,
    }


if __name__ == "__main__":
    main()
