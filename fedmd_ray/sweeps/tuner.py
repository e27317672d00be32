"""`sweep()`: many FedMD runs as Ray Tune trials, packed with placement groups.

Each trial reserves one bundle for itself (it is the driver) and one per party
actor, with the config's fractional CPUs/GPUs, so Tune packs as many trials as
fit and never oversubscribes. Trials that share their transfer-learning
settings reuse one cached transfer phase (`transfer_cache.py`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import numbers
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.fs as pafs
from ray import tune

from fedmd_ray.actors.backends import check_gpu_memory, host_memory_bytes, preflight
from fedmd_ray.actors.cluster import cluster_totals, ray_session
from fedmd_ray.actors.placement import actor_resources, actor_sizes
from fedmd_ray.actors.portable import Portable
from fedmd_ray.analysis.io import join_uri, load_results, read_bytes_uri, write_bytes_uri, write_table
from fedmd_ray.analysis.summary import format_sweep_summary, percent, points, sweep_summary
from fedmd_ray.config import FedMDConfig, describe_change, differences, origin
from fedmd_ray.config_file import parse_document
from fedmd_ray.errors import ConfigError, TrialsFailed
from fedmd_ray.experiment import prepare
from fedmd_ray.log import LOGGER, SUMMARY, chatty, verbosity
from fedmd_ray.outdir import (
    SPEC_FILE,
    SUMMARY_FILE,
    SWEEP_FILE,
    as_path,
    check_out_dir,
    check_writable_dir,
    claim_out_dir,
)
from fedmd_ray.provenance import environment
from fedmd_ray.sweeps.plan import SweepPlan, plan_sweep
from fedmd_ray.sweeps.space import MAX_GRID_POINTS, check_points, check_space, progress, to_tune_space
from fedmd_ray.sweeps.trainable import (
    BASE,
    CACHE,
    CHATTY,
    MODELS,
    PLUGINS,
    RESULTS,
    concat_trials,
    latest_attempts,
    registered_plugins,
    trainable,
    trial_config,
)


def sweep(
    base_config: FedMDConfig,
    param_space: dict[str, Any],
    *,
    num_samples: int = 1,
    scheduler: str | Any | None = None,
    max_concurrent_trials: int | None = None,
    storage_path: str | None = None,
    resume: bool = False,
    out_dir: str | Path | None = None,
    name: str = "fedmd_sweep",
    max_failures: int = 1,
    transfer_cache: bool = True,
    verbose: bool | None = None,
    callbacks: list[Any] | None = None,
    search_alg: Any | None = None,
) -> pa.Table:
    """Run one FedMD trial per point of `param_space`; return every trial's long table.

    `param_space` maps config fields to a list of values (a grid) or any Ray Tune
    domain (`tune.choice`, `tune.loguniform`, ...), e.g.
    `{"subset_size": [500, 1000, 5000], "digest_epochs": [1, 2]}`. The table has
    the run schema plus `trial_id` and one column per swept field. Every grid
    point is validated (with the data) before Ray starts. `scheduler="asha"`
    stops poor trials early on `mean_accuracy`. `storage_path` (default
    `out_dir/tune`, else `~/ray_results`) may be a local directory or a URI that
    pyarrow understands; `resume=True` continues an interrupted sweep of the same
    `name` without redoing finished trials, and unfinished ones from their last finished
    round (trial checkpoints). With `out_dir`, writes
    `sweep.parquet` and `summary.parquet` (one row per trial, sorted by gain).
    A failed trial (after `max_failures` retries) leaves the others running; once all have
    ended and the tables are written, `TrialsFailed` is raised (its `.table` holds the rows).

    `callbacks` (Tune callbacks: MLflow, W&B, TensorBoard, your own) and `search_alg` (a Tune
    searcher: Optuna, HyperOpt; give it Tune domains, not lists) go to Tune as they are. Trials
    report `round`, `mean_accuracy`, `mean_gain`, `parties_in_gain` and `party_<id>_accuracy`.
    Progress goes to the `fedmd_ray` logger, as for `run` (`verbose`).
    """
    with verbosity(verbose), _quiet_tune():
        return _sweep(
            base_config,
            param_space,
            num_samples,
            scheduler,
            max_concurrent_trials,
            storage_path,
            resume,
            out_dir,
            name,
            max_failures,
            transfer_cache,
            callbacks,
            search_alg,
        )


@contextlib.contextmanager
def _quiet_tune() -> Iterator[None]:
    """Tune's experiment box, TensorBoard hint and its own log of failed trials only at debug level:
    its legacy reporter honours `verbose=0`, the new one prints them regardless, and a failed trial
    is reported once, by `_trial_statuses` (Tune logs its traceback two or three times)."""
    if chatty():
        yield
        return
    tune_logger = logging.getLogger("ray.tune")
    level, new_output = tune_logger.level, "RAY_AIR_NEW_OUTPUT" not in os.environ
    tune_logger.setLevel(logging.CRITICAL)
    if new_output:
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    try:
        yield
    finally:
        tune_logger.setLevel(level)
        if new_output:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)


def _sweep(
    base_config: FedMDConfig,
    param_space: dict[str, Any],
    num_samples: int,
    scheduler: str | Any | None,
    max_concurrent_trials: int | None,
    storage_path: str | None,
    resume: bool,
    out_dir: str | Path | None,
    name: str,
    max_failures: int,
    transfer_cache: bool,
    callbacks: list[Any] | None,
    search_alg: Any | None,
) -> pa.Table:
    trials, configs = _check_request(base_config, param_space, num_samples, max_concurrent_trials, max_failures, name)
    target = None if out_dir is None else check_out_dir(out_dir, replace=True, sweep=True)  # reads only
    storage = _storage(storage_path, target)
    experiment = join_uri(storage, name)
    results_uri = join_uri(experiment, "fedmd_results")
    tune_scheduler = _scheduler(scheduler, configs)
    spec_uri, spec = join_uri(experiment, SPEC_FILE), _spec(base_config, param_space, num_samples, configs)
    _check_resumable(experiment, name, resume, spec_uri, spec)

    with ray_session(base_config):
        base, plan = _fit_trials(base_config, param_space, configs, trials, max_concurrent_trials)
        space = {
            BASE: Portable.wrap(base.to_dict()),
            RESULTS: results_uri,
            MODELS: join_uri(experiment, "fedmd_trials"),
            PLUGINS: Portable.wrap(registered_plugins()),
            CACHE: join_uri(storage, "transfer_cache") if transfer_cache else None,
            CHATTY: chatty(),
            **to_tune_space(param_space),
        }
        placed = tune.with_resources(trainable, resources=lambda params: placement_for(trial_config(params)))
        # Everything is checked: only now is anything written (one sweep per directory, as one run).
        with contextlib.nullcontext() if target is None else claim_out_dir(target, replace=True, sweep=True):
            if resume:
                tuner = tune.Tuner.restore(experiment, trainable=placed, resume_errored=True, param_space=space)
            else:
                write_bytes_uri(spec_uri, json.dumps(spec).encode())
                tune_config = tune.TuneConfig(
                    num_samples=num_samples, scheduler=tune_scheduler, search_alg=search_alg,
                    max_concurrent_trials=plan.max_concurrent, metric="mean_accuracy", mode="max",
                )  # fmt: skip
                run_config = tune.RunConfig(
                    storage_path=storage, name=name, verbose=0,
                    failure_config=tune.FailureConfig(max_failures=max_failures),
                    callbacks=[_TrialProgress(LOGGER.info, trials), *(callbacks or [])],
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                )  # fmt: skip
                tuner = tune.Tuner(placed, param_space=space, tune_config=tune_config, run_config=run_config)
            started = time.perf_counter()
            grid = tuner.fit()
            table, failed, statuses = _gather(grid, experiment, results_uri, trials, max_failures)
            LOGGER.info(f"sweep: {len(grid)} trials in {time.perf_counter() - started:.0f} s")
            _summarize(table, list(param_space), target)
            if failed:
                raise TrialsFailed(_failed_message(failed, statuses), table, failed)
            return table


def _check_request(
    base_config: FedMDConfig,
    param_space: dict[str, Any],
    num_samples: int,
    max_concurrent_trials: int | None,
    max_failures: int,
    name: str,
) -> tuple[int, list[FedMDConfig]]:
    """(number of trials, every grid point's config), each checked as a run checks its config; nothing
    written, no Ray started."""
    if not isinstance(base_config, FedMDConfig) or not isinstance(param_space, dict):
        raise TypeError(
            "sweep(base_config, param_space) takes a FedMDConfig (fedmd_ray.preset(...)) and a dict of field -> "
            f"values, got {type(base_config).__name__} and {type(param_space).__name__}"
        )
    _check_arguments(num_samples, max_concurrent_trials, max_failures, name)
    swept = check_space(base_config, param_space)  # the space's form and size, before any config is built
    trials = num_samples * math.prod(len(values) for values in swept.values())
    if trials > MAX_GRID_POINTS:
        raise ConfigError(
            f"num_samples={num_samples} x {trials // num_samples} grid points make {trials} trials; a "
            f"sweep runs at most {MAX_GRID_POINTS}: lower num_samples or sweep fewer values"
        )
    if num_samples > 1 and len(swept) == len(param_space):
        raise ConfigError(
            f"num_samples={num_samples} would repeat every grid point with the same seed: identical trials. "
            "Sweep the seed instead (--grid seed=0,1,2) or give a field a random Tune domain"
        )
    return trials, check_points(base_config, param_space)


def _fit_trials(
    base_config: FedMDConfig,
    param_space: dict[str, Any],
    configs: list[FedMDConfig],
    trials: int,
    max_concurrent_trials: int | None,
) -> tuple[FedMDConfig, SweepPlan]:
    """The base config with each trial's resources, and how many run at once, once every trial is checked to
    fit the cluster (a trial bigger than the cluster would wait forever; its parties must fit the GPU's memory)."""
    totals = cluster_totals()
    plan = _plan(base_config, configs, trials, totals, max_concurrent_trials)
    base = _explicit_resources(base_config, configs, plan)
    done = progress(len(configs), "trials against the cluster")
    trial_bytes = 0.0
    for i, config in enumerate(configs, 1):
        prepared = prepare(base.replace(**_swept(config, param_space)))
        specs, data = prepared.party_inputs()
        resources, groups = preflight(prepared.setup, specs, data, totals, subject="one trial")
        trial_bytes = max(trial_bytes, host_memory_bytes(prepared.setup, groups, data))
        if resources.gpus > 0:
            check_gpu_memory(prepared.setup, groups, data, resources)
        done(i)
    plan = _plan(base, configs, trials, totals, max_concurrent_trials, trial_bytes)
    LOGGER.info(f"sweep: {plan.describe(trials, totals.get('CPU', 0.0))}")
    return base, plan


def _gather(
    grid: Any, experiment: str, results_uri: str, expected: int, max_failures: int
) -> tuple[pa.Table, list[str], dict[str, str]]:
    """(every trial's rows, the failed trials, each trial's status) after `Tuner.fit`; KeyboardInterrupt
    if trials are unfinished (Tune catches Ctrl-C and returns what it has: not a finished sweep)."""
    saved_trials = tune.ExperimentAnalysis(experiment).trials  # as saved: see `_finished_trials`
    unfinished = expected - _finished_trials(saved_trials)
    if unfinished > 0:
        LOGGER.info(
            f"sweep interrupted with {unfinished} of {expected} trials unfinished; continue it with "
            "--resume (resume=True)"
        )
        raise KeyboardInterrupt
    statuses = _trial_statuses(grid, saved_trials, max_failures)
    failed = sorted(trial for trial, status in statuses.items() if status == "failed")
    table = _collect(results_uri, statuses)
    if table is None:
        raise (
            TrialsFailed(_failed_message(failed, statuses), None, failed)
            if failed
            else ConfigError(f"the sweep produced no results in {results_uri}")
        )
    return table, failed, statuses


def _summarize(table: pa.Table, params: list[str], target: Path | None) -> None:
    """The summary on the result output (`log.SUMMARY`), and sweep.parquet and summary.parquet in `target`."""
    summary = sweep_summary(table, params)
    SUMMARY.info(format_sweep_summary(summary))
    if target is not None:
        write_table(table, target / SWEEP_FILE)
        write_table(summary, target / SUMMARY_FILE)
        SUMMARY.info(f"results: {target / SWEEP_FILE}")


def _failed_message(failed: list[str], statuses: dict[str, str]) -> str:
    return (
        f"{len(failed)} of {len(statuses)} trials failed ({', '.join(failed)}; the warnings above say why); the "
        "tables hold every trial's rounds so far (trial_status). After a passing cause (a lost node, a timeout), "
        "continue them: the same sweep with --resume (resume=True). A fixed plug-in makes a new sweep: give it "
        "another output directory"
    )


def _check_arguments(num_samples: Any, max_concurrent_trials: Any, max_failures: Any, name: Any) -> None:
    """`sweep()`'s own arguments, before the space: Python callers pass anything."""

    def count(value: Any) -> bool:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)

    if not count(num_samples) or not 1 <= num_samples <= MAX_GRID_POINTS:
        raise ConfigError(f"num_samples={num_samples!r} is not allowed: must be an integer in [1, {MAX_GRID_POINTS}]")
    if max_concurrent_trials is not None and (not count(max_concurrent_trials) or max_concurrent_trials < 1):
        raise ConfigError(f"max_concurrent_trials={max_concurrent_trials!r} is not allowed: must be >= 1 or None")
    if not count(max_failures) or not -1 <= max_failures <= 1000:
        raise ConfigError(
            f"max_failures={max_failures!r} is not allowed: must be an integer in [-1, 1000] (-1: retry without end)"
        )
    if (
        not isinstance(name, str)
        or not name
        or name in (".", "..")
        or not name.isprintable()
        or any(c in name for c in "/\\")
    ):
        raise ConfigError(
            f"name={name!r} is not allowed: the sweep's name is one directory name (no '/', not '.' or '..')"
        )


STORAGE_PROBE_S = 30.0  # a remote storage must answer one request within this (pyarrow retries for ~100 s)


def _storage(storage_path: str | None, target: Path | None) -> str:
    """Where Tune keeps the sweep: `storage_path` (a directory or a pyarrow URI), else the output
    directory's `tune/`, else ~/ray_results; ConfigError for a path no sweep can write, an unknown URI,
    or a remote storage that does not answer (`_probe_storage`)."""
    if storage_path is not None and "://" in storage_path:
        try:
            pafs.FileSystem.from_uri(storage_path)
        except Exception as exc:
            raise ConfigError(f"storage_path={storage_path!r}: {exc}") from None
        _probe_storage(storage_path)
        return storage_path
    local = (
        as_path(storage_path, "storage_path")
        if storage_path
        else (target / "tune" if target else as_path("~/ray_results", "storage_path"))
    )
    return str(check_writable_dir(local.resolve(), "storage_path"))


def _probe_storage(uri: str) -> None:
    """One read of `uri` (what is there), within STORAGE_PROBE_S: an endpoint that is down or silent is one
    message before Ray starts, not pyarrow's traceback minutes later. Reads only."""
    outcome: list[BaseException | None] = []

    def probe() -> None:
        try:
            fs, path = pafs.FileSystem.from_uri(uri)
            fs.get_file_info(path)
        except Exception as exc:  # noqa: BLE001  any filesystem's error: OSError, ArrowException, a driver's own
            outcome.append(exc)
        else:
            outcome.append(None)

    worker = threading.Thread(target=probe, name="fedmd-ray-storage-probe", daemon=True)  # may outlive the answer
    worker.start()
    worker.join(STORAGE_PROBE_S)
    if not outcome:
        raise ConfigError(
            f"storage_path={uri!r} did not answer within {STORAGE_PROBE_S:g} s; check the address, "
            "the network and the credentials, or use a local directory"
        )
    if outcome[0] is not None:
        raise ConfigError(
            f"storage_path={uri!r} cannot be read: {_one_line(outcome[0])}; check the address, the "
            "network and the credentials, or use a local directory"
        )


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def _check_resumable(experiment: str, name: str, resume: bool, spec_uri: str, spec: dict[str, Any]) -> None:
    """`resume` needs the same sweep saved at `experiment`; a new sweep needs none there (reads only)."""
    try:
        if resume:
            if not tune.Tuner.can_restore(experiment):
                raise ConfigError(f"resume: no sweep named '{name}' to resume at {experiment}")
            saved, exists = read_bytes_uri(spec_uri), True
        else:
            saved, exists = None, read_bytes_uri(join_uri(experiment, "tuner.pkl")) is not None
    except (OSError, pa.ArrowException) as exc:  # a storage that went away since `_probe_storage`
        raise ConfigError(f"the sweep's storage {experiment!r} cannot be read: {_one_line(exc)}") from None
    if resume:
        _check_same_sweep(saved, spec, experiment)
    elif exists:
        raise ConfigError(
            f"a sweep named '{name}' already exists at {experiment}; pass resume=True (--resume) to "
            "continue it, or choose another name or output directory"
        )


def _finished_trials(saved_trials: list[Any]) -> int:
    """Trials of the saved experiment that ended. Read back from storage: in memory, Tune reports
    the trials it stopped on Ctrl-C as terminated, while it saves them as pending; and it creates
    trials lazily, so those it never started are not in either."""
    return sum(trial.status in ("TERMINATED", "ERROR") for trial in saved_trials)


def _spec(
    base: FedMDConfig, param_space: dict[str, Any], num_samples: int, points: list[FedMDConfig]
) -> dict[str, Any]:
    """What a resumed sweep must repeat, as JSON: the base config's result-changing fields, the
    space (Tune domains by kind and bounds), the sample count, and each grid point's identity (a
    plug-in's code and a data file's contents, which the same names can hide)."""

    def describe(values: Any) -> Any:
        if isinstance(values, (list, tuple)):
            return [describe(v) for v in values]
        if isinstance(values, dict):  # tune.grid_search(...)
            return {k: describe(v) for k, v in values.items()}
        if values is None or isinstance(values, (bool, int, float, str)):
            return values
        return {
            "domain": type(values).__name__,
            **{a: str(getattr(values, a)) for a in ("lower", "upper", "categories") if hasattr(values, a)},
        }

    spec = {
        "base": {k: v for k, v in base.to_json().items() if k in base.identity()},
        "preset": origin(base),  # for the plots' titles; not compared on resume
        "space": {k: describe(v) for k, v in param_space.items()},
        "num_samples": num_samples,
        "identities": [point.identity() for point in points],
        "environment": environment(),  # not compared on resume: it tells runs that should agree apart
    }
    return dict(json.loads(json.dumps(spec)))  # as it reads back: tuples become lists


def _check_same_sweep(saved: bytes | None, spec: dict[str, Any], experiment: str) -> None:
    """Tune would resume the saved trials whatever is asked now: refuse a different sweep."""
    if saved is None:  # a sweep from before this file existed
        return
    before = parse_document(saved, f"the sweep's {SPEC_FILE} at {experiment}", "json")  # storage is input too
    if not isinstance(before, dict) or not isinstance(before.get("base"), dict):
        raise ConfigError(
            f"the sweep's {SPEC_FILE} at {experiment} is not a fedmd_ray sweep spec; start a new sweep "
            "in another directory"
        )
    differ = differences(before["base"], spec["base"], before["base"], spec["base"], FedMDConfig().to_json())
    differ += [
        f"{part} (saved {before[part]!r}, given {spec[part]!r})"
        for part in ("space", "num_samples")
        if before.get(part) != spec[part]
    ]
    if not differ and isinstance(before.get("identities"), list):  # same names: did what they name change?
        changed = {
            name: given[name]
            for saved, given in zip(before["identities"], spec["identities"])
            if isinstance(saved, dict)
            for name in given
            if name in saved and saved[name] != given[name]
        }
        values = {**spec["base"], **spec["space"]}
        differ += [describe_change(name, values.get(name), values.get(name)) for name in sorted(changed)]
    if differ:
        raise ConfigError(
            f"cannot resume the sweep at {experiment} with different settings: {'; '.join(differ)}. Resume it as it "
            "was started, or start a new sweep in another directory"
        )


def placement_for(config: FedMDConfig) -> Any:
    """One bundle for the trial (the driver) and one per party actor, packed; a trial
    whose parties fit one host holds them itself, in one bundle."""
    res = actor_resources(config, {})  # cpus_per_party is explicit in sweeps
    gpu = {"GPU": res.gpus} if res.gpus else {}
    if res.count == 1:
        return tune.PlacementGroupFactory([{"CPU": config.driver_cpus + res.cpus, **gpu}])
    party = {"CPU": res.cpus, **gpu}
    return tune.PlacementGroupFactory([{"CPU": config.driver_cpus}] + [party] * res.count, strategy="PACK")


def _swept(config: FedMDConfig, param_space: dict[str, Any]) -> dict[str, Any]:
    return {k: getattr(config, k) for k in param_space if k in config.to_dict()}


def _plan(
    base: FedMDConfig,
    configs: list[FedMDConfig],
    trials: int,
    totals: dict[str, float],
    concurrent: int | None,
    trial_bytes: float | None = None,
) -> SweepPlan:
    """`sweeps.plan.plan_sweep` for this sweep's trials on this cluster."""
    return plan_sweep(
        trials=trials,
        parties=max(c.n_parties for c in configs),
        cpus=totals.get("CPU", 0.0),
        gpus=totals.get("GPU", 0.0),
        driver_cpus=base.driver_cpus,
        cpus_per_party=base.cpus_per_party,
        gpus_per_party=max(c.gpus_per_party for c in configs),
        max_concurrent=concurrent,
        memory=totals.get("memory"),
        trial_bytes=trial_bytes,
    )


def _explicit_resources(base: FedMDConfig, configs: list[FedMDConfig], plan: SweepPlan) -> FedMDConfig:
    """Placement groups need numbers: `cpus_per_party=None` becomes the plan's share (`sweeps.plan`),
    rounded to what every actor size turns into a quantity Ray accepts."""
    if base.cpus_per_party is not None:
        return base
    return base.replace(cpus_per_party=_whole_actors(plan.cpus_per_party, {_largest_actor(c) for c in configs}))


def _largest_actor(config: FedMDConfig) -> int:
    """Parties on the fullest actor of a trial with a fixed `parties_per_actor` (else 1: it is unused)."""
    return 1 if config.parties_per_actor is None else actor_sizes(config, {})[0]


def _whole_actors(share: float, sizes: set[int]) -> float:
    """The largest per-party share <= `share` that every actor size turns into a quantity Ray
    accepts (a fraction below 1 or a whole number): 0.65 x 3 parties = 1.95 CPUs is neither."""
    changed = True
    while changed:
        changed = False
        for size in sizes:
            total = share * size
            if total > 1 and abs(total - round(total)) > 1e-9:
                share, changed = math.floor(total) / size, True
    return share


def _scheduler(scheduler: str | Any | None, configs: list[FedMDConfig]) -> Any:
    if scheduler is None or scheduler == "fifo":
        return None
    if scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        # one report per round plus round 0: training_iteration runs 1..rounds+1
        return ASHAScheduler(
            time_attr="training_iteration", max_t=max(c.rounds for c in configs) + 1, grace_period=1, reduction_factor=2
        )
    if isinstance(scheduler, str):
        raise ConfigError(f"scheduler='{scheduler}' is not known; use 'asha', 'fifo' or a Ray Tune scheduler")
    return scheduler


def _trial_statuses(grid: Any, saved_trials: list[Any], max_failures: int) -> dict[str, str]:
    """Each trial's `trial_status`: `finished` (its last round), `stopped` (a scheduler stopped it
    early) or `failed` (it raised, after `max_failures` retries; logged as a warning with the cause
    and where Tune kept the traceback)."""
    # A trial that failed before its first report has no metrics: its id comes from its directory.
    ids = {str(trial.path).rstrip("/").rsplit("/", 1)[-1]: trial.trial_id for trial in saved_trials}
    statuses = {}
    for result in grid:
        directory = result.path.rstrip("/").rsplit("/", 1)[-1]
        trial_id = str(result.metrics.get("trial_id") or ids.get(directory, directory))
        reached = result.metrics.get("round")
        if result.error is not None:
            statuses[trial_id] = "failed"
            LOGGER.warning(
                "trial %s %s failed (after %d retries) at round %s: %s; traceback: %s",
                trial_id,
                _params(result.config),
                max_failures,
                "0" if reached is None else reached + 1,
                short_error(result.error),
                join_uri(result.path, "error.txt"),
            )
        else:
            statuses[trial_id] = (
                "stopped" if reached is not None and reached < trial_config(result.config).rounds else "finished"
            )
    return statuses


def short_error(error: BaseException) -> str:
    """The exception a trial raised, in one line: Ray wraps it (with the remote traceback) as `cause`."""
    cause = getattr(error, "cause", None) or error
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}"


