"""Shared by the benchmark scripts: timing a run phase by phase, CPU use, result rows.

Every script runs both sides of its comparison in one process run and calls
`record()`, which prints the figures and appends one row (machine, date,
versions, figures) to `benchmarks/results/<name>.csv`.
"""

from __future__ import annotations

import csv
import datetime
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import fedmd_ray
from fedmd_ray.actors.backends import open_driver
from fedmd_ray.config import FedMDConfig
from fedmd_ray.experiment import prepare

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """Where the numbers came from."""
    import ray
    import torch

    cpu_model = ""
    if os.path.exists("/proc/cpuinfo"):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "ray": ray.__version__,
        "fedmd_ray": fedmd_ray.__version__,
    }


def record(name: str, figures: dict[str, Any]) -> None:
    """Print `figures` and append them with the machine's facts to results/<name>.csv.

    The file is read and checked whole before anything is written, and replaced in one step (a new file
    renamed over it): a row that does not fit its header stops here with the file as it was, where a
    rewrite in place had truncated the file and lost its earlier rows (many_parties.csv, 2026-12-08)."""
    for key, value in figures.items():
        print(f"  {key:<36} {value:.4g}" if isinstance(value, float) else f"  {key:<36} {value}")
    row = {**machine(), **{k: (round(v, 6) if isinstance(v, float) else v) for k, v in figures.items()}}
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.csv"
    header: list[str] = []
    lines: list[list[str]] = []
    if path.exists():
        with open(path, newline="") as handle:
            header, *lines = list(csv.reader(handle)) or [[]]
    misfits = [number for number, line in enumerate(lines, start=2) if len(line) != len(header)]
    if misfits:
        raise ValueError(f"{path}: line(s) {misfits} do not have one value per column of its header; nothing written")
    columns = list(dict.fromkeys([*header, *row]))  # a benchmark that measures more adds columns
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows([*(dict(zip(header, line)) for line in lines), row])
    os.replace(partial, path)
    print(f"  -> {path}")


def _cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat."""
    with open("/proc/stat") as handle:
        values = [float(v) for v in handle.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # without guest time, already counted in user
    return total - idle, total


class CpuMeter:
    """Share of all cores busy between `start()` and `stop()` (whole machine, 0..1)."""

    def start(self) -> None:
        self._begin = _cpu_times()

    def stop(self) -> float:
        busy, total = _cpu_times()
        return (busy - self._begin[0]) / max(total - self._begin[1], 1e-9)


@dataclass
class PhaseTimes:
    """Wall seconds of one run, split where a user sees it split, and the hosts' usage at the end."""

    startup: float = 0.0  # Ray start (if any) + data into place + actors built
    transfer: float = 0.0  # round 0: pretraining, upper bound, private training
    rounds: list[float] = field(default_factory=list)
    rounds_cpu: float = 0.0  # machine CPU utilisation during the rounds
    accuracy: float = 0.0  # final mean test accuracy (to show both sides did the same work)
    usage: dict[str, Any] = field(default_factory=dict)  # Driver.usage(): per host busy time, memory

    @property
    def total(self) -> float:
        return self.startup + self.transfer + sum(self.rounds)


def timed_run(config: FedMDConfig) -> PhaseTimes:
    """Run `config`'s phases through the real driver, timing each (data loading excluded)."""
    experiment = prepare(config)
    specs, data = experiment.party_inputs()
    times, meter = PhaseTimes(), CpuMeter()
    start = time.perf_counter()
    with open_driver(experiment.setup, specs, data, experiment.run_id) as driver:
        times.startup = time.perf_counter() - start
        start = time.perf_counter()
        rows = driver.transfer_learn()
        times.transfer = time.perf_counter() - start
        meter.start()
        for round_ in range(1, config.rounds + 1):
            start = time.perf_counter()
            rows = driver.run_round(round_)
            times.rounds.append(time.perf_counter() - start)
        times.rounds_cpu = meter.stop()
        times.usage = driver.usage()
    times.accuracy = float(np.mean([r["test_accuracy"] for r in rows if r["phase"] != "upper_bound"]))
    return times
