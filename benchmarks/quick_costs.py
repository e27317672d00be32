"""Where the seconds of a small run go: `fedmd-ray run --preset quick` end to end, and its steps.

Two fresh processes, one after the other:

1. `fedmd-ray run --preset quick --out TMP` timed from outside (what a user waits for);
2. the same run's steps timed inside one process: importing fedmd_ray and torch, building the
   task and checking every plug-in (`prepare`), starting Ray, starting the party hosts and the
   driver, transfer learning (with the upper bound), the rounds, and what is left (writing the
   files, stopping Ray).

    python benchmarks/quick_costs.py [--preset quick] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

from common import record

STEPS = r"""
import json, sys, time
marks = {"start": time.perf_counter()}
import torch  # noqa: F401
import fedmd_ray
from fedmd_ray.actors.backends import open_driver
from fedmd_ray.experiment import prepare
marks["imports"] = time.perf_counter()
config = fedmd_ray.preset(sys.argv[1])
experiment = prepare(config)
specs, data = experiment.party_inputs()
marks["data and checks"] = time.perf_counter()
import ray
ray.init(include_dashboard=False, logging_level="ERROR")
marks["ray start"] = time.perf_counter()
with open_driver(experiment.setup, specs, data, experiment.run_id) as driver:
    marks["hosts and driver"] = time.perf_counter()
    driver.transfer_learn()
    marks["transfer learning"] = time.perf_counter()
    for round_ in range(1, config.rounds + 1):
        driver.run_round(round_)
    marks["rounds"] = time.perf_counter()
ray.shutdown()
marks["stop"] = time.perf_counter()
names = list(marks)
print(json.dumps({b: marks[b] - marks[a] for a, b in zip(names, names[1:])}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    totals, steps = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            subprocess.run(["fedmd-ray", "run", "--preset", args.preset, "--out", f"{out}/r", "-q"], check=True,
                           capture_output=True)  # fmt: skip
            totals.append(time.perf_counter() - start)
        done = subprocess.run([sys.executable, "-c", STEPS, args.preset], check=True, capture_output=True, text=True)
        steps.append(json.loads(done.stdout.strip().splitlines()[-1]))
    best = min(range(args.repeats), key=lambda i: totals[i])
    figures = {"preset": args.preset, "cli_total_s": min(totals), "cli_total_s_max": max(totals)}
    figures |= {f"{name.replace(' ', '_')}_s": min(s[name] for s in steps) for name in steps[best]}
    record("quick_costs", figures)


if __name__ == "__main__":
    main()
