"""`run()`: one FedMD experiment, end to end (Li & Wang, arXiv 1910.03581).

Phases, in order: transfer learning (round 0, with the upper bound computed
from the same pretrained models), then rounds 1..R of
communicate -> aggregate -> distribute -> digest -> revisit -> evaluate.
The data is loaded and checked before Ray starts; the table is written to
`out_dir` after every phase, so a crash keeps what finished.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa

from fedmd_ray.actors.backends import DriverCall, open_driver
from fedmd_ray.actors.participant import PartySpec, SharedData
from fedmd_ray.analysis.io import CONFIG_FILE, RESULTS_FILE, write_json, write_table
from fedmd_ray.analysis.schema import rows_to_table
from fedmd_ray.analysis.summary import format_summary, summarize
from fedmd_ray.config import FedMDConfig
from fedmd_ray.data.task import FedMDTask, build_task
from fedmd_ray.errors import ConfigError

Row = dict[str, Any]
Phase = tuple[str, int, list[Row]]  # (phase, round, rows of that phase)


def run(
    config: FedMDConfig,
    out_dir: str | os.PathLike[str] | None = None,
    *,
    overwrite: bool = False,
    verbose: bool = True,
) -> pa.Table:
    """Run FedMD once and return the long result table (schema: `analysis.schema`).

    With `out_dir` (or `config.out_dir`) it also writes `config.json` and
    `results.parquet` there; a directory holding another run's results is
    refused unless `overwrite=True`. Uses the running Ray if there is one (and
    leaves it up), else attaches to `config.address`/`RAY_ADDRESS`, else starts
    a local Ray and stops it afterwards.
    """
    if out_dir is not None:
        config = config.replace(out_dir=str(out_dir))
    _check_out_dir(config.out_dir, overwrite)
    log = _Progress(verbose)
    task = build_task(config)  # every check passes before anything is written or started
    target = _make_out_dir(config.out_dir)
    log.header(config, task)
    if target is not None:
        write_json({"config": config.to_dict(), "fingerprint": config.fingerprint(), **_versions()}, target / CONFIG_FILE)

    rows: list[Row] = []
    for phase, round_, phase_rows in iterate_phases(config, task, on_start=log.placement):
        rows.extend(phase_rows)
        log.phase(phase, round_, config.rounds, phase_rows)
        if target is not None:
            write_table(rows_to_table(rows), target / RESULTS_FILE)
    table = rows_to_table(rows)
    log.line(format_summary(summarize(table)))
    if target is not None:
        log.line(f"results: {target / RESULTS_FILE}")
    return table


def iterate_phases(
    config: FedMDConfig,
    task: FedMDTask,
    *,
    on_start: Callable[[list[dict[str, Any]]], None] | None = None,
    transfer_cache: str | None = None,
    driver_in_process: bool = False,
) -> Iterator[Phase]:
    """Yield each phase's rows as it finishes: transfer (+ upper bound), then every round.

    The single round loop; `run()` prints and saves around it, a Tune trial
    reports from it. `transfer_cache` is a directory or URI of transfer-learned
    parties to reuse (see `transfer_cache.py`).
    """
    specs, data = party_inputs(config, task)
    with open_driver(config, specs, data, config.fingerprint(), driver_in_process=driver_in_process) as call:
        if on_start is not None:
            on_start(call("describe"))
        yield from _phases(call, config, transfer_cache)


def party_inputs(config: FedMDConfig, task: FedMDTask) -> tuple[list[PartySpec], SharedData]:
    """What the pools need from a task: each party's model and data indices, and the shared arrays."""
    specs = [PartySpec(p, m, idx) for p, (m, idx) in enumerate(zip(config.party_models, task.party_indices))]
    data = SharedData(
        task.public_x, task.public_y, task.public_val_x, task.public_val_y,
        task.private_x, task.private_y, task.test_x, task.test_y, task.union_indices,
    )
    return specs, data


