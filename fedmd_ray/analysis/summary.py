"""Summaries of a result table, computed with pyarrow.compute."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from fedmd_ray.analysis.metrics import Gain, Harm, Traffic, gain, harm, mean_accuracy, traffic, transfer_health
from fedmd_ray.phases import COLLABORATE, TRANSFER, UPPER_BOUND


@dataclass(frozen=True)
class RunSummary:
    """None where no party has an accuracy (all failed or absent; the table says why)."""

    baseline: float | None  # mean test accuracy at round 0 (transfer learning only)
    final: float | None  # mean test accuracy after the last round
    upper_bound: float | None  # mean test accuracy of the models trained on all private data
    rounds: int
    change: Gain  # final vs round 0 over the parties present in both
    harm: Harm  # the worst party's and the lowest round's change against round 0
    traffic: Traffic
    parties: int  # parties of the run

    @property
    def gain(self) -> float | None:
        return self.change.value


def summarize(table: pa.Table) -> RunSummary:
    rows = table.to_pylist()
    last = max(r["round"] for r in rows if r["phase"] in (TRANSFER, COLLABORATE))
    transfer = [r for r in rows if r["phase"] == TRANSFER]
    final = [r for r in rows if r["phase"] in (TRANSFER, COLLABORATE) and r["round"] == last]
    return RunSummary(
        baseline=mean_accuracy(transfer),
        final=mean_accuracy(final),
        upper_bound=mean_accuracy(r for r in rows if r["phase"] == UPPER_BOUND),
        rounds=int(last),
        change=gain(transfer, final),
        harm=harm(rows),
        traffic=traffic(rows),
        parties=len({r["party"] for r in rows}),
    )


def percent(value: float | None) -> str:
    """An accuracy as printed everywhere: `72.0%` (`n/a` when no party had one)."""
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


def points(value: float | None) -> str:
    """A change of accuracy as printed everywhere: `+13.4 points` (percentage points)."""
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:+.1f} points"


def format_summary(summary: RunSummary) -> str:
    """The run in three lines: the mean before and after the rounds and the upper bound; the worst
    party and the worst round against round 0; the traffic. Accuracies in %, changes in points."""
    change = summary.change
    over = (
        ""
        if change.parties == summary.parties
        else (f" over the {change.parties} {'party' if change.parties == 1 else 'parties'} present in both")
    )
    lines = [
        f"mean test accuracy: {percent(summary.baseline)} after transfer learning (round 0), "
        f"{percent(summary.final)} after round {summary.rounds} ({points(summary.gain)}{over}); "
        f"upper bound {percent(summary.upper_bound)}"
    ]
    hurt = summary.harm
    if hurt.worst_party is not None and hurt.lowest_round is not None:
        lines.append(
            f"worst party: {hurt.worst_party} ({hurt.worst_party_model}), "
            f"{points(hurt.worst_party_change)} from round 0 to its last round"
        )
        lines.append(
            f"worst round: round {hurt.lowest_round}, the round whose mean stood lowest against round 0: "
            f"{points(hurt.lowest_round_change)}"
        )
    moved = summary.traffic
    if moved.moved or moved.weights:  # a control run (`strategy=local`) moves 0 bytes
        ratio = (
            ""
            if moved.ratio is None
            else (f", {100 * moved.ratio:.1f}% of the {byte_size(moved.weights)} that exchanging weights would move")
        )
        lines.append(f"communication: {byte_size(moved.moved)} moved in the rounds{ratio}")
    return "\n".join(lines)


def byte_size(n: int) -> str:
    """`n` bytes in the largest decimal unit that keeps it at least 1 (B, kB, MB, GB, TB)."""
    value, unit = float(n), "B"
    for larger in ("kB", "MB", "GB", "TB"):
        if round(value, 1) < 1000:  # 999960 B is 1.0 MB, not 1000.0 kB
            break
        value, unit = value / 1000, larger
    return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"


def format_run(table: pa.Table, private_classes: int | None = None) -> str:
    """What a finished run prints and `fedmd-ray report` repeats: the summary, the transfer health
    warnings (near chance only with the number of private classes, which says what chance is), then
    any failures."""
    health = transfer_health(table.to_pylist(), private_classes)
    warnings = "\n".join(["transfer learning health:", *health]) if health else ""
    return "\n".join(filter(None, [format_summary(summarize(table)), warnings, format_events(table)]))


def format_events(table: pa.Table) -> str:
    """Which party was restarted, dropped or absent in which rounds; empty when all went fine."""
    lines = []
    events = table.filter(pc.not_equal(table["status"], "ok")).to_pylist()
    for party in sorted({r["party"] for r in events}):
        own = [r for r in events if r["party"] == party]
        model = own[0]["model"]
        for status in ("restarted", "absent"):
            rounds = sorted({r["round"] for r in own if r["status"] == status and r["round"] is not None})
            if rounds:
                lines.append(f"party {party} ({model}) {status} in round(s) {', '.join(map(str, rounds))}")
        dropped = [r["round"] for r in own if r["status"] == "dropped" and r["round"] is not None]
        if dropped:
            lines.append(f"party {party} ({model}) dropped from round {min(dropped)}")
    return "\n".join(["failures and absences:", *lines]) if lines else ""


def sweep_summary(table: pa.Table, params: list[str]) -> pa.Table:
    """One row per trial: swept parameters, status, baseline, final, upper bound, gain, the worst
    party (id, model, change) and the lowest round's change against round 0 (`metrics.Harm`),
    traffic; best gain first.

    `final` is the last round the trial reached (a scheduler may stop it early, a failure end it;
    `rounds_run` says where, `status` why: finished, stopped or failed).
    """
    trials: dict[str, list[dict[str, Any]]] = {}
    for row in table.to_pylist():
        trials.setdefault(row["trial_id"], []).append(row)
    rows = []
    for trial_id, trial in trials.items():
        run = summarize(pa.Table.from_pylist(trial))
        rows.append(
            {
                "trial_id": trial_id,
                **{p: trial[0][p] for p in params},
                **({"status": trial[0]["trial_status"]} if "trial_status" in trial[0] else {}),  # older sweeps lack it
                "rounds_run": run.rounds,
                "baseline": run.baseline,
                "final": run.final,
                UPPER_BOUND: run.upper_bound,
                "gain": run.gain,
                "worst_party": run.harm.worst_party,
                "worst_party_model": run.harm.worst_party_model,
                "worst_party_change": run.harm.worst_party_change,
                "lowest_round_change": run.harm.lowest_round_change,
                "megabytes": run.traffic.moved / 1e6,
                "traffic_vs_weights": run.traffic.ratio,
            }
        )
    rows.sort(key=lambda r: -math.inf if r["gain"] is None or math.isnan(r["gain"]) else r["gain"], reverse=True)
    return pa.Table.from_pylist(rows)  # best gain first; None (no party in the last round) last


WIDTH = 120  # columns of the sweep summary a sweep prints (`report` prints every column)
SHOWN = {
    "baseline": "round 0",
    "final": "final",
    UPPER_BOUND: "upper",
    "gain": "gain",
    "worst_party_change": "worst party",
}  # the summary columns a sweep prints, by their header


def format_sweep_summary(summary: pa.Table, wide: bool = False) -> str:
    """The summary as an aligned text table: accuracies in %, changes in points. By default the columns
    that fit `WIDTH` (swept values shortened to fit); `wide=True` every column (`fedmd-ray report`)."""
    import pandas as pd

    frame = summary.to_pandas()
    for column in frame.columns:
        if column in ("baseline", "final", UPPER_BOUND, "traffic_vs_weights"):
            frame[column] = frame[column].map(lambda v: percent(None if pd.isna(v) else v))
        elif column == "megabytes":
            frame[column] = frame[column].map("{:.1f}".format)
        elif column in ("gain", "worst_party_change", "lowest_round_change"):
            frame[column] = frame[column].map(lambda v: points(None if pd.isna(v) else v).removesuffix(" points"))
    if not wide:
        fixed = [c for c in ("trial_id", "status", "rounds_run") if c in frame.columns]
        params = [c for c in frame.columns if c not in fixed and c not in SHOWN and c not in _DETAIL]
        frame = frame[fixed[:1] + params + fixed[1:] + list(SHOWN)].rename(columns={**SHOWN, "rounds_run": "rounds"})
        frame = _fit(frame, params)
    with pd.option_context(
        "display.width",
        10_000,
        "display.max_columns",
        100,
        "display.max_colwidth",
        200,
        "display.float_format",
        "{:.4f}".format,
    ):
        text: str = frame.to_string(index=False)
    note = "accuracy in %, gain and worst party in points against round 0"
    return f"{text}\n({note}{'' if wide else '; every column: fedmd-ray report DIR or summary.parquet'})"


_DETAIL = ("worst_party", "worst_party_model", "lowest_round_change", "megabytes", "traffic_vs_weights")


def _fit(frame: Any, params: list[str]) -> Any:
    """Shorten the swept values' cells until the table fits `WIDTH` columns (never below 8 characters)."""

    def width() -> int:
        return sum(max(len(str(c)), *(len(str(v)) for v in frame[c])) + 2 for c in frame.columns) if len(frame) else 0

    limit = max((len(str(v)) for p in params for v in frame[p]), default=0)
    while params and width() > WIDTH and limit > 8:
        limit -= 1
        for p in params:
            frame[p] = frame[p].map(lambda v, n=limit: s if len(s := str(v)) <= n else s[: n - 1] + "…")
    return frame
