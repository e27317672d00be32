"""The methods study of docs/methods.md: tables and a plot from the sweeps' own output.

Each setting is one `fedmd-ray sweep --grid strategy=... --grid seed=0,1,2` (the commands
are in docs/methods.md); this script reads their `sweep.parquet` files and prints, per
setting and strategy, mean ± spread over seeds of round 0, best round, final, upper
bound, gain and MB moved, the worst round's change against round 0 and the worst party's
final change against its own round 0 ("collaboration must not hurt"), parties near chance at
round 0 and parties whose stuck private fit was redone (`refits`), and draws mean
accuracy by round per strategy. With a no-collaboration control (`strategy=local` in the same
sweep, or `--control` sweeps), `vs_control` is each method's final accuracy minus the control's
for the same seed (what collaboration adds beyond the rounds' extra private training), and
`worst_party_vs_control` the worst party's final against its own in the control.

    python benchmarks/methods_study.py runs/study/offline runs/study/noniid ... [--plot docs/img/methods.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

import fedmd_ray
from fedmd_ray.analysis.metrics import harm
from fedmd_ray.analysis.schema import RESULT_SCHEMA


def with_method(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with a `method` column: the strategy, plus every other swept field but the seed that takes
    more than one value (e.g. `fedmd-kl party_weights=information`), so variants get their own rows."""
    swept = [c for c in df.columns if c not in RESULT_SCHEMA.names and c not in ("trial_id", "seed", "strategy")]
    varying = [c for c in swept if df[c].nunique(dropna=False) > 1]
    labels = df["strategy"].astype(str)
    for column in varying:
        labels = labels + f" {column}=" + df[column].astype(str)
    return df.assign(method=labels)


def final_by_party(df: pd.DataFrame) -> pd.Series:
    """Accuracy of the last round, per (seed, party)."""
    learn = df[df["phase"] != "upper_bound"]
    return learn[learn["round"] == learn["round"].max()].set_index(["seed", "party"])["test_accuracy"]


