"""The driver's view of the parties: run a typed task (`actors.tasks`) on some parties, get results
by party id.

One interface, two implementations: `actors.local_pool.LocalPool` (in this
process, one host after another; the sequential reference) and
`actors.ray_pool.RayPool` (one Ray actor per host, all hosts at once). The
driver's round loop is written once against this interface. A host that fails
(raises, dies, does not answer in time) does not abort the call: the others'
results come back inside `PartiesFailed`, and the driver applies its failure
policy. Nothing here imports torch (the driver actor holds a pool).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence, TypeVar

import numpy as np
import numpy.typing as npt

from fedmd_ray.actors.common import Distributed, PartyProgress, PartyState
from fedmd_ray.actors.tasks import PartyTask

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


class PartiesFailed(Exception):
    """Some hosts failed in a call; `results` holds the answers of the others."""

    def __init__(self, failures: list[HostFailure], results: dict[int, Any]) -> None:
        super().__init__("; ".join(f"parties {list(f.parties)}: {f.reason}" for f in failures))
        self.failures = failures
        self.results = results


class PartyPool(Protocol):
    def run(
        self, task: PartyTask[R], parties: Sequence[int], *, timeout: float | None = None, save: bool = False
    ) -> dict[int, R]:
        """Run `task` on `parties`; results in party order. Raises PartiesFailed. With `save`, every
        host that answers also keeps its parties' states after the task (see `saved`)."""
        ...

    def wait_ready(self) -> None:
        """Return once every host is built (hosts may start in the background); raise if they cannot be."""
        ...

    def saved(self) -> SavedStates:
        """The states kept by each host's last saving call (a failed host keeps its previous ones)."""
        ...

    def restart(self, host: int, states: dict[int, PartyState] | None) -> None:
        """Replace a failed host by a new one holding the same parties, restored to `states`
        (None: freshly built, as before transfer learning)."""
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

    def close(self) -> None:
        ...


def host_parties(group: Sequence[int], parties: Sequence[int]) -> list[int]:
    """The parties of one host that a task is for (empty: the host sits the task out)."""
    wanted = set(parties)
    return [p for p in group if p in wanted]
