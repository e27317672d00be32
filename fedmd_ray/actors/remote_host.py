"""The party host as a Ray actor.

Ray loads an actor's class in every process that receives a handle to it, the
driver actor included; this class therefore imports torch (with `PartyHost`)
only when an actor is built, and forwards the calls `actors.ray_pool` makes.
"""

from __future__ import annotations

from typing import Any

import ray

from fedmd_ray.actors.common import PartySpec, PartyState, SharedData
from fedmd_ray.config import FedMDConfig


class RemoteHost:
    """A `PartyHost` whose shared arrays arrive as top-level arguments.

    Ray resolves top-level object refs before `__init__` runs, handing the
    actor zero-copy read-only views of the object store: each public image is
    stored once per node, however many parties read it.
    """

    def __init__(self, specs: list[PartySpec], config: FedMDConfig, threads: int, gpus: float, *arrays: Any) -> None:
        from fedmd_ray.actors.participant import PartyHost

        self._host = PartyHost(specs, config, SharedData(*arrays), threads=threads, gpus=gpus)

    def call(self, method: str, per_party: dict[int, tuple[Any, ...]] | None, *shared: Any) -> dict[int, Any]:
        return self._host.call(method, per_party, *shared)

    def call_saving(
        self, method: str, per_party: dict[int, tuple[Any, ...]] | None, *shared: Any
    ) -> tuple[dict[int, Any], dict[int, PartyState]]:
        return self._host.call_saving(method, per_party, *shared)

    def usage(self) -> dict[str, Any]:
        return self._host.usage()

    def describe(self) -> dict[str, Any]:
        context = ray.get_runtime_context()
        return {**self._host.describe(), "node": context.get_node_id(), "actor": context.get_actor_name()}
