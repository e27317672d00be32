"""How a sweep fills a cluster: each trial's share and how many trials run at once (no Ray here).

A sweep's trials are independent runs, so on a CPU machine many small trials at once beat
one trial spread over every core: torch gives a small model little for a second thread,
and a trial whose parties fit one process starts no actors at all. Measured on 2 cores
(docs/performance.md §4): 4 `quick` trials at 0.5 CPU each ran 2.7-2.9x faster than one
after another at 2 CPUs each.

With `cpus_per_party=None` the sweep gives each party `min(1, CPUs / (trials x parties))`
CPUs: every trial at once where they fit at up to one CPU per party (one torch thread
each: the efficient share), but never less than `MIN_TRIAL_CPUS` per trial (a trial
process below that mostly waits for its turn on a core). Tune then starts as many trials
as their placement groups fit, and the estimated host memory of a trial caps how many run
at once (`trials_in_memory`). `cpus_per_party` and `max_concurrent_trials` still decide
when given. GPUs are packed by `gpus_per_party` (the GPU-memory check refuses a share
whose parties do not fit before the first trial starts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fedmd_ray.actors.placement import even_cpu_share

MIN_TRIAL_CPUS = 0.5  # a trial (its driver and parties) gets at least this much of a core
MAX_PARTY_CPUS = 1.0  # more than one CPU per party buys torch threads that small models barely use
MEMORY_USE = 0.8  # of the cluster's memory, for trials at once (Ray's object store and the OS keep the rest)


@dataclass(frozen=True)
class SweepPlan:
    """What each trial asks for and how many of them run at once."""

    cpus_per_party: float
    trial_cpus: float  # the trial's placement group: its parties and its driver
    trial_gpus: float
    at_once: int  # trials whose placement groups fit the cluster together
    max_concurrent: int | None  # what Tune is told (None: as many as fit)

    def describe(self, trials: int, cpus: float) -> str:
        return (
            f"{min(self.at_once, trials)} of {trials} trial(s) at once on {cpus:g} CPUs: "
            f"{self.cpus_per_party:g} CPU per party, {self.trial_cpus:g} CPU per trial"
            + (f", {self.trial_gpus:g} GPU per trial" if self.trial_gpus else "")
        )


def plan_sweep(
    *,
    trials: int,
    parties: int,
    cpus: float,
    gpus: float = 0.0,
    driver_cpus: float = 0.05,
    cpus_per_party: float | None = None,
    gpus_per_party: float = 0.0,
    max_concurrent: int | None = None,
    memory: float | None = None,
    trial_bytes: float | None = None,
) -> SweepPlan:
    """The plan for `trials` trials of up to `parties` parties on a cluster of `cpus` CPUs and `gpus` GPUs
    (`memory` bytes for tasks; `trial_bytes`: the estimated host memory of the largest trial)."""
    if cpus_per_party is None:
        sharing = max_concurrent or trials
        share = (cpus - driver_cpus * sharing) / (parties * sharing)
        if max_concurrent is None:
            share = max(share, (MIN_TRIAL_CPUS - driver_cpus) / parties)
        cpus_per_party = even_cpu_share(min(share, MAX_PARTY_CPUS) * parties, parties)
    trial_cpus = driver_cpus + cpus_per_party * parties
    trial_gpus = gpus_per_party * parties
    at_once = max(1, math.floor(cpus / trial_cpus + 1e-9))
    if trial_gpus:
        at_once = min(at_once, max(1, math.floor(gpus / trial_gpus + 1e-9)))
    cap = max_concurrent
    in_memory = trials_in_memory(memory, trial_bytes)
    if in_memory is not None and in_memory < min(at_once, trials) and (cap is None or in_memory < cap):
        cap = in_memory
    return SweepPlan(cpus_per_party, trial_cpus, trial_gpus, min(at_once, cap or at_once), cap)


def trials_in_memory(memory: float | None, trial_bytes: float | None) -> int | None:
    """How many trials of `trial_bytes` fit `MEMORY_USE` of `memory` (None: unknown)."""
    if not memory or not trial_bytes:
        return None
    return max(1, math.floor(MEMORY_USE * memory / trial_bytes))
