"""Watch a run: its progress on the terminal, every round's metrics in your own code and in TensorBoard.

`fedmd_ray.run` shows its progress on stderr by default (a bar on a terminal, `verbose=False` for
warnings only). `callbacks=` receive the metrics a sweep's trials report to Tune after round 0 and
every round: `round`, `mean_accuracy`, `mean_gain`, `parties_in_gain`, `party_<id>_accuracy`.
A callback is a function, or an object with `on_round(metrics)` and optionally `on_end(table)`.
Built in: `fedmd_ray.callbacks.TensorBoard(DIR)` and `MLflow(URI)`; on the command line
`fedmd-ray run --tensorboard DIR` and `--mlflow URI`.

Run:  python examples/watch_a_run.py [--preset offline] [--rounds 5] [--tensorboard runs/tb]
      then: tensorboard --logdir runs/tb
"""

from __future__ import annotations

import argparse
import tempfile
from typing import Any

import fedmd_ray
from fedmd_ray.callbacks import TensorBoard


class StopWatch:
    """Your own callback: the best round so far, kept as the run goes."""

    def __init__(self) -> None:
        self.best: tuple[float, int] = (-1.0, -1)

    def on_round(self, metrics: dict[str, Any]) -> None:
        self.best = max(self.best, (metrics["mean_accuracy"], metrics["round"]))

    def on_end(self, table: Any) -> None:
        print(f"best round: {self.best[1]} at mean accuracy {100 * self.best[0]:.1f}% ({table.num_rows} rows)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick", help="quick (sklearn digits, ~1 min) or offline (MNIST)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tensorboard", help="TensorBoard log directory (default: a temporary one)")
    args = parser.parse_args()
    log_dir = args.tensorboard or tempfile.mkdtemp(prefix="fedmd-tb-")
    config = fedmd_ray.preset(args.preset, rounds=args.rounds)
    gains: list[float] = []
    fedmd_ray.run(
        config,
        callbacks=[
            lambda metrics: gains.append(metrics["mean_gain"]),  # a plain function works too
            StopWatch(),
            TensorBoard(log_dir),
        ],
    )
    print("mean gain by round (points):", " ".join(f"{100 * g:+.1f}" for g in gains))
    print(f"TensorBoard scalars in {log_dir}: tensorboard --logdir {log_dir}")


if __name__ == "__main__":
    main()