def _phases(call: DriverCall, config: FedMDConfig, transfer_cache: str | None) -> Iterator[Phase]:
    rows = call("transfer_learn", transfer_cache)
    yield "transfer", 0, [r for r in rows if r["phase"] == "transfer"]
    if config.upper_bound:
        yield "upper_bound", 0, [r for r in rows if r["phase"] == "upper_bound"]
    for round_ in range(1, config.rounds + 1):
        yield "collaborate", round_, call("run_round", round_)


def _check_out_dir(out_dir: str | None, overwrite: bool) -> None:
    """Refuse a file, or a directory holding results, without touching the disk."""
    if out_dir is None:
        return
    target = Path(out_dir).expanduser()
    if target.exists() and not target.is_dir():
        raise ConfigError(f"out_dir={out_dir!r} is a file, not a directory")
    if (target / RESULTS_FILE).exists() and not overwrite:
        raise ConfigError(
            f"out_dir={out_dir!r} already holds a run's {RESULTS_FILE}; choose another directory "
            "or pass --overwrite (overwrite=True) to replace it"
        )


def _make_out_dir(out_dir: str | None) -> Path | None:
    if out_dir is None:
        return None
    target = Path(out_dir).expanduser()
    try:
        target.mkdir(parents=True, exist_ok=True)
        probe = target / ".fedmd_ray_write_test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"out_dir={out_dir!r} is not writable: {exc.strerror}") from exc
    return target


def _versions() -> dict[str, str]:
    import ray
    import torch

    from fedmd_ray import __version__

    return {
        "fedmd_ray": __version__, "python": platform.python_version(), "torch": torch.__version__,
        "ray": ray.__version__, "pyarrow": pa.__version__, "host": platform.node(),
    }


class _Progress:
    """Progress lines on stderr: per phase, the parties' accuracies, their mean, elapsed time."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.start = time.perf_counter()
        self.baseline: float | None = None

    def line(self, text: str) -> None:
        if self.enabled:
            print(text, file=sys.stderr, flush=True)

    def header(self, config: FedMDConfig, task: FedMDTask) -> None:
        publics = "all" if config.public_classes is None else ",".join(map(str, config.public_classes))
        self.line(
            f"FedMD: {config.n_parties} parties, public {config.public_data}[{publics}] "
            f"({len(task.public_y)} images), private {config.private_data}"
            f"[{','.join(map(str, config.private_classes))}] ({config.samples_per_class}/class/party, "
            f"{config.partition}), test {len(task.test_y)} images, {config.rounds} rounds, "
            f"subset {config.subset_size}, backend {config.backend}"
        )

    def placement(self, hosts: list[dict[str, Any]]) -> None:
        devices = sorted({h["device"] for h in hosts})
        nodes = sorted({h["host"] for h in hosts})
        self.line(
            f"[{self._elapsed()}] {len(hosts)} workers ready on {len(nodes)} node(s), device {'/'.join(devices)}, "
            f"{hosts[0]['torch_threads']} torch thread(s) each; transfer learning..."
        )

    def phase(self, phase: str, round_: int, rounds: int, rows: list[Row]) -> None:
        accs = [r["test_accuracy"] for r in rows]
        mean = sum(accs) / len(accs)
        label = {"transfer": "round 0 (transfer)", "upper_bound": "upper bound"}.get(phase, f"round {round_}/{rounds}")
        gain = ""
        if phase == "transfer":
            self.baseline = mean
        elif phase == "collaborate" and self.baseline is not None:
            gain = f" ({mean - self.baseline:+.3f} vs round 0)"
        self.line(
            f"[{self._elapsed()}] {label:<20} mean {mean:.3f}{gain}  min {min(accs):.3f}  max {max(accs):.3f}  "
            f"parties: {' '.join(f'{a:.2f}' for a in accs)}"
        )

    def _elapsed(self) -> str:
        return f"{time.perf_counter() - self.start:7.1f}s"
