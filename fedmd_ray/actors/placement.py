"""How parties map onto host actors, and what each actor asks Ray for (no Ray here).

A worker process costs ~3 s of CPU to start (Python, Ray, torch) and its own
copy of torch's memory, so by default (`parties_per_actor=None`) a run starts
one actor per whole CPU its parties may use, not one per party: 10 parties on
2 cores become 2 actors of 5 parties, 1000 parties on 2 cores 2 actors of 500.
Parties are then spread over the actors by their estimated work (longest
first, onto the least loaded actor), so the actors finish a round together.
Which actor hosts a party never changes its results: every party keeps its own
model, optimizers, data and RNG stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from fedmd_ray.config import FedMDConfig
from fedmd_ray.errors import ResourceError
from fedmd_ray.model_registry import ModelEntry, ModelPlugin
from fedmd_ray.models import footprint


@dataclass(frozen=True)
class ActorResources:
    """The host actors of a run: how many, how many parties at most each, and each one's request."""

    sizes: tuple[int, ...]  # parties per actor (they differ by at most one)
    cpus: float  # each actor's request
    gpus: float
    threads: int  # torch threads per actor

    @property
    def count(self) -> int:
        return len(self.sizes)


def actor_resources(config: FedMDConfig, totals: dict[str, float]) -> ActorResources:
    """Host actors for `config` on a cluster with `totals` (only read when cpus_per_party is None).

    Actors hold parties of equal total work (see `assign_parties`), so they ask
    for equal CPU shares: with `parties_per_actor=None` the parties' CPUs are
    split evenly over the actors; with a fixed `parties_per_actor` each actor
    asks `cpus_per_party` times its size.
    """
    sizes = actor_sizes(config, totals)
    count, capacity = len(sizes), sizes[0]
    if config.cpus_per_party is None:
        cpus = even_cpu_share(totals.get("CPU", 0.0) - config.driver_cpus, count)
    elif config.parties_per_actor is None:
        cpus = even_cpu_share(config.cpus_per_party * config.n_parties, count)
    else:
        cpus = _ray_quantity("cpus_per_party", config.cpus_per_party * capacity)
    gpus = _ray_quantity("gpus_per_party", config.gpus_per_party * capacity)
    return ActorResources(sizes, cpus, gpus, threads=config.torch_threads or max(1, int(cpus)))


def actor_sizes(config: FedMDConfig, totals: dict[str, float]) -> tuple[int, ...]:
    """Parties on each host actor, fullest first (`totals` as in `actor_resources`)."""
    count = _actor_count(config, totals)
    base, extra = divmod(config.n_parties, count)
    return tuple(base + (h < extra) for h in range(count))


def _actor_count(config: FedMDConfig, totals: dict[str, float]) -> int:
    if config.parties_per_actor is not None:
        return -(-config.n_parties // config.parties_per_actor)
    if config.cpus_per_party is not None:
        party_cpus = config.cpus_per_party * config.n_parties
    else:
        party_cpus = totals.get("CPU", 0.0) - config.driver_cpus
    return min(config.n_parties, max(1, round(party_cpus)))


def even_cpu_share(cpus: float, parts: int) -> float:
    """CPUs per part when `parts` share `cpus`: whole CPUs from 1 up, else a fraction
    rounded down to 0.01 (at least 0.01), so the requests always fit."""
    share = cpus / parts
    return float(math.floor(share)) if share >= 1 else max(math.floor(share * 100) / 100, 0.01)


def party_costs(
    config: FedMDConfig,
    models: Sequence[ModelPlugin | ModelEntry],
    private_sizes: Sequence[int],
    input_shape: tuple[int, int, int],
    n_classes: int,
    n_test: int,
) -> list[float]:
    """Estimated work of each party per round: samples touched, weighted by its model's cost per sample.

    Digest is forward + backward (~3 forwards) on the subset, communicate and the
    test are forwards, revisit trains on the private data.
    """
    return [
        footprint(model, input_shape, n_classes).cpu_cost
        * (4 * config.subset_size + n_test + 3 * config.revisit_epochs * size)
        for model, size in zip(models, private_sizes)
    ]


def assign_parties(costs: Sequence[float], sizes: Sequence[int]) -> list[list[int]]:
    """Party ids per host (host h gets `sizes[h]` parties): longest work first onto the
    least loaded host with room (LPT). Deterministic (ties go to the lower id);
    each host's list is in party order."""
    loads = [0.0] * len(sizes)
    groups: list[list[int]] = [[] for _ in sizes]
    for party in sorted(range(len(costs)), key=lambda p: (-costs[p], p)):
        host = min((h for h in range(len(sizes)) if len(groups[h]) < sizes[h]), key=lambda h: (loads[h], h))
        groups[host].append(party)
        loads[host] += costs[party]
    return [sorted(g) for g in groups]


def _ray_quantity(name: str, value: float) -> float:
    """Ray accepts fractions below 1 (on a 1e-4 grid) and whole numbers above."""
    if value <= 1:
        return round(value, 4)
    if abs(value - round(value)) > 1e-9:
        raise ResourceError(
            f"{name} x parties per actor = {value:g} per actor, but Ray needs a fraction below 1 or a whole "
            f"number; change {name} or parties_per_actor"
        )
    return float(round(value))
