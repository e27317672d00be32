"""A run's rounds timed under this checkout and under an earlier commit, in one benchmark run.

Issue 35 asks for a 10-party round faster than "the code when it was filed"; the levers of
`round_levers.py` each measure one change against the code just before it. This script measures
the whole distance: the same run (`benchmarks/common.timed_run`: the real driver, Ray, the
preset's data) under the commit's code and under this checkout's, alternately (old, new, old,
new, ...) so that a machine that slows down or speeds up weighs on both sides alike. Each run is
a fresh process whose imports come from its side's tree (`git archive` of the commit into a
temporary directory). The final mean accuracy of both sides is printed: the same figure on both
says they did the same work.

    python benchmarks/against_commit.py 03137bc^ [--preset offline] [--rounds 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from common import record

REPO = Path(__file__).resolve().parent.parent

RUN = """
import json, sys
import fedmd_ray
from common import timed_run
times = timed_run(fedmd_ray.preset(sys.argv[1], rounds=int(sys.argv[2])))
print("TIMES " + json.dumps({"rounds": times.rounds, "transfer": times.transfer, "accuracy": times.accuracy}))
"""


def export(commit: str, into: Path) -> str:
    """The commit's tree written under `into`; returns its full hash."""
    full = subprocess.run(["git", "rev-parse", commit], cwd=REPO, check=True, capture_output=True, text=True)
    archive = subprocess.run(["git", "archive", full.stdout.strip()], cwd=REPO, check=True, capture_output=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into / "tree", filter="data")
    return full.stdout.strip()


def timed(tree: Path, preset: str, rounds: int) -> dict[str, Any]:
    """One run of `preset` in a fresh process importing fedmd_ray (and the benchmarks' helpers) from `tree`."""
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{tree / 'benchmarks'}"}
    done = subprocess.run(
        [sys.executable, "-c", RUN, preset, str(rounds)],
        cwd=tree / "benchmarks",
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("TIMES ")]
    if done.returncode or not lines:
        raise RuntimeError(f"the run under {tree} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1].removeprefix("TIMES "))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commit", help="the earlier code, any git revision (e.g. 03137bc^)")
    parser.add_argument("--preset", default="offline")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        commit = export(args.commit, Path(scratch))
        sides = {"then": Path(scratch) / "tree", "now": REPO}
        runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
        for repeat in range(args.repeats):
            for side, tree in sides.items():
                runs[side].append(timed(tree, args.preset, args.rounds))
                per_round = statistics.mean(runs[side][-1]["rounds"])
                print(f"repeat {repeat + 1}, {side}: {per_round:.2f} s per round", flush=True)
    # The median run's mean round: one slow run (another job starting) does not decide.
    per_round = {side: statistics.median(statistics.mean(r["rounds"]) for r in done) for side, done in runs.items()}
    accuracy = {side: done[0]["accuracy"] for side, done in runs.items()}
    record(
        "against_commit",
        {
            "commit": commit[:12],
            "preset": args.preset,
            "rounds": args.rounds,
            "round_s_then": per_round["then"],
            "round_s_now": per_round["now"],
            "round_speedup": per_round["then"] / per_round["now"],
            "transfer_s_then": statistics.median(r["transfer"] for r in runs["then"]),
            "transfer_s_now": statistics.median(r["transfer"] for r in runs["now"]),
            "accuracy_then": accuracy["then"],
            "accuracy_now": accuracy["now"],
        },
    )


if __name__ == "__main__":
    main()
