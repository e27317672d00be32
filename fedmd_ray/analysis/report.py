"""`fedmd-ray report DIR`: summary text and PNG plots for a run or a sweep directory."""

from __future__ import annotations

from pathlib import Path

from fedmd_ray.analysis.io import RESULTS_FILE, SWEEP_FILE, load_results
from fedmd_ray.analysis.plots import plot_run, plot_sweep, swept_parameters
from fedmd_ray.analysis.summary import format_run, format_sweep_summary, sweep_summary
from fedmd_ray.errors import DataError


def report(directory: str | Path) -> tuple[str, list[Path]]:
    """Write the plots into `directory`; return the summary text and the PNG paths."""
    from fedmd_ray.outdir import as_path

    folder = as_path(directory, "directory")
    if (folder / SWEEP_FILE).exists():
        table = load_results(folder / SWEEP_FILE)
        params = swept_parameters(table)
        summary = sweep_summary(table, params)
        return format_sweep_summary(summary), plot_sweep(summary, params, folder)
    if (folder / RESULTS_FILE).exists():
        table = load_results(folder / RESULTS_FILE)
        return format_run(table), [plot_run(table, folder / "accuracy_by_round.png")]
    if not folder.is_dir():
        raise DataError(f"{folder} does not exist or is not a directory")
    raise DataError(f"{folder} holds neither {RESULTS_FILE} (a run) nor {SWEEP_FILE} (a sweep)")
