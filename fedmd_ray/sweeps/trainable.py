"""The Tune trainable: one trial = one FedMD run, reporting after every round.

Reported metrics (for schedulers such as ASHA and for Tune's loggers and callbacks):
`round`, `mean_accuracy` (mean test accuracy over the parties that answered; NaN when
none did, never 0.0), `mean_gain` (its change since round 0 over the parties present in
both, `parties_in_gain` of them) and `party_<id>_accuracy` for every party. The trial's
long table is written to the sweep's results directory before every report, so a
trial that a scheduler stops keeps the rounds it ran.

Every report carries a Tune checkpoint holding the run's own checkpoint format
(`checkpoint.pt`: rows, every party's state, the strategy's state), so a retried trial,
or a sweep resumed after its process was killed, continues from the last finished round
exactly as `run(..., resume=True)` does, with the table an uninterrupted trial writes.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from fedmd_ray.actors.backends import DriverHandle
from fedmd_ray.actors.messages import PartyState
from fedmd_ray.actors.portable import Portable
from fedmd_ray.analysis.io import join_uri, list_uri, load_results, write_bytes_uri, write_table
from fedmd_ray.analysis.metrics import round_metrics
from fedmd_ray.analysis.schema import rows_to_table
from fedmd_ray.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from fedmd_ray.config import FedMDConfig
from fedmd_ray.data.resolve import SOURCES
from fedmd_ray.errors import ConfigError
from fedmd_ray.experiment import Experiment, prepare
from fedmd_ray.model_registry import MODELS as MODEL_REGISTRY
from fedmd_ray.party_models import describe_models, model_files
from fedmd_ray.phases import COLLABORATE, TRANSFER, UPPER_BOUND
from fedmd_ray.plugins import Registry, describe
from fedmd_ray.runner import open_run, run_phases
from fedmd_ray.strategy import STRATEGIES, StrategyState

BASE = "_base"  # the base config (dict) inside Tune's param space
RESULTS = "_results"  # directory/URI for the trials' tables
CACHE = "_transfer_cache"  # directory/URI of the transfer cache, or None
PLUGINS = "_plugins"  # what the user registered in the sweep's process (registries are per process)
MODELS = "_models"  # directory/URI under which a trial keeps its parties' models, if `save_models` asks
CHATTY = "_chatty"  # whether Ray's own INFO lines (e.g. every checkpoint Tune stores) should show
_REGISTRIES: dict[str, Registry[Any]] = {"models": MODEL_REGISTRY, "sources": SOURCES, "strategies": STRATEGIES}


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


def concat_trials(tables: list[pa.Table]) -> pa.Table:
    """The trials' tables as one. A swept field whose values are numbers in some trials and words in others
    (`--grid revisit_shift=1,auto`) becomes a text column; one swept over numbers only stays numeric."""
    kinds: dict[str, set[bool]] = {}
    for table in tables:
        for field in table.schema:
            if not pa.types.is_null(field.type):
                kinds.setdefault(field.name, set()).add(pa.types.is_string(field.type))
    mixed = {name for name, text in kinds.items() if len(text) > 1}
    if mixed:
        tables = [
            t.cast(pa.schema([pa.field(f.name, pa.string()) if f.name in mixed else f for f in t.schema]))
            for t in tables
        ]
    return pa.concat_tables(tables, promote_options="default")


def trainable(params: dict[str, Any]) -> None:
    from ray import tune

    if not params.get(CHATTY):
        logging.getLogger("ray.train").setLevel(logging.WARNING)  # "Checkpoint successfully created" per round
    config = trial_config(params)
    trial_id = tune.get_context().get_trial_id()
    experiment = prepare(config)
    resume = _restored(tune.get_checkpoint(), experiment.run_id)
    rows: list[dict[str, Any]] = list(resume.rows) if resume else []
    # One file per attempt, named by when it started: the process of an attempt that a killed sweep
    # left behind may still write once after the sweep resumed, and must not replace the new table.
    results_uri = join_uri(params[RESULTS], f"{trial_id}.{time.time_ns()}.parquet")

    def report(round_: int, states: dict[int, PartyState], strategy_state: StrategyState) -> None:
        with tempfile.TemporaryDirectory(prefix="fedmd-trial-") as directory:
            save_checkpoint(Path(directory), Checkpoint(experiment.run_id, round_, list(rows), states, strategy_state))
            tune.report(round_metrics(rows, round_), checkpoint=tune.Checkpoint.from_directory(directory))

    if resume is not None and resume.round >= config.rounds:  # restored after its last round: nothing to redo
        report(resume.round, resume.states, resume.strategy_state)  # its table was written before that checkpoint
        return
    finished = _finished_rows(params[RESULTS], trial_id, config)
    if finished is not None:  # Tune's state lagged the trial's end (killed in between): its table stands
        tune.report(round_metrics(finished, config.rounds))
        return
    with open_run(experiment, experiment.run_id, driver_in_process=True, save_states=True) as driver:
        for phase, round_, phase_rows in run_phases(
            driver, config, transfer_cache=params[CACHE], resume=resume, on_checkpoint=report
        ):
            rows.extend(phase_rows)
            write_table(swept_columns(rows_to_table(rows), trial_id, swept_values(params)), results_uri)
            if phase != UPPER_BOUND:
                _keep_models(driver, experiment, join_uri(params[MODELS], trial_id), round_)


def _keep_models(driver: DriverHandle, experiment: Experiment, trial_uri: str, round_: int) -> None:
    """A trial's parties' models, only when `save_models` asks (a sweep's trials keep none by default: ten
    parties' models per trial add up over a grid), under `<sweep>/fedmd_trials/<trial_id>/models/`, before
    the round's checkpoint; `load_party_model` reads them from `<sweep>/fedmd_trials/<trial_id>`."""
    keep, last = experiment.config.save_models or "never", round_ == experiment.config.rounds
    if keep == "never" or (keep == "end" and not last):
        return
    weights = driver.export_models()
    about = describe_models(experiment, experiment.run_id, round_)
    files = {
        **(model_files(weights, about, round_) if keep == "every_round" else {}),
        **(model_files(weights, about) if last else {}),
    }
    for name, payload in files.items():
        write_bytes_uri(join_uri(trial_uri, name), payload)


def attempt_of(name: str) -> tuple[str, int]:
    """(trial id, attempt start in ns) of a results file name `<trial_id>.<ns>.parquet`."""
    stem = name.removesuffix(".parquet")
    trial_id, _, attempt = stem.rpartition(".")
    return (trial_id, int(attempt)) if attempt.isdigit() else (stem, 0)


def latest_attempts(results_uri: str) -> dict[str, str]:
    """Each trial's latest results file (trial id -> URI): the attempts a resumed sweep replaced are ignored."""
    latest: dict[str, tuple[int, str]] = {}
    for uri in list_uri(results_uri, ".parquet"):
        trial_id, attempt = attempt_of(uri.rsplit("/", 1)[-1])
        if attempt >= latest.get(trial_id, (-1, ""))[0]:
            latest[trial_id] = (attempt, uri)
    return {trial_id: uri for trial_id, (_, uri) in latest.items()}


def _finished_rows(results_uri: str, trial_id: str, config: FedMDConfig) -> list[dict[str, Any]] | None:
    """The rows of the trial's latest table if it holds the whole run, else None. Tune saves its
    experiment state on a timer: a sweep killed after a trial ended but before that save restores
    the trial from an earlier checkpoint, and it would run its last rounds again."""
    uri = latest_attempts(results_uri).get(trial_id)
    if uri is None:
        return None
    rows = load_results(uri).to_pylist()
    last = (
        (COLLABORATE, config.rounds)
        if config.rounds
        else ((UPPER_BOUND, None) if config.upper_bound else (TRANSFER, 0))
    )
    return rows if any((r["phase"], r["round"]) == last for r in rows) else None


def _restored(checkpoint: Any, run_id: str) -> Checkpoint | None:
    """The run checkpoint inside a Tune checkpoint (None: the trial starts from the beginning)."""
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as directory:
        saved = load_checkpoint(Path(directory))
    if saved is not None and saved.fingerprint != run_id:
        raise ConfigError(f"the trial's checkpoint belongs to run {saved.fingerprint}, not to {run_id}")
    return saved
