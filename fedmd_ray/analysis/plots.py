"""PNG figures of run and sweep tables (matplotlib, the `[plot]` extra).

Reads only result tables: anything that can load a Parquet file can re-plot.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pyarrow as pa

from fedmd_ray.analysis.schema import RESULT_SCHEMA
from fedmd_ray.errors import FedMDError
from fedmd_ray.phases import UPPER_BOUND

FIGSIZE = (8, 5)  # inches; at 100 dpi: 800 x 500 pixels
DPI = 100


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise FedMDError("plots need matplotlib: pip install 'fedmd-ray[plot]'") from exc
    return plt


def swept_parameters(table: pa.Table) -> list[str]:
    """The columns a sweep added besides the run schema, `trial_id` and `trial_status`."""
    return [c for c in table.column_names if c not in RESULT_SCHEMA.names and c not in ("trial_id", "trial_status")]


def plot_run(table: pa.Table, path: Path, title: str = "") -> Path:
    """Per-party test accuracy (%) by round (thin), their mean (thick), the round-0 mean (dotted), and each
    party's upper bound (a short bar in its colour right of the last round; their mean dashed), under
    `title` (the preset, seed and run id: `run_title`). The axes end at the data, with a margin."""
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    df = table.to_pandas()
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    curves = df[df["phase"] != UPPER_BOUND].dropna(subset=["round"]).sort_values("round")
    bounds = df[df["phase"] == UPPER_BOUND].dropna(subset=["test_accuracy"])
    colors = plt.cm.tab10.colors
    many = curves["party"].nunique() > 10
    for party, rows in curves.groupby("party"):
        label = None if many else f"{party}: {rows['model'].iloc[0]}"
        ax.plot(
            rows["round"],
            100 * rows["test_accuracy"],
            marker="." if not many else None,
            linewidth=0.8,
            alpha=0.35 if many else 0.8,
            color=colors[party % len(colors)],
            label=label,
        )
    last = int(curves["round"].max()) if len(curves) else 0
    mean = curves.groupby("round")["test_accuracy"].mean()
    ax.plot(mean.index, 100 * mean.values, color="black", linewidth=2.5, label="mean")
    if 0 in mean.index:
        ax.axhline(100 * float(mean.loc[0]), color="black", linestyle=":", linewidth=1.2, label="mean at round 0")
    _upper_bounds_and_limits(ax, curves, bounds, last, colors, many)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round (0 = transfer learning only)")
    ax.set_ylabel("test accuracy on the private task (%)")
    ax.set_title(f"FedMD: accuracy by round{chr(10) + title if title else ''}", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes: it hides no point
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _upper_bounds_and_limits(ax: Any, curves: Any, bounds: Any, last: int, colors: Any, many: bool) -> None:
    """Each party's upper bound as a short bar in its colour right of the last round, their mean dashed
    across; the axes ending at the data, with a margin: nothing against the frame."""
    bar = max(0.4, last / 30)  # the upper bounds' bars, right of the last round
    for party, accuracy in zip(bounds["party"], bounds["test_accuracy"]):
        ax.hlines(
            100 * accuracy,
            last + bar / 2,
            last + 1.5 * bar,
            color=colors[int(party) % len(colors)],
            linewidth=2,
            alpha=0.35 if many else 0.9,
        )
    if len(bounds):
        upper = 100 * float(bounds["test_accuracy"].mean())
        ax.hlines(
            upper,
            0,
            last + 1.5 * bar,
            color="black",
            linestyle="--",
            linewidth=1.2,
            label="upper bound: mean; bars: each party's",
        )
    shown = [100 * curves["test_accuracy"].dropna(), 100 * bounds["test_accuracy"]]
    values = [v for series in shown for v in series]
    if values:
        low, high = min(values), max(values)
        margin = max(2.0, 0.06 * (high - low))  # nothing against the frame
        ax.set_ylim(low - margin, high + margin)
    ax.set_xlim(-0.3, last + (1.8 * bar if len(bounds) else 0.3))


def run_title(header: dict[str, Any], table: pa.Table) -> str:
    """ "offline, seed 0, run 1a2b3c4d5e6f7a8b": what a run's plot names (config.json's `preset`, else
    "custom"; the seed; the run id)."""
    config = header.get("config") if isinstance(header.get("config"), dict) else {}
    run_ids = sorted(set(table.column("run_id").to_pylist())) if "run_id" in table.column_names else []
    parts = [str(header.get("preset") or "custom")]
    if isinstance(config, dict) and "seed" in config:
        parts.append(f"seed {config['seed']}")
    if run_ids:
        parts.append(f"run {run_ids[0]}")
    return ", ".join(parts)


def plot_sweep(summary: pa.Table, params: list[str], out_dir: Path, title: str = "") -> list[Path]:
    """Mean gain vs each swept parameter; a heatmap when exactly two were swept; `title` (the base preset,
    the trials) in every title."""
    import pandas as pd

    about = f"\n{title}" if title else ""
    plt = _pyplot()
    values = summary.to_pandas()
    # Swept values as labels ("None": a field swept to its default), categories in value order.
    df = values.assign(
        **{
            p: pd.Categorical(
                values[p].map(_label),
                list(dict.fromkeys(values[p].sort_values(na_position="first").map(_label))),
                ordered=True,
            )
            for p in params
        }
    )
    paths = []
    for param in params:
        fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
        others = [p for p in params if p != param]
        groups = df.groupby(others, observed=True) if others else [((), df)]
        for key, rows in groups:
            rows = rows.sort_values(param)
            label = ", ".join(f"{o}={v}" for o, v in zip(others, key if isinstance(key, tuple) else (key,)))
            ax.plot(rows[param].astype(str), 100 * rows["gain"].astype(float), marker="o", label=label or "gain")
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xlabel(param)
        ax.set_ylabel("mean accuracy gain over round 0 (points)")
        ax.set_title(f"FedMD sweep: gain from collaboration vs {param}{about}", fontsize=10, wrap=True)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        paths.append(_save(fig, out_dir / f"gain_vs_{param}.png"))
    if len(params) == 2:
        paths.append(_heatmap(df, params, out_dir, about))
    return paths


def _heatmap(df: Any, params: list[str], out_dir: Path, about: str) -> Path:
    """Mean gain (points) for each pair of values of the two swept fields: blue up, red down, white none."""
    from matplotlib.colors import TwoSlopeNorm

    plt = _pyplot()
    rows_param, cols_param = params
    df = df.assign(points=100 * df["gain"].astype(float))
    grid = df.pivot_table(index=rows_param, columns=cols_param, values="points", aggfunc="mean", observed=True)
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    reach = max(float(abs(grid.values[grid.values == grid.values]).max(initial=0.0)), 1e-6)
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-reach, vmax=reach)
    cmap = plt.get_cmap("RdBu")
    image = ax.imshow(grid.values, cmap=cmap, norm=norm, aspect="auto")
    ax.set_xticks(range(len(grid.columns)), [str(c) for c in grid.columns])
    ax.set_yticks(range(len(grid.index)), [str(i) for i in grid.index])
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            value = grid.values[i, j]
            red, green, blue, _ = cmap(norm(value))
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5  # text that reads on its cell
            ax.text(j, i, f"{value:+.1f}", ha="center", va="center", color="white" if dark else "black", fontsize=9)
    ax.set_xlabel(cols_param)
    ax.set_ylabel(rows_param)
    ax.set_title(f"FedMD sweep: mean accuracy gain over round 0 (points){about}", fontsize=10)
    fig.colorbar(image, ax=ax, label="gain (points)")
    return _save(fig, out_dir / "gain_heatmap.png")


def _label(value: Any) -> str:
    return "None" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    _pyplot().close(fig)  # pyplot keeps figures alive until closed
    return path
