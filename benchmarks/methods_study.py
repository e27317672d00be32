"""The methods study of docs/methods.md: tables and a plot from the sweeps' own output.

Each setting is one `fedmd-ray sweep --grid strategy=... --grid seed=0,1,2` (the commands
are in docs/methods.md); this script reads their `sweep.parquet` files and prints, per
setting and strategy, mean ± spread over seeds of round 0, best round, final, upper
bound, gain and MB moved, the worst round's change against round 0 and the worst party's
final change against its own round 0 ("collaboration must not hurt"), and draws mean
accuracy by round per strategy.

    python benchmarks/methods_study.py runs/study/offline runs/study/noniid ... [--plot docs/img/methods.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

import fedmd_ray


def per_trial(df: pd.DataFrame) -> pd.DataFrame:
    """One row per trial (strategy, seed) with the study's figures."""
    rows = []
    for (strategy, seed), trial in df.groupby(["strategy", "seed"]):
        learn = trial[trial["phase"] != "upper_bound"]
        by_round = learn.groupby("round")["test_accuracy"].mean()
        base = learn[learn["round"] == 0].set_index("party")["test_accuracy"]
        last = learn[learn["round"] == by_round.index.max()].set_index("party")["test_accuracy"]
        rounds = trial[trial["phase"] == "collaborate"]
        rows.append({
            "strategy": strategy, "seed": seed,
            "round0": by_round.loc[0], "best": by_round.loc[1:].max(), "best_round": int(by_round.loc[1:].idxmax()),
            "final": by_round.iloc[-1], "upper": trial.loc[trial["phase"] == "upper_bound", "test_accuracy"].mean(),
            "gain": by_round.iloc[-1] - by_round.loc[0],
            "worst_round_change": (by_round.loc[1:] - by_round.loc[0]).min(),
            "worst_party_change": (last - base).min(),
            "near_chance": int((base < 1.5 / trial_classes(trial)).sum()),
            "mb": (rounds["bytes_sent"].sum() + rounds["bytes_received"].sum()) / 1e6,
        })
    return pd.DataFrame(rows)


def trial_classes(trial: pd.DataFrame) -> int:
    """Private classes of a trial: the private labels its test set holds are not in the table; the
    study's settings all have 5 or 6 (offline-fashion), recorded by the sweep's base config."""
    return int(trial.attrs.get("private_classes", 5))


def summarise(trials: pd.DataFrame) -> pd.DataFrame:
    def spread(values: pd.Series) -> str:
        return f"{values.mean():.3f} ± {values.std(ddof=0):.3f}"

    out = trials.groupby("strategy").agg(
        round0=("round0", spread), best=("best", spread), final=("final", spread), upper=("upper", spread),
        gain=("gain", spread), worst_round=("worst_round_change", "min"),
        worst_party=("worst_party_change", "min"), near_chance=("near_chance", "sum"), mb=("mb", "mean"),
    )
    return out


def markdown(table: pd.DataFrame) -> str:
    """A GitHub table (no tabulate dependency)."""
    def cell(value: object) -> str:
        return f"{value:+.3f}" if isinstance(value, float) else str(value)

    header = ["strategy", *table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join([str(index), *map(cell, row)]) + " |" for index, row in zip(table.index, table.values)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", nargs="+", help="sweep output directories, one per setting")
    parser.add_argument("--plot", help="write the mean-accuracy-by-round plot here")
    parser.add_argument("--classes", type=int, nargs="*", help="private classes per setting (default 5)")
    args = parser.parse_args()
    curves = {}
    for i, directory in enumerate(args.settings):
        df = fedmd_ray.load_results(Path(directory) / "sweep.parquet").to_pandas()
        df.attrs["private_classes"] = (args.classes or [5] * len(args.settings))[i]
        trials = per_trial(df)
        print(f"\n## {Path(directory).name}\n")
        print(markdown(summarise(trials)))
        learn = df[df["phase"] != "upper_bound"]
        curves[Path(directory).name] = learn.groupby(["strategy", "round"])["test_accuracy"].mean().unstack(0)
    if args.plot:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.4), squeeze=False)
        for ax, (name, curve) in zip(axes[0], curves.items()):
            curve.plot(ax=ax, legend=ax is axes[0][0])
            ax.set_title(name)
            ax.set_xlabel("round")
            ax.set_ylabel("mean test accuracy (3 seeds)")
            ax.set_xticks(np.arange(0, curve.index.max() + 1, 5))
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"\nwrote {args.plot}")


if __name__ == "__main__":
    main()
