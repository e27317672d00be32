"""`fedmd-ray report DIR`: summary text and PNG plots for a run or a sweep directory."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from fedmd_ray.analysis.io import CONFIG_FILE, RESULTS_FILE, SWEEP_FILE, load_results
from fedmd_ray.analysis.plots import plot_run, plot_sweep, swept_parameters
from fedmd_ray.analysis.summary import format_run, format_sweep_summary, sweep_summary
from fedmd_ray.errors import DataError


def report(directory: str | Path) -> tuple[str, list[Path]]:
    """Write the plots into `directory`; return the summary text and the PNG paths. Without matplotlib
    (the `[plot]` extra) the summary comes alone, with a line saying how to get the plots."""
    from fedmd_ray.outdir import as_path

    folder = as_path(directory, "directory")
    plots = importlib.util.find_spec("matplotlib") is not None
    hint = "" if plots else "\n(no plots: matplotlib is not installed; pip install 'fedmd-ray[plot]')"
    if (folder / SWEEP_FILE).exists():
        table = load_results(folder / SWEEP_FILE)
        params = swept_parameters(table)
        summary = sweep_summary(table, params)
        return format_sweep_summary(summary) + hint, plot_sweep(summary, params, folder) if plots else []
    if (folder / RESULTS_FILE).exists():
        table = load_results(folder / RESULTS_FILE)
        text = format_run(table, _private_classes(folder)) + hint
        return text, [plot_run(table, folder / "accuracy_by_round.png")] if plots else []
    if not folder.is_dir():
        raise DataError(f"{folder} does not exist or is not a directory")
    raise DataError(f"{folder} holds neither {RESULTS_FILE} (a run) nor {SWEEP_FILE} (a sweep)")


def _private_classes(folder: Path) -> int | None:
    """How many private classes the run had (config.json), to tell chance in the health check."""
    try:
        classes = json.loads((folder / CONFIG_FILE).read_text())["config"]["private_classes"]
        return len(classes) if isinstance(classes, list) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
