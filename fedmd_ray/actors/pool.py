"""The driver's view of the parties: run a typed task (`actors.messages`) on some parties, get the
answers by party id, and the failures.

One interface, two implementations: `LocalPool` (here: every host in this process, one after
another; the sequential reference, and a Tune trial's own parties) and `actors.ray_pool.RayPool`
(one Ray actor per host, all hosts at once). The driver's round loop is written once against it.
A host that fails (raises, dies, does not answer in time) does not abort the call: `run` returns
the others' answers with the failures (`Answers`), and the driver's recovery
(`actors.recovery`) applies its failure policy. Nothing here imports torch at module level (the
driver actor holds a pool).
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Generic, Protocol, Sequence, TypeVar

import numpy as np
import numpy.typing as npt

from fedmd_ray.actors.deadline import deadline
from fedmd_ray.actors.messages import (
    Distributed,
    HostSetup,
    ImportState,
    PartyProgress,
    PartySpec,
    PartyState,
    PartyTask,
    SharedData,
    failure_reason,
    repeats_on_restart,
)
from fedmd_ray.errors import Overdue

if TYPE_CHECKING:
    from fedmd_ray.actors.participant import PartyHost

R = TypeVar("R")
log = logging.getLogger("fedmd_ray")


@dataclass(frozen=True)
class SavedStates:
    """Every party's state (`Participant.export_state`) after its host's last saving call.

    One part per host, `(its parties, their states)`: the states themselves
    in-process, an object ref to them under Ray. The ref is owned by the driver
    (it is a return value of the driver's call), so the states sit in the object
    store, outlive a host process that dies, and reach a checkpoint writer
    without passing through the driver. They live on the host's node: a node
    that is lost before anyone fetched them takes them along.
    """

    parts: tuple[tuple[tuple[int, ...], Any], ...] = ()

    def resolve(self, parties: Sequence[int] | None = None) -> dict[int, PartyState]:
        """The saved states of `parties` (default: all), fetching refs as needed; states that
        were lost with their node are left out (with a warning): their parties cannot come back."""
        states: dict[int, PartyState] = {}
        for members, part in self.parts:
            if parties is not None and not set(members) & set(parties):
                continue
            if not isinstance(part, dict):
                import ray  # only a RayPool makes refs

                try:
                    part = ray.get(part, timeout=600)
                except ray.exceptions.RayError as exc:
                    log.warning("the saved states of parties %s were lost: %s", list(members), exc)
                    continue
            states.update(part)
        return {p: s for p, s in sorted(states.items()) if parties is None or p in parties}


@dataclass(frozen=True)
class HostFailure:
    host: int  # index of the host in the pool
    parties: tuple[int, ...]
    reason: str  # one line for messages and tables
    detail: str  # the traceback, for the log
    repeats: bool = False  # redone from the same state it would fail again (`common.repeats_on_restart`)


@dataclass(frozen=True)
class Answers(Generic[R]):
    """What a call to the parties gave: the answers of the hosts that answered, by party, in party
    order, and a `HostFailure` for each host that did not."""

    results: dict[int, R]
    failures: list[HostFailure] = field(default_factory=list)


class PartyPool(Protocol):
    def run(
        self, task: PartyTask[R], parties: Sequence[int], *, timeout: float | None = None, save: bool = False
    ) -> Answers[R]:
        """Run `task` on `parties`: the answers and the failed hosts. With `save`, every host that answers
        also keeps its parties' states after the task (see `saved`)."""
        ...

    def wait_ready(self) -> None:
        """Return once every host is built (hosts may start in the background); raise if they cannot be."""
        ...

    def saved(self) -> SavedStates:
        """The states kept by each host's last saving call (a failed host keeps its previous ones)."""
        ...

    def restart(self, host: int, states: dict[int, PartyState] | None) -> HostFailure | None:
        """Replace a failed host by a new one holding the same parties, restored to `states`
        (None: freshly built, as before transfer learning); the new host's failure to restore, if any."""
        ...

    def remove(self, host: int) -> None:
        """Forget a failed host; its parties are gone for the rest of the run."""
        ...

    def distribute(self, targets: npt.NDArray[np.float32], rows: dict[int, int] | None) -> Distributed:
        """Put the round's targets once where every host reads them (an object ref under Ray);
        `rows`: each party's row of personalised targets, None for one shared consensus."""
        ...

    def progress(self) -> list[PartyProgress]:
        """Parties that finished a long task (transfer learning) since the last call (hosts in other
        processes: the runner polls them while the driver waits)."""
        ...

    def listen(self, callback: Callable[[list[PartyProgress]], None] | None) -> None:
        """Have `callback` told of parties as they finish a long task (hosts in this process)."""
        ...

    def describe(self) -> list[dict[str, Any]]:
        """Where each host runs."""
        ...

    def usage(self) -> list[dict[str, Any]]:
        """Each host's seconds of party work so far and peak memory (for benchmarks)."""
        ...

    def close(self) -> None: ...


def restore(pool: PartyPool, states: dict[int, PartyState] | None) -> HostFailure | None:
    """Import `states` into the parties that own them (a restarted host's); its failure, if any."""
    if not states:
        return None
    failures = pool.run(ImportState(states), list(states)).failures
    return failures[0] if failures else None


def host_parties(group: Sequence[int], parties: Sequence[int]) -> list[int]:
    """The parties of one host that a task is for (empty: the host sits the task out)."""
    wanted = set(parties)
    return [p for p in group if p in wanted]


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
        from fedmd_ray.actors.participant import DeviceData, PartyHost, choose_device

        placed = DeviceData.place(data, choose_device(gpus))
        self._build = lambda group: PartyHost(group, setup, placed, threads=threads, gpus=gpus)
        self.specs = _hosts([spec for group in groups for spec in group], setup.batched)
        self.hosts: list[PartyHost | None] = [self._build(group) for group in self.specs]
        self._saved: dict[int, dict[int, PartyState]] = {}
        self.listener: Callable[[list[PartyProgress]], None] | None = None  # told as each host finishes

    def run(
        self, task: PartyTask[R], parties: Sequence[int], *, timeout: float | None = None, save: bool = False
    ) -> Answers[R]:
        """`timeout` holds per host as under Ray (see `actors.deadline`)."""
        results: dict[int, R] = {}
        failures = []
        for index, host in enumerate(self.hosts):
            own = host_parties([s.party for s in self.specs[index]], parties)
            if host is None or not own:
                continue
            try:
                with deadline(timeout):
                    answers = host.run(task.for_parties(own), own)
                    saved = host.states() if save else None
                results.update(answers)
                if saved is not None:
                    self._saved[index] = saved
            except Overdue as late:  # as a Ray host that does not answer: failed, its answer (if any) unused
                failures.append(HostFailure(index, tuple(own), str(late), ""))
            except Exception as exc:  # a party's bug: reported with its parties, policy decides
                failures.append(
                    HostFailure(index, tuple(own), failure_reason(exc), traceback.format_exc(), repeats_on_restart(exc))
                )
            if self.listener is not None and host.finished:
                self.listener(host.finished)
                host.finished = []
        return Answers(dict(sorted(results.items())), failures)

    def restart(self, host: int, states: dict[int, PartyState] | None) -> HostFailure | None:
        self.hosts[host] = self._build(self.specs[host])
        return restore(self, states)

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
