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
    """The columns a sweep added besides the run schema and `trial_id`."""
    return [c for c in table.column_names if c not in RESULT_SCHEMA.names and c != "trial_id"]


def plot_run(table: pa.Table, path: Path) -> Path:
    """Per-party test accuracy vs round, each party's upper bound dashed (the paper's figure style)."""
    plt = _pyplot()
    df = table.to_pandas()
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    curves = df[df["phase"] != "upper_bound"].sort_values("round")
    colors = plt.cm.tab10.colors
    for party, rows in curves.groupby("party"):
        color = colors[party % len(colors)]
        ax.plot(rows["round"], rows["test_accuracy"], marker=".", color=color, label=f"{party}: {rows['model'].iloc[0]}")
        upper = df[(df["phase"] == "upper_bound") & (df["party"] == party)]["test_accuracy"]
        if len(upper):
            ax.axhline(float(upper.iloc[0]), color=color, linestyle="--", linewidth=0.8, alpha=0.6)
    mean = curves.groupby("round")["test_accuracy"].mean()
    ax.plot(mean.index, mean.values, color="black", linewidth=2.5, label="mean")
    ax.set_xlabel("round (0 = transfer learning only)")
    ax.set_ylabel("test accuracy on the private task")
    ax.set_title("FedMD: accuracy per party by round (dashed: upper bound on pooled private data)")
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_sweep(summary: pa.Table, params: list[str], out_dir: Path) -> list[Path]:
    """Mean gain vs each swept parameter; a heatmap when exactly two were swept."""
    import pandas as pd

    plt = _pyplot()
    values = summary.to_pandas()
    # Swept values as labels ("None": a field swept to its default), categories in value order.
    df = values.assign(**{
        p: pd.Categorical(values[p].map(_label), list(dict.fromkeys(values[p].sort_values(na_position="first")
                                                                   .map(_label))), ordered=True)
        for p in params
    })
    paths = []
    for param in params:
        fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
        others = [p for p in params if p != param]
        groups = df.groupby(others, observed=True) if others else [((), df)]
        for key, rows in groups:
            rows = rows.sort_values(param)
            label = ", ".join(f"{o}={v}" for o, v in zip(others, key if isinstance(key, tuple) else (key,)))
            ax.plot(rows[param].astype(str), rows["gain"], marker="o", label=label or "gain")
        ax.set_xlabel(param)
        ax.set_ylabel("mean accuracy gain over round 0")
        ax.set_title(f"FedMD sweep: gain from collaboration vs {param}")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        paths.append(_save(fig, out_dir / f"gain_vs_{param}.png"))
    if len(params) == 2:
        rows_param, cols_param = params
        grid = df.pivot_table(index=rows_param, columns=cols_param, values="gain", aggfunc="mean", observed=True)
        fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
        image = ax.imshow(grid.values, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(grid.columns)), [str(c) for c in grid.columns])
        ax.set_yticks(range(len(grid.index)), [str(i) for i in grid.index])
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                ax.text(j, i, f"{grid.values[i, j]:+.3f}", ha="center", va="center", color="white", fontsize=9)
        ax.set_xlabel(cols_param)
        ax.set_ylabel(rows_param)
        ax.set_title("FedMD sweep: mean accuracy gain over round 0")
        fig.colorbar(image, ax=ax, label="gain")
        paths.append(_save(fig, out_dir / "gain_heatmap.png"))
    return paths


def _label(value: Any) -> str:
    return "None" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    _pyplot().close(fig)  # pyplot keeps figures alive until closed
    return path
