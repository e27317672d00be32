"""`run()`: one FedMD experiment, end to end (Li & Wang, arXiv 1910.03581).

Phases, in order: transfer learning (round 0, with the upper bound computed
from the same pretrained models), then rounds 1..R of
communicate -> aggregate -> distribute -> digest -> revisit -> evaluate.
The data is loaded and checked before Ray starts; the table is written to
`out_dir` after every phase, so a crash keeps what finished.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import pyarrow as pa

from fedmd_ray.actors.backends import DriverHandle, open_driver
from fedmd_ray.actors.driver import Snapshot
from fedmd_ray.actors.messages import PartyProgress, PartyState
from fedmd_ray.analysis.io import write_table
from fedmd_ray.analysis.metrics import gain, mean_accuracy, round_metrics, transfer_health
from fedmd_ray.analysis.schema import rows_to_table
from fedmd_ray.analysis.summary import format_run, percent, points
from fedmd_ray.callbacks import Callback, call_end, call_round
from fedmd_ray.checkpoint import Checkpoint, load_checkpoint
from fedmd_ray.config import FedMDConfig, absent_values, differences, origin
from fedmd_ray.errors import ConfigError, NoPartyLeft, PartyFailure
from fedmd_ray.experiment import Experiment, prepare
from fedmd_ray.log import LOGGER, SUMMARY, progress_bar, verbosity
from fedmd_ray.outdir import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    MODELS_DIR,
    RESULTS_FILE,
    as_path,
    check_out_dir,
    claim_out_dir,
)
from fedmd_ray.party_models import describe_models
from fedmd_ray.phases import COLLABORATE, TRANSFER, UPPER_BOUND
from fedmd_ray.plugins import describe
from fedmd_ray.provenance import environment
from fedmd_ray.run_files import NoFiles, RunFiles, open_files
from fedmd_ray.strategy import StrategyState

Row = dict[str, Any]
Phase = tuple[str, int, list[Row]]  # (phase, round, rows of that phase)
MAX_LISTED_PARTIES = 12  # progress lines list every party up to this many


def run(
    config: FedMDConfig,
    out_dir: str | os.PathLike[str] | None = None,
    *,
    overwrite: bool = False,
    resume: bool = False,
    verbose: bool | None = None,
    callbacks: Sequence[Callback] = (),
) -> pa.Table:
    """Run FedMD once and return the long result table (schema: `analysis.schema`).

    With `out_dir` (or `config.out_dir`) it also writes `config.json`, `results.parquet` and
    `checkpoint.pt` there, after transfer learning and after every round, and each party's model
    (`party_models`, `save_models`); a directory holding another run's results is refused unless
    `overwrite=True`. `resume=True` continues the run in `out_dir` from its last finished round (the
    config must match the saved one in every field that changes results). Uses the running Ray if
    there is one (and leaves it up), else attaches to `config.address`/`RAY_ADDRESS`, else starts a
    local Ray and stops it afterwards.

    Check everything, then touch the disk: the config, the output directory, the data, every
    plug-in and the cluster are checked before any file is created, replaced or removed; a refusal
    (ConfigError, DataError, ResourceError; TypeError for arguments of the wrong type) leaves the
    disk as it was (docs/failures.md).

    Progress (one line per phase, a bar on a terminal) goes to stderr through the `fedmd_ray`
    logger: shown by default, as Tune and Lightning do, unless you configured that logger or the
    root logger yourself; `verbose=False` (or the logger at WARNING) keeps warnings only.
    `callbacks` receive every round's metrics (`fedmd_ray.callbacks`: TensorBoard, MLflow, yours).
    """
    with verbosity(verbose), _party_traceback_logged(), contextlib.ExitStack() as stack:
        start = _start(config, out_dir, overwrite, resume)  # every check: nothing written, no Ray started
        if isinstance(start, pa.Table):  # a resumed run that had finished: its table
            return start
        log, checkpoint, watchers = start.progress, start.checkpoint, list(callbacks)
        stack.callback(log.close)  # the progress bar, whatever happens
        rows: list[Row] = list(checkpoint.rows) if checkpoint else []
        with open_run(start.experiment, start.run_id, save_states=start.target is not None) as driver:
            log.placement(driver.describe(), resumed_after=None if checkpoint is None else checkpoint.round)
            with open_files(start.target, _header(start.config, start.run_id), checkpoint, overwrite, resume) as files:
                for phase, round_, phase_rows in run_phases(
                    driver,
                    start.config,
                    resume=checkpoint,
                    on_checkpoint=files.checkpointer(start.run_id, rows),
                    on_progress=log.parties_done,
                ):
                    rows.extend(phase_rows)
                    log.phase(phase, round_, start.config.rounds, phase_rows)
                    files.phase(rows)
                    if phase != UPPER_BOUND:
                        _keep_models(start, driver, files, round_)  # before the round's checkpoint
                        call_round(watchers, round_metrics(rows, round_))
        log.close()
        table = _summary(rows, start)
        call_end(watchers, table)
        return table


def _keep_models(start: _Start, driver: DriverHandle, files: RunFiles | NoFiles, round_: int) -> None:
    """After `round_`: every party's model if the run keeps every round's, and the last round's as the run's
    models (written before that round's checkpoint: a run that stops after it has them)."""
    keep, last = start.keep_models, round_ == start.config.rounds
    if keep == "every_round" or (keep == "end" and last):
        weights = driver.export_models()
        if keep == "every_round":
            files.models(weights, start.about(round_), round_)
        if last:
            files.models(weights, start.about(round_), None)


@dataclass(frozen=True)
class _Start:
    """A run, checked and ready to start (`_start`): what `run` needs for the loop."""

    config: FedMDConfig  # out_dir resolved
    target: Path | None
    checkpoint: Checkpoint | None
    progress: _Progress
    experiment: Experiment
    run_id: str

    @property
    def keep_models(self) -> str:
        """`save_models` of a run: "end" unless set (nothing without an output directory)."""
        return "never" if self.target is None else self.config.save_models or "end"

    def about(self, round_: int) -> dict[int, dict[str, Any]]:
        return describe_models(self.experiment, self.run_id, round_)


def _start(
    config: FedMDConfig, out_dir: str | os.PathLike[str] | None, overwrite: bool, resume: bool
) -> _Start | pa.Table:
    """Everything checked before anything starts: the arguments, the output directory, the checkpoint to
    resume, the data and every plug-in (`prepare`). A resumed run that had finished: its table (no Ray)."""
    if not isinstance(config, FedMDConfig):
        raise TypeError(
            f"run() takes a FedMDConfig (fedmd_ray.preset(...) or FedMDConfig(...)), got {type(config).__name__}"
        )
    if out_dir is not None:
        config = config.replace(out_dir=str(as_path(out_dir, "out_dir")))
    target = None if config.out_dir is None else check_out_dir(config.out_dir, replace=overwrite, resume=resume)
    if target is not None:
        config = config.replace(out_dir=str(target))  # the directory the path names, links and '..' resolved
    checkpoint = _resume_point(config, target) if resume else None
    log = _Progress()
    if checkpoint is not None and checkpoint.round >= config.rounds and target is not None:
        return _finished(checkpoint, target, log, len(config.private_classes))  # nothing left to run
    experiment = prepare(config)
    log.header(experiment)
    LOGGER.debug(
        "run %s (%s); models batched as one computation: %s; output %s",
        experiment.run_id,
        origin(config),
        ", ".join(sorted(experiment.batched)) or "none",
        target or "none",
    )
    if checkpoint is not None:
        log.line(f"resuming {target} after round {checkpoint.round} ({len(checkpoint.rows)} rows kept)")
        log.baseline_rows = [r for r in checkpoint.rows if r["phase"] == TRANSFER]  # "(+x vs round 0)" goes on
    run_id = checkpoint.fingerprint if checkpoint else experiment.run_id
    return _Start(config, target, checkpoint, log, experiment, run_id)


@contextlib.contextmanager
def _party_traceback_logged() -> Iterator[None]:
    """A `PartyFailure` that stops the run brings the party's traceback: logged here, once (the remote
    driver's own log of it may be lost when the process stops right after)."""
    try:
        yield
    except PartyFailure as exc:
        if exc.detail:
            LOGGER.warning("%s", exc.detail.rstrip())
        raise


def _summary(rows: list[Row], start: _Start) -> pa.Table:
    """The run's table, and its summary in the progress output."""
    table = rows_to_table(rows)
    SUMMARY.info(format_run(table, len(start.config.private_classes)))
    if start.target is not None:
        if start.keep_models != "never":
            SUMMARY.info(f"party models: {start.target / MODELS_DIR} (fedmd_ray.load_party_model(DIR, party))")
        SUMMARY.info(f"results: {start.target / RESULTS_FILE}")
    return table


def _header(config: FedMDConfig, run_id: str) -> dict[str, Any]:
    """What `config.json` holds: the config as it ran (the models resolved: not () for the default),
    its identity, the run id and the environment."""
    resolved = config.replace(models=config.party_models)
    return {
        "config": resolved.to_json(),
        "preset": origin(config),
        "identity": config.identity(),
        "fingerprint": run_id,
        **environment(),
    }


def _finished(checkpoint: Checkpoint, target: Path, log: _Progress, private_classes: int) -> pa.Table:
    """A resumed run that had finished: its table, written again (it may have been deleted)."""
    table = rows_to_table(checkpoint.rows)
    log.line(f"{target} finished all its rounds already: nothing to resume")
    with claim_out_dir(target, resume=True):
        write_table(table, target / RESULTS_FILE)
    SUMMARY.info(format_run(table, private_classes))
    SUMMARY.info(f"results: {target / RESULTS_FILE}")
    return table


@contextlib.contextmanager
def open_run(
    experiment: Experiment, run_id: str, *, driver_in_process: bool = False, save_states: bool = True
) -> Iterator[DriverHandle]:
    """The run's driver with its parties started (Ray started or attached, the cluster checked)."""
    specs, data = experiment.party_inputs()
    with open_driver(
        experiment.setup, specs, data, run_id, driver_in_process=driver_in_process, save_states=save_states
    ) as driver:
        yield driver


def run_phases(
    driver: DriverHandle,
    config: FedMDConfig,
    *,
    transfer_cache: str | None = None,
    resume: Checkpoint | None = None,
    on_checkpoint: Callable[[int, dict[int, PartyState], StrategyState], None] | None = None,
    on_progress: Callable[[list[PartyProgress]], None] | None = None,
) -> Iterator[Phase]:
    """Yield each phase's rows as it finishes: transfer (+ upper bound), then every round.

    The single round loop; `run()` prints and saves around it, a Tune trial
    reports from it. `transfer_cache` is a directory or URI of transfer-learned
    parties to reuse (see `transfer_cache.py`). With `resume`, the parties and the
    strategy get the checkpoint's states and the loop starts after its round. After
    each finished round (and once the caller has taken its rows), `on_checkpoint`
    gets the round, every party's state (fetched here: a copy outlives the node that
    saved it) and the strategy's state. `on_progress` hears of parties as they finish
    transfer learning.
    """
    if resume is not None:
        driver.import_states(resume.states, resume.strategy_state)
    else:
        rows = driver.transfer_learn(transfer_cache, on_progress)
        yield TRANSFER, 0, [r for r in rows if r["phase"] == TRANSFER]
        if config.upper_bound:
            yield UPPER_BOUND, 0, [r for r in rows if r["phase"] == UPPER_BOUND]  # rows without a round
        _check_parties_left(rows)
        if on_checkpoint is not None:
            on_checkpoint(0, *_fetched(driver.export_states()))
    for round_ in range((resume.round if resume else 0) + 1, config.rounds + 1):
        rows = driver.run_round(round_)
        yield COLLABORATE, round_, rows
        _check_parties_left(rows)
        if on_checkpoint is not None:
            on_checkpoint(round_, *_fetched(driver.export_states()))


def iterate_phases(
    experiment: Experiment,
    *,
    on_start: Callable[[list[dict[str, Any]]], None] | None = None,
    transfer_cache: str | None = None,
    driver_in_process: bool = False,
    resume: Checkpoint | None = None,
    on_checkpoint: Callable[[int, dict[int, PartyState], StrategyState], None] | None = None,
) -> Iterator[Phase]:
    """`open_run` and `run_phases` in one: what a Tune trial and the tests iterate."""
    with open_run(
        experiment, experiment.run_id, driver_in_process=driver_in_process, save_states=on_checkpoint is not None
    ) as driver:
        if on_start is not None:
            on_start(driver.describe())
        yield from run_phases(
            driver, experiment.config, transfer_cache=transfer_cache, resume=resume, on_checkpoint=on_checkpoint
        )


def _fetched(snapshot: Snapshot) -> tuple[dict[int, PartyState], StrategyState]:
    return snapshot.parties.resolve(), snapshot.strategy


def _check_parties_left(rows: list[Row]) -> None:
    """Stop once every party is dropped (after the caller has kept the phase's rows): the
    remaining rounds could only add empty rows, and a run with no party must not look finished."""
    if rows and all(r["status"] == "dropped" for r in rows):
        raise NoPartyLeft(
            "every party failed and was dropped (the warnings above say why); the results so far are kept"
        )


def _resume_point(config: FedMDConfig, target: Path | None) -> Checkpoint:
    """The checkpoint to continue from; ConfigError when there is none or the config differs."""
    if target is None:
        raise ConfigError("resume needs the run's directory: pass out_dir (fedmd-ray run --resume DIR)")
    saved, saved_identity, saved_run = _saved_run(target)
    given = config.to_json()
    differ = differences(saved_identity, config.identity(), saved, given, FedMDConfig().identity())
    if differ:
        raise ConfigError(
            f"cannot resume {config.out_dir!r} with a different config: {'; '.join(differ)}. Resume with the "
            "saved config (fedmd-ray run --resume DIR reads it) or start a new run in another directory"
        )
    checkpoint = load_checkpoint(target)
    if checkpoint is None and (target / RESULTS_FILE).exists():
        raise ConfigError(
            f"{config.out_dir!r} has no {CHECKPOINT_FILE} (it was removed), so its rounds cannot be continued; "
            "start the run again: the same fedmd-ray run command with --out DIR --overwrite instead of --resume"
        )
    if checkpoint is None:
        raise ConfigError(
            f"{config.out_dir!r} has no {CHECKPOINT_FILE}: the run stopped before transfer learning finished; "
            "start it again: the same fedmd-ray run command with --out DIR instead of --resume"
        )
    if checkpoint.fingerprint != saved_run:
        raise ConfigError(
            f"{target / CHECKPOINT_FILE} belongs to run {checkpoint.fingerprint}, not to the run {saved_run} that "
            f"{CONFIG_FILE} describes (the directory was reused); start that run again with --overwrite"
        )
    return checkpoint


def read_saved_config(directory: Path) -> dict[str, Any]:
    """The config a run saved in `directory` (config.json), as a dict (fields it predates at the value that
    reproduces it: `config.absent_values`); ConfigError if absent or unreadable."""
    return {**absent_values(), **_saved_run(directory)[0]}


def _saved_run(directory: Path) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """(config, identity, fingerprint) from the `config.json` a run saved in `directory` (a file
    without the identity, from before it was saved, gets it from its config). Read as `--config`
    reads a file (`config_file.read_document`): a regular file, bounded, UTF-8, nesting bounded."""
    from fedmd_ray.config_file import read_document

    path = directory / CONFIG_FILE
    try:
        saved = read_document(path, str(path), fmt="json")
    except ConfigError as exc:
        if not isinstance(exc.__cause__, FileNotFoundError):
            raise
        if not directory.is_dir():
            raise ConfigError(f"{str(directory)!r} does not exist or is not a directory: no run to resume") from None
        raise ConfigError(
            f"{str(directory)!r} holds no run to resume ({CONFIG_FILE} is missing): a run writes its files once "
            "transfer learning has finished, so one stopped before that left nothing to continue; start it again"
        ) from None
    config = saved.get("config") if isinstance(saved, dict) else None
    if not isinstance(config, dict):
        raise ConfigError(f"{path} is not a fedmd_ray run config: it holds no `config` table")
    identity = saved.get("identity")
    if not isinstance(identity, dict):
        identity = FedMDConfig.from_dict(config).identity()
    fingerprint = saved.get("fingerprint")
    return dict(config), dict(identity), fingerprint if isinstance(fingerprint, str) else None


class _Progress:
    """Progress lines (the `fedmd_ray` logger, INFO): per phase, the parties' accuracies, their mean,
    elapsed time; during transfer learning, each party as it finishes, with time left."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.baseline_rows: list[Row] = []
        self.private_classes = 0
        self.parties = self.rounds = 0
        self.transfer_start = 0.0
        self.transferred: set[int] = set()
        self.bar: Any = None  # on a terminal, a tqdm bar under the lines: parties transferred, then rounds

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _bar(self, total: int, what: str, unit: str, done: int = 0) -> None:
        self.close()
        self.bar = progress_bar(total, what, unit)
        if self.bar is not None and done:
            self.bar.update(done)

    def line(self, text: str) -> None:
        LOGGER.info(text)

    def parties_done(self, done: list[PartyProgress]) -> None:
        """Transfer learning is long: one line per party as it finishes, with an estimate of the rest
        (the phase's elapsed time per finished party, for those still training)."""
        for event in done:
            if event.party in self.transferred:
                continue  # a restarted host reports its parties again
            self.transferred.add(event.party)
            if self.bar is not None:
                self.bar.update(1)
            elapsed = time.perf_counter() - self.transfer_start
            left = elapsed / len(self.transferred) * (self.parties - len(self.transferred))
            epochs = "" if event.pretrain_epochs is None else f" after {event.pretrain_epochs} public epoch(s)"
            self.line(
                f"[{self._elapsed()}]   party {event.party} transferred: test {percent(event.accuracy)}{epochs}, "
                f"{event.seconds:.1f} s | {len(self.transferred)}/{self.parties} parties, ~{left:.0f} s left"
            )

    def header(self, experiment: Experiment) -> None:
        config, task = experiment.config, experiment.task
        self.private_classes = len(config.private_classes)
        self.parties, self.rounds = config.n_parties, config.rounds
        publics = "all" if config.public_classes is None else ",".join(map(str, config.public_classes))
        self.line(
            f"FedMD: {config.n_parties} parties, public {describe(config.public_data)}[{publics}] "
            f"({len(task.public_y)} images), private {describe(config.private_data)}"
            f"[{','.join(map(str, config.private_classes))}] ({config.samples_per_class}/class/party, "
            f"{config.partition}), test {len(task.test_y)} images, {config.rounds} rounds, "
            f"subset {config.subset_size}, strategy {describe(config.strategy)}, backend {config.backend}"
        )
        for note in experiment.notes:
            LOGGER.warning("%s", note)

    def placement(self, hosts: list[dict[str, Any]], resumed_after: int | None = None) -> None:
        """The workers are up; transfer learning starts, or the rounds after `resumed_after` do."""
        self.transfer_start = time.perf_counter()
        then = "; transfer learning..." if resumed_after is None else ""
        if resumed_after is None:
            self._bar(self.parties, "transfer learning", "party")
        else:
            self._bar(self.rounds, "rounds", "round", resumed_after)
        devices = sorted({h["device"] for h in hosts})
        nodes = {h.get("node", h["host"]) for h in hosts}
        self.line(
            f"[{self._elapsed()}] {len(hosts)} workers ready on {len(nodes)} node(s), device {'/'.join(devices)}, "
            f"{hosts[0]['torch_threads']} torch thread(s) each{then}"
        )
        for host in hosts:  # -v: which parties share which process
            LOGGER.debug(
                "  worker pid %s on %s (%s): parties %s",
                host.get("pid"),
                host.get("host"),
                host["device"],
                ",".join(map(str, host.get("parties", []))),
            )

    def phase(self, phase: str, round_: int, rounds: int, rows: list[Row]) -> None:
        accs = sorted((r["test_accuracy"], r["party"]) for r in rows if r["test_accuracy"] is not None)
        label = {TRANSFER: "round 0 (transfer)", UPPER_BOUND: "upper bound"}.get(phase, f"round {round_}/{rounds}")
        mean = mean_accuracy(rows)
        if mean is None:
            self.line(f"[{self._elapsed()}] {label}: no party took part")
            return
        change = ""
        if phase == TRANSFER:
            self.baseline_rows = rows
        elif phase == COLLABORATE and self.baseline_rows:
            moved = gain(self.baseline_rows, rows)
            if moved.value is not None:
                count = "" if moved.parties == len(rows) else f", {moved.parties} parties in both"
                change = f" ({points(moved.value)} vs round 0{count})"
        if len(rows) <= MAX_LISTED_PARTIES:
            parties = "parties (%): " + " ".join(_cell(r) for r in rows)
        else:  # a hundred accuracies per line help nobody: the spread and the weakest
            quartiles = [accs[int(q * (len(accs) - 1))][0] for q in (0.25, 0.5, 0.75)]
            parties = f"quartiles {'/'.join(map(percent, quartiles))}  weakest: " + ", ".join(
                f"party {p} {percent(a)}" for a, p in accs[:3]
            )
        failed = [r for r in rows if r["status"] != "ok"]
        events = "".join(f" | party {r['party']} {r['status']}" for r in failed[:MAX_LISTED_PARTIES])
        if len(failed) > MAX_LISTED_PARTIES:
            events += f" | {len(failed) - MAX_LISTED_PARTIES} more not ok"
        self.line(
            f"[{self._elapsed()}] {label:<20} mean {percent(mean)}{change}  min {percent(accs[0][0])}  "
            f"max {percent(accs[-1][0])}  "
            f"{parties}{events}"
        )
        if phase == TRANSFER:
            self._bar(rounds, "rounds", "round")
        elif phase == COLLABORATE and self.bar is not None:
            self.bar.update(1)
        if phase == TRANSFER and self.private_classes:
            for warning in transfer_health(rows, self.private_classes):
                self.line(f"warning: {warning}")

    def _elapsed(self) -> str:
        return f"{time.perf_counter() - self.start:7.1f}s"


def _cell(row: Row) -> str:
    """A party's accuracy in the progress line; `--` when it sat out or was dropped."""
    return "--" if row["test_accuracy"] is None else f"{100 * row['test_accuracy']:.0f}"
