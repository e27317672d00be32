"""The Tune trainable: one trial = one FedMD run, reporting after every round.

Reported metrics (for schedulers such as ASHA and for Tune's loggers):
`round`, `mean_accuracy` (mean test accuracy over parties), `mean_gain`
(its change since round 0). The trial's long table is written to the sweep's
results directory before every report, so a trial that a scheduler stops keeps
the rounds it ran.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from fedmd_ray.actors.portable import Portable
from fedmd_ray.analysis.io import join_uri, write_table
from fedmd_ray.analysis.schema import rows_to_table
from fedmd_ray.config import FedMDConfig
from fedmd_ray.data.resolve import SOURCES
from fedmd_ray.experiment import prepare
from fedmd_ray.model_names import MODELS
from fedmd_ray.plugins import Registry, describe
from fedmd_ray.runner import iterate_phases
from fedmd_ray.strategy import STRATEGIES

BASE = "_base"  # the base config (dict) inside Tune's param space
RESULTS = "_results"  # directory/URI for the trials' tables
CACHE = "_transfer_cache"  # directory/URI of the transfer cache, or None
PLUGINS = "_plugins"  # what the user registered in the sweep's process (registries are per process)
_REGISTRIES: dict[str, Registry[Any]] = {"models": MODELS, "sources": SOURCES, "strategies": STRATEGIES}


def registered_plugins() -> dict[str, dict[str, Any]]:
    """The user's registrations in this process, to hand to trials (they travel by value)."""
    return {kind: registry.user_entries() for kind, registry in _REGISTRIES.items()}


def trial_config(params: dict[str, Any]) -> FedMDConfig:
    """The trial's config: the base with the swept values applied (the sweep's registrations first).
    The base, the registrations and swept plug-in objects arrive packed (see `actors.portable`)."""
    for kind, entries in params[PLUGINS].unwrap().items():
        _REGISTRIES[kind].install(entries)
    return FedMDConfig.from_dict({**params[BASE].unwrap(), **swept_values(params)})


def swept_values(params: dict[str, Any]) -> dict[str, Any]:
    """The trial's values of the swept fields, unpacked."""
    return {k: v.unwrap() if isinstance(v, Portable) else v for k, v in params.items() if not k.startswith("_")}


def swept_columns(table: pa.Table, trial_id: str, swept: dict[str, Any]) -> pa.Table:
    """Add `trial_id` and one column per swept field (plug-in objects by name) to a trial's long table."""
    table = table.append_column("trial_id", pa.array([trial_id] * table.num_rows, pa.string()))
    for key, value in swept.items():
        text = ",".join(map(describe, value)) if isinstance(value, (list, tuple)) else value
        cell = text if isinstance(text, (str, int, float, bool)) or text is None else describe(text)
        table = table.append_column(key, pa.array([cell] * table.num_rows))
    return table


def trainable(params: dict[str, Any]) -> None:
    from ray import tune

    config = trial_config(params)
    trial_id = tune.get_context().get_trial_id()
    rows: list[dict[str, Any]] = []
    baseline = None
    phases = iterate_phases(prepare(config), transfer_cache=params[CACHE], driver_in_process=True)
    for phase, round_, phase_rows in phases:
        rows.extend(phase_rows)
        if phase == "upper_bound":
            continue
        accuracies = [r["test_accuracy"] for r in phase_rows if r["test_accuracy"] is not None]
        mean = sum(accuracies) / max(len(accuracies), 1)
        baseline = mean if baseline is None else baseline
        table = swept_columns(rows_to_table(rows), trial_id, swept_values(params))
        write_table(table, join_uri(params[RESULTS], f"{trial_id}.parquet"))
        tune.report({"round": round_, "mean_accuracy": mean, "mean_gain": mean - baseline})
