"""`fedmd-ray report DIR`: summary text and PNG plots for a run or a sweep directory."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pyarrow as pa

from fedmd_ray.analysis.io import load_results
from fedmd_ray.analysis.plots import plot_run, plot_sweep, run_title, swept_parameters
from fedmd_ray.analysis.summary import format_run, format_sweep_summary, sweep_summary
from fedmd_ray.errors import ConfigError, DataError
from fedmd_ray.outdir import CONFIG_FILE, MODELS_DIR, RESULTS_FILE, SPEC_FILE, SWEEP_FILE
from fedmd_ray.party_models import kept_models


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
        spec_file = next(iter(sorted(folder.glob(f"tune/*/{SPEC_FILE}"))), None)  # default storage: DIR/tune
        preset = _saved(spec_file).get("preset") if spec_file is not None else None
        title = f"{preset + ', ' if preset else ''}{summary.num_rows} trials"
        text = format_sweep_summary(summary, wide=True) + hint
        return text, plot_sweep(summary, params, folder, title) if plots else []
    if (folder / RESULTS_FILE).exists():
        table = load_results(folder / RESULTS_FILE)
        header = _saved(folder / CONFIG_FILE)
        config = header.get("config")
        saved: dict[str, Any] = config if isinstance(config, dict) else {}
        classes = saved.get("private_classes")
        text = format_run(table, len(classes) if isinstance(classes, list) else None)
        if not isinstance(classes, list):
            text += f"\n(no near-chance check: {folder / CONFIG_FILE} is missing or unreadable, so chance is unknown)"
        text += _unfinished(table, saved.get("rounds"), folder) + _models(folder) + hint
        plot = folder / "accuracy_by_round.png"
        return text, [plot_run(table, plot, run_title(header, table))] if plots else []
    if folder.is_file():
        raise DataError(f"{folder} is a file; report takes the directory of a run or sweep: {folder.parent}")
    if not folder.is_dir():
        raise DataError(f"{folder} does not exist or is not a directory")
    started = (
        "; a sweep was started here: continue it with `fedmd-ray sweep --resume`" if (folder / "tune").is_dir() else ""
    )
    raise DataError(f"{folder} holds neither {RESULTS_FILE} (a run) nor {SWEEP_FILE} (a sweep){started}")


def _saved(path: Path) -> dict[str, Any]:
    """A JSON file the run or sweep saved (config.json, the sweep's spec), empty where it cannot be read:
    the number of private classes tells chance in the health check, `rounds` an unfinished run, the
    preset and seed the plots' titles."""
    from fedmd_ray.config_file import read_document

    try:  # as --config reads a file: a FIFO or a huge file there must not hang or fill memory
        saved = read_document(path, str(path), "json")
    except ConfigError:
        return {}
    return saved if isinstance(saved, dict) else {}


def _models(folder: Path) -> str:
    """The party models the run kept (`party_models`), in a line or two."""
    kept = kept_models(folder)
    if not kept:
        return ""
    last = [p for p in kept if p.parent.name == MODELS_DIR]
    rounds = sorted({p.parent.name for p in kept if p.parent.name != MODELS_DIR})
    per_round = f"; every round's in {folder / MODELS_DIR}/round-NNN ({len(rounds)} rounds)" if rounds else ""
    return (
        f"\nparty models: {len(last)} in {folder / MODELS_DIR}{per_round}; "
        "fedmd_ray.load_party_model(DIR, party) loads one"
    )


def _unfinished(table: pa.Table, rounds: object, folder: Path) -> str:
    """A line saying the run stopped before its last round (interrupted, or stopped by a failure)."""
    done = max((r for r in table.column("round").to_pylist() if r is not None), default=0)
    if not isinstance(rounds, int) or done >= rounds:
        return ""
    return (
        f"\nunfinished: the run stopped after round {done} of {rounds}; continue it with "
        f"`fedmd-ray run --resume {folder}`"
    )
