"""Summaries of a result table, computed with pyarrow.compute."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True)
class RunSummary:
    """None where no party has an accuracy (all failed or absent; the table says why)."""

    baseline: float | None  # mean test accuracy at round 0 (transfer learning only)
    final: float | None  # mean test accuracy after the last round
    upper_bound: float | None  # mean test accuracy of the models trained on all private data
    rounds: int

    @property
    def gain(self) -> float | None:
        return None if self.final is None or self.baseline is None else self.final - self.baseline


def mean_accuracy_by_round(table: pa.Table, phase_filter: tuple[str, ...] = ("transfer", "collaborate")) -> pa.Table:
    """(round, mean, min, max) of test accuracy over parties, round 0 = baseline."""
    rows = table.filter(pc.is_in(table["phase"], pa.array(phase_filter)))
    grouped = rows.group_by("round").aggregate(
        [("test_accuracy", "mean"), ("test_accuracy", "min"), ("test_accuracy", "max")]
    )
    return grouped.sort_by("round")


def summarize(table: pa.Table) -> RunSummary:
    by_round = mean_accuracy_by_round(table)
    rounds = by_round["round"].to_pylist()
    means = by_round["test_accuracy_mean"].to_pylist()
    upper = table.filter(pc.equal(table["phase"], "upper_bound"))
    return RunSummary(
        baseline=means[0],
        final=means[-1],
        upper_bound=pc.mean(upper["test_accuracy"]).as_py() if upper.num_rows else None,
        rounds=int(rounds[-1]),
    )


def format_summary(summary: RunSummary) -> str:
    def number(value: float | None, spec: str = ".4f") -> str:
        return "n/a" if value is None else format(value, spec)

    return (
        f"mean test accuracy: baseline (round 0) {number(summary.baseline)} | final (round {summary.rounds}) "
        f"{number(summary.final)} | upper bound {number(summary.upper_bound)} | gain {number(summary.gain, '+.4f')}"
    )


def format_run(table: pa.Table) -> str:
    """What a finished run prints and `fedmd-ray report` repeats: the summary, then any failures."""
    return "\n".join(filter(None, [format_summary(summarize(table)), format_events(table)]))


def format_events(table: pa.Table) -> str:
    """Which party was restarted, dropped or absent in which rounds; empty when all went fine."""
    lines = []
    events = table.filter(pc.not_equal(table["status"], "ok")).to_pylist()
    for party in sorted({r["party"] for r in events}):
        own = [r for r in events if r["party"] == party]
        model = own[0]["model"]
        for status in ("restarted", "absent"):
            rounds = sorted({r["round"] for r in own if r["status"] == status})
            if rounds:
                lines.append(f"party {party} ({model}) {status} in round(s) {', '.join(map(str, rounds))}")
        dropped = [r["round"] for r in own if r["status"] == "dropped"]
        if dropped:
            lines.append(f"party {party} ({model}) dropped from round {min(dropped)}")
    return "\n".join(["failures and absences:", *lines]) if lines else ""


def sweep_summary(table: pa.Table, params: list[str]) -> pa.Table:
    """One row per trial: swept parameters, baseline, final, upper bound, gain; best gain first.

    `final` is the last round the trial reached (a scheduler may stop it early;
    `rounds_run` says where).
    """
    df = table.to_pandas()
    rows = []
    for trial_id, trial in df.groupby("trial_id", sort=False):
        by_round = trial[trial["phase"] != "upper_bound"].groupby("round")["test_accuracy"].mean()
        upper = trial.loc[trial["phase"] == "upper_bound", "test_accuracy"]
        first = trial.iloc[0]
        rows.append({
            "trial_id": trial_id,
            **{p: first[p] for p in params},
            "rounds_run": int(by_round.index.max()),
            "baseline": float(by_round.loc[0]),
            "final": float(by_round.iloc[-1]),
            "upper_bound": float(upper.mean()) if len(upper) else None,
            "gain": float(by_round.iloc[-1] - by_round.loc[0]),
        })
    rows.sort(key=lambda r: -math.inf if math.isnan(r["gain"]) else r["gain"], reverse=True)
    return pa.Table.from_pylist(rows)  # best gain first; NaN (no party in the last round) last


def format_sweep_summary(summary: pa.Table) -> str:
    """The summary as an aligned text table (pandas formatting)."""
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 50, "display.float_format", "{:.4f}".format):
        text: str = summary.to_pandas().to_string(index=False)
    return text