def per_trial(df: pd.DataFrame, classes: int, control: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per trial (method, seed) with the study's figures (`classes`: private classes; `control`:
    the no-collaboration control's trials, for `vs_control`)."""
    control_final = None if control is None else final_by_party(control)
    rows = []
    for (strategy, seed), trial in with_method(df).groupby(["method", "seed"]):
        learn = trial[trial["phase"] != "upper_bound"]
        by_round = learn.groupby("round")["test_accuracy"].mean()
        base = learn[learn["round"] == 0].set_index("party")["test_accuracy"]
        last = learn[learn["round"] == by_round.index.max()].set_index("party")["test_accuracy"]
        rounds = trial[trial["phase"] == "collaborate"]
        weights = trial[trial["phase"] == "transfer"].set_index("party")["model_bytes"]
        hurt = harm(trial.astype(object).where(trial.notna(), None).to_dict("records"))  # the product's rule
        rows.append(
            {
                "strategy": strategy,
                "seed": seed,
                "round0": by_round.loc[0],
                "best": by_round.loc[1:].max(),
                "best_round": int(by_round.loc[1:].idxmax()),
                "final": by_round.iloc[-1],
                "upper": trial.loc[trial["phase"] == "upper_bound", "test_accuracy"].mean(),
                "gain": by_round.iloc[-1] - by_round.loc[0],
                "worst_round_change": hurt.lowest_round_change,
                "change_by_round": by_round.loc[1:] - by_round.loc[0],
                "worst_party_change": hurt.worst_party_change,
                "near_chance": int((base < 1.5 / classes).sum()),
                "refits": int(
                    learn.loc[learn["phase"] == "transfer", "private_refit"].fillna(False).astype(bool).sum()
                ),
                "mb": (moved := rounds["bytes_sent"].sum() + rounds["bytes_received"].sum()) / 1e6,
                # what weight exchange (FedAvg) would move: each party's parameters both ways, every round it was in
                "vs_weights": moved / (2 * rounds["party"].map(weights).sum()),
            }
        )
        if control_final is not None:  # each party against itself in the control (same seed)
            against = last - control_final.xs(seed).reindex(last.index)
            rows[-1].update(vs_control=against.mean(), worst_party_vs_control=against.min())
    return pd.DataFrame(rows)


def summarise(trials: pd.DataFrame) -> pd.DataFrame:
    def spread(values: pd.Series) -> str:
        return f"{values.mean():.3f} ± {values.std(ddof=0):.3f}"

    def worst_of_mean(changes: pd.Series) -> float:
        """The lowest round of the seeds' mean curve (change against round 0)."""
        return float(pd.concat(list(changes), axis=1).mean(axis=1).min())

    control = (
        {"vs_control": ("vs_control", spread), "worst_party_vs_control": ("worst_party_vs_control", "min")}
        if "vs_control" in trials
        else {}
    )
    return trials.groupby("strategy").agg(
        round0=("round0", spread),
        best=("best", spread),
        final=("final", spread),
        upper=("upper", spread),
        gain=("gain", spread),
        **control,
        worst_round=("worst_round_change", "min"),
        worst_mean_round=("change_by_round", worst_of_mean),
        worst_party=("worst_party_change", "min"),
        near_chance=("near_chance", "sum"),
        refits=("refits", "sum"),
        mb=("mb", "mean"),
        vs_weights=("vs_weights", "mean"),
    )


def markdown(table: pd.DataFrame) -> str:
    """A GitHub table (no tabulate dependency)."""

    def cell(column: str, value: object) -> str:
        if not isinstance(value, float):
            return str(value)
        return {"mb": f"{value:.0f}", "vs_weights": f"{value:.2f}x"}.get(column, f"{value:+.3f}")

    header = ["strategy", *table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| " + " | ".join([str(index), *(cell(c, v) for c, v in zip(table.columns, row))]) + " |"
        for index, row in zip(table.index, table.values)
    ]
    return "\n".join(lines)


def load(directories: str, until: int | None) -> pd.DataFrame:
    """A setting's results: one sweep's, or several sweeps' joined by commas (`skew_study.sh` runs the
    paper's `fedmd` and the methods with extras as two sweeps of one setting); with `until`, only rounds
    up to it."""
    frames = [with_base_fields(Path(d)) for d in directories.split(",")]
    df = pd.concat(frames, ignore_index=True)
    return df if until is None else df[df["round"].isna() | (df["round"] <= until)]


def with_base_fields(directory: Path) -> pd.DataFrame:
    """A sweep's table with the base config's `strategy` and `seed` as columns where the sweep did not
    vary them (they are columns only when swept), read from the spec the sweep was started with."""
    import json

    df = fedmd_ray.load_results(directory / "sweep.parquet").to_pandas()
    spec = json.loads(next(directory.glob("tune/*/fedmd_sweep.json")).read_text())
    for field in ("strategy", "seed"):
        if field not in df:
            df[field] = spec["base"][field]
    return df


def setting_name(directories: str) -> str:
    """`runs/skew/offline-a0.1/paper,runs/skew/offline-a0.1/robust` -> `offline-a0.1`."""
    paths = [Path(d) for d in directories.split(",")]
    return paths[0].name if len(paths) == 1 else paths[0].parent.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "settings",
        nargs="+",
        help="sweep output directories, one per setting (several sweeps of one setting: joined by commas)",
    )
    parser.add_argument("--plot", help="write the mean-accuracy-by-round plot here")
    parser.add_argument("--classes", type=int, nargs="*", help="private classes per setting (default 5)")
    parser.add_argument(
        "--control",
        nargs="*",
        help="per setting, a sweep of the no-collaboration control "
        "(`strategy=local`, or `digest_epochs=0`) to compare finals with (default: the setting's "
        "own `local` trials, if any)",
    )
    parser.add_argument(
        "--until",
        type=int,
        help="only rounds up to this one: what a shorter run of the same trials "
        "reports (a round does not depend on how many follow it)",
    )
    args = parser.parse_args()
    curves, seeds = {}, {}
    for i, directory in enumerate(args.settings):
        df = load(directory, args.until)
        control = load(args.control[i], args.until) if args.control else df[df["strategy"] == "local"]
        trials = per_trial(df, (args.classes or [5] * len(args.settings))[i], None if control.empty else control)
        print(f"\n## {setting_name(directory)}\n")
        print(markdown(summarise(trials)))
        learn = df[df["phase"] != "upper_bound"]
        by_method = with_method(learn).groupby(["method", "round"])["test_accuracy"]
        curves[setting_name(directory)] = by_method.mean().unstack(0)
        seeds[setting_name(directory)] = learn["seed"].nunique()
    if args.plot:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.4), squeeze=False)
        for ax, (name, curve) in zip(axes[0], curves.items()):
            curve.plot(ax=ax, legend=ax is axes[0][0])
            ax.set_title(name)
            ax.set_xlabel("round")
            ax.set_ylabel(f"mean test accuracy ({seeds[name]} seeds)")
            ax.set_xticks(np.arange(0, curve.index.max() + 1, 5))
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"\nwrote {args.plot}")


if __name__ == "__main__":
    main()
