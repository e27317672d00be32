"""FedMD as a researcher writes it first: one process, one party after another (`fedmd_ray.reference`).

The comparison point for `whole_run.py`: the reference round, which is the algorithm
`fedmd-ray run --preset PRESET` runs (the same data, models, schedule, strategy and
random streams; tested to give the same table as `backend=local`), with torch using every
core (its default) and nothing else: no Ray, no batching, no checkpoints.

    python benchmarks/plain_fedmd.py [--preset offline] [--set field=value ...]
"""

import argparse
import time

from fedmd_ray.config import parse_overrides, preset
from fedmd_ray.reference import run_reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="offline")
    parser.add_argument("--set", nargs="*", default=[])
    args = parser.parse_args()
    start = time.perf_counter()
    table = run_reference(preset(args.preset, **parse_overrides(args.set))).to_pandas()
    means = table[table["phase"] != "upper_bound"].groupby("round")["test_accuracy"].mean()
    for round_, mean in means.items():
        print(f"round {round_} mean {mean:.3f}")
    print(f"total {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
