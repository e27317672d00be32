"""End to end: `fedmd-ray run` against a plain sequential script of the same algorithm.

Both are started as fresh processes (Python, imports, data, Ray start for the
first, transfer learning, upper bound, all rounds), one after the other, and
timed from outside. The plain script is `benchmarks/plain_fedmd.py`.

    python benchmarks/whole_run.py [--preset offline] [--set rounds=5 ...] [--keep DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
from common import record

HERE = Path(__file__).resolve().parent


def timed(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, done.stdout + done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="offline")
    parser.add_argument("--set", nargs="*", default=[])
    parser.add_argument("--keep", metavar="DIR", help="write the fedmd-ray run's results here (a new directory)")
    args = parser.parse_args()
    sets = [a for item in args.set for a in ("--set", item)]
    with tempfile.TemporaryDirectory() as scratch:
        out = args.keep or scratch
        ray_s, _ = timed(
            [sys.executable, "-m", "fedmd_ray.cli", "run", "--preset", args.preset, *sets, "--out", out, "--quiet"]
        )
        table = pq.read_table(Path(out) / "results.parquet").to_pandas()
    last = table[table["phase"] == "collaborate"]
    ray_accuracy = last[last["round"] == last["round"].max()]["test_accuracy"].mean() if len(last) else float("nan")
    plain_s, plain_out = timed(
        [
            sys.executable,
            str(HERE / "plain_fedmd.py"),
            "--preset",
            args.preset,
            *(["--set", *args.set] if args.set else []),
        ]
    )
    plain_accuracy = float(plain_out.strip().splitlines()[-2].split()[-1])
    print(f"\n{args.preset} {' '.join(args.set)}: fedmd-ray run {ray_s:.1f} s, plain script {plain_s:.1f} s")
    record(
        "whole_run",
        {
            "preset": args.preset,
            "overrides": " ".join(args.set),
            "fedmd_ray_s": ray_s,
            "plain_s": plain_s,
            "speedup": plain_s / ray_s,
            "fedmd_ray_final_accuracy": float(ray_accuracy),
            "plain_final_accuracy": plain_accuracy,
        },
    )


if __name__ == "__main__":
    main()
