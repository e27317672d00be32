"""`PartyPool` in this process: the sequential reference, and a Tune trial's own parties."""

from __future__ import annotations

import traceback
from typing import Any, Callable, Sequence, TypeVar

import numpy as np
import numpy.typing as npt

from fedmd_ray.actors.deadline import deadline
from fedmd_ray.actors.common import (
    Distributed, HostSetup, PartyProgress, PartySpec, PartyState, SharedData, failure_reason, repeats_on_restart,
)
from fedmd_ray.actors.participant import DeviceData, PartyHost, choose_device
from fedmd_ray.actors.pool import HostFailure, PartiesFailed, SavedStates, host_parties
from fedmd_ray.actors.tasks import ImportState, PartyTask
from fedmd_ray.errors import Overdue

R = TypeVar("R")


class LocalPool:
    """All parties in this process, one after another. Each party is its own host here (hosts are
    plain objects sharing one copy of the data), so a party that raises is restarted or dropped
    alone, except that the parties of a model the run batches share one host, which runs them as one
    computation (`actors.party_group`); the grouping of `groups` only matters for actors."""

    def __init__(
        self,
        groups: list[list[PartySpec]],
        setup: HostSetup,
        data: SharedData,
        *,
        threads: int | None = None,
        gpus: float | None = None,
    ) -> None:
        """`threads`/`gpus` default to the config's `torch_threads`/`gpus_per_party`."""
        threads = setup.config.torch_threads if threads is None else threads
        gpus = setup.config.gpus_per_party if gpus is None else gpus
        placed = DeviceData.place(data, choose_device(gpus))
        self._build = lambda group: PartyHost(group, setup, placed, threads=threads, gpus=gpus)
        self.specs = _hosts([spec for group in groups for spec in group], setup.batched)
        self.hosts: list[PartyHost | None] = [self._build(group) for group in self.specs]
        self._saved: dict[int, dict[int, PartyState]] = {}
        self.listener: Callable[[list[PartyProgress]], None] | None = None  # told as each host finishes

    def run(
        self, task: PartyTask[R], parties: Sequence[int], *, timeout: float | None = None, save: bool = False
    ) -> dict[int, R]:
        """`timeout` holds per host as under Ray (see `actors.deadline`)."""
        results: dict[int, R] = {}
        failures = []
        for index, host in enumerate(self.hosts):
            own = host_parties([s.party for s in self.specs[index]], parties)
            if host is None or not own:
                continue
            try:
                with deadline(timeout):
                    if save:
                        answers, saved = host.run_saving(task.for_parties(own), own)
                    else:
                        answers, saved = host.run(task.for_parties(own), own), None
                results.update(answers)
                if saved is not None:
                    self._saved[index] = saved
            except Overdue as late:  # as a Ray host that does not answer: failed, its answer (if any) unused
                failures.append(HostFailure(index, tuple(own), str(late), ""))
            except Exception as exc:  # a party's bug: reported with its parties, policy decides
                failures.append(HostFailure(index, tuple(own), failure_reason(exc), traceback.format_exc(),
                                            repeats_on_restart(exc)))
            if self.listener is not None and host.finished:
                self.listener(host.finished)
                host.finished = []
        if failures:
            raise PartiesFailed(failures, dict(sorted(results.items())))
        return dict(sorted(results.items()))

    def restart(self, host: int, states: dict[int, PartyState] | None) -> None:
        self.hosts[host] = self._build(self.specs[host])
        if states:
            self.run(ImportState(states), list(states))

    def wait_ready(self) -> None:
        """Hosts here are built by the constructor."""

    def saved(self) -> SavedStates:
        return SavedStates(tuple((tuple(s.party for s in self.specs[h]), part) for h, part in self._saved.items()))

    def progress(self) -> list[PartyProgress]:
        """Nothing to poll in-process: the listener hears of each party as its host finishes."""
        return []

    def listen(self, callback: Callable[[list[PartyProgress]], None] | None) -> None:
        self.listener = callback

    def remove(self, host: int) -> None:
        self.hosts[host] = None
        self._saved.pop(host, None)

    def distribute(self, targets: npt.NDArray[np.float32], rows: dict[int, int] | None) -> Distributed:
        return Distributed(targets, rows)

    def describe(self) -> list[dict[str, Any]]:
        return [host.describe() for host in self.hosts if host is not None]

    def usage(self) -> list[dict[str, Any]]:
        return [host.usage() for host in self.hosts if host is not None]

    def close(self) -> None:
        self.hosts = []


def _hosts(specs: list[PartySpec], batched: frozenset[str]) -> list[list[PartySpec]]:
    """One host per party, but one per batched model for all of its parties (in party order)."""
    hosts: list[list[PartySpec]] = []
    shared: dict[str, list[PartySpec]] = {}
    for spec in sorted(specs, key=lambda s: s.party):
        if spec.model.identity not in batched:
            hosts.append([spec])
        elif spec.model.identity in shared:
            shared[spec.model.identity].append(spec)
        else:
            shared[spec.model.identity] = [spec]
            hosts.append(shared[spec.model.identity])
    return hosts