def _collect(results_uri: str, statuses: dict[str, str]) -> pa.Table | None:
    """Concatenate the trials' tables, each with its `trial_status` (None: no trial wrote one): per
    trial, its latest attempt's file (files of other trials, and those of attempts a resumed sweep
    replaced, are ignored)."""
    latest = latest_attempts(results_uri)
    tables = []
    for trial_id in sorted(set(latest) & set(statuses)):
        table = load_results(latest[trial_id])
        tables.append(table.append_column("trial_status", pa.array([statuses[trial_id]] * table.num_rows)))
    return concat_trials(tables) if tables else None


class _TrialProgress(tune.Callback):
    """Prints trials running/finished (of all `expected`: Tune creates trials lazily) and the best gain
    among every finished trial (those a resumed sweep finished before included)."""

    def __init__(self, log: Any, expected: int) -> None:
        self.log = log
        self.expected = expected
        self.started = time.perf_counter()

    def setup(self, *args: Any, **info: Any) -> None:
        """The clock starts with each `fit()`: a resumed sweep unpickles this callback from the run that
        started it, whose `perf_counter` means nothing in this process."""
        self.started = time.perf_counter()

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.log(self._status(trials, trial, "ERROR") + f" | failed {trial.trial_id} {_params(trial.config)}")

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.log(self._status(trials, trial, "RUNNING") + f" | started {trial.trial_id} {_params(trial.config)}")

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        result = trial.last_result or {}
        gain = result.get("mean_gain", float("nan"))
        finished = [t for t in trials if t.status == "TERMINATED" or t.trial_id == trial.trial_id]
        gains = [((t.last_result or {}).get("mean_gain", float("nan")), t) for t in finished]
        best_gain, best = max(((g, t) for g, t in gains if g == g), key=lambda pair: pair[0], default=(gain, trial))
        self.log(
            self._status(trials, trial, "TERMINATED") + f" | finished {trial.trial_id}: round {result.get('round')} "
            f"mean accuracy {percent(result.get('mean_accuracy'))}, gain {points(gain)} | best so far "
            f"{points(best_gain)} ({best.trial_id} {_params(best.config)})"
        )

    def _status(self, trials: list[Any], current: Any, status: str) -> str:
        """Counts with `current` in `status`: Tune calls back before it updates the trial's own."""
        statuses = [status if t.trial_id == current.trial_id else t.status for t in trials]
        done = sum(s in ("TERMINATED", "ERROR") for s in statuses)
        running = statuses.count("RUNNING")
        total = max(self.expected, len(trials))
        return f"[{time.perf_counter() - self.started:7.1f}s] trials: {running} running, {done}/{total} done"


def _params(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if not k.startswith("_")}
