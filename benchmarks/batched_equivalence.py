"""What "the same result" means between batched parties and one party after another, measured.

Batched parties (`batch_parties=true`) run each model's parties as one computation: the same
arithmetic per party, but matrix products over stacked weights may reduce in another order, so
the last bits of a float can differ and, over 20 rounds of training, grow. This runs the
`offline` data with 10 parties of two architectures (`cnn2-8-16`, `mlp-128`: two batched groups
of five) for 20 rounds, both paths, over 3 seeds, and prints:

- per party: |accuracy(batched) - accuracy(one by one)| at round 0 and at the last round;
- per seed: the mean gain (last round vs round 0) of each path, and their difference.

The definition the docs state (docs/performance.md §5) comes from these numbers.

    python benchmarks/batched_equivalence.py [--seeds 0 1 2] [--rounds 20]
"""

from __future__ import annotations

import argparse

import numpy as np
from common import record

import fedmd_ray


def final_accuracies(seed: int, rounds: int, batch: bool) -> tuple[dict[int, float], dict[int, float]]:
    """(round 0, last round) test accuracy of every party."""
    config = fedmd_ray.preset(
        "offline", models=("cnn2-8-16", "mlp-128"), rounds=rounds, seed=seed, batch_parties=batch, upper_bound=False
    )
    rows = fedmd_ray.run(config, verbose=False).to_pylist()
    at = lambda round_: {r["party"]: r["test_accuracy"] for r in rows if r["round"] == round_}  # noqa: E731
    return at(0), at(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    start_diffs, end_diffs, gain_diffs = [], [], []
    for seed in args.seeds:
        (b0, bR), (s0, sR) = (final_accuracies(seed, args.rounds, batch) for batch in (True, False))
        start = [abs(b0[p] - s0[p]) for p in b0]
        end = [abs(bR[p] - sR[p]) for p in bR]
        gains = [float(np.mean([after[p] - before[p] for p in before])) for before, after in ((b0, bR), (s0, sR))]
        start_diffs += start
        end_diffs += end
        gain_diffs.append(gains[0] - gains[1])
        print(
            f"seed {seed}: round 0 |diff| max {100 * max(start):.2f} points, round {args.rounds} |diff| mean "
            f"{100 * np.mean(end):.2f} max {100 * max(end):.2f} points; mean gain batched {100 * gains[0]:+.2f}, "
            f"one by one {100 * gains[1]:+.2f} points"
        )
    record(
        "batched_equivalence",
        {
            "seeds": len(args.seeds),
            "rounds": args.rounds,
            "round0_max_abs_diff_points": 100 * max(start_diffs),
            "final_mean_abs_diff_points": 100 * float(np.mean(end_diffs)),
            "final_max_abs_diff_points": 100 * max(end_diffs),
            "mean_gain_diff_points_mean": 100 * float(np.mean(gain_diffs)),
            "mean_gain_diff_points_max_abs": 100 * float(np.max(np.abs(gain_diffs))),
        },
    )


if __name__ == "__main__":
    main()
