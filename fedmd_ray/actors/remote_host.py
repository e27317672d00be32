"""The party host as a Ray actor.

Ray loads an actor's class in every process that receives a handle to it, the
driver actor included; this class therefore imports torch (with `PartyHost`)
only when an actor is built, and forwards the calls `actors.ray_pool` makes.
"""

from __future__ import annotations

from typing import Any, Sequence, TypeVar

import ray

from fedmd_ray.actors.common import PartyProgress, PartyState, SharedData
from fedmd_ray.actors.portable import Portable
from fedmd_ray.actors.tasks import PartyTask

R = TypeVar("R")


class RemoteHost:
    """A `PartyHost` whose shared arrays arrive as top-level arguments.

    Ray resolves top-level object refs before `__init__` runs, handing the
    actor zero-copy read-only views of the object store: each public image is
    stored once per node, however many parties read it.
    """

    def __init__(self, packed: Portable, threads: int, gpus: float, *arrays: Any) -> None:
        """`packed`: this host's `PartySpec`s and the `HostSetup` (see `actors.portable`)."""
        from fedmd_ray.actors.participant import PartyHost

        specs, setup = packed.unwrap()
        self._host = PartyHost(specs, setup, SharedData(*arrays), threads=threads, gpus=gpus)

    def run(self, task: PartyTask[R], parties: Sequence[int]) -> dict[int, R]:
        return self._host.run(task, parties)

    def run_saving(self, task: PartyTask[R], parties: Sequence[int]) -> tuple[dict[int, R], dict[int, PartyState]]:
        return self._host.run_saving(task, parties)

    @ray.method(concurrency_group="progress")
    def progress(self, since: int) -> list[PartyProgress]:
        """Answered while `run` runs (its own concurrency group): progress lines during long tasks."""
        return self._host.progress(since)

    def usage(self) -> dict[str, Any]:
        return self._host.usage()

    def describe(self) -> dict[str, Any]:
        context = ray.get_runtime_context()
        return {**self._host.describe(), "node": context.get_node_id(), "actor": context.get_actor_name()}
