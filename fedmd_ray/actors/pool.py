"""The driver's view of the parties: call a method on every party, get results by party id.

One interface, two implementations: `LocalPool` (in this process, one host
after another; the sequential reference) and `actors.ray_pool.RayPool` (one
Ray actor per host, all hosts at once). The driver's round loop is written once
against this interface.
"""

from __future__ import annotations

from typing import Any, Protocol

from fedmd_ray.actors.participant import PartyHost, PartySpec, SharedData
from fedmd_ray.config import FedMDConfig


class PartyPool(Protocol):
    def call(self, method: str, *shared: Any, per_party: dict[int, tuple[Any, ...]] | None = None) -> dict[int, Any]:
        """Run `method` on every party; results in party order."""
        ...

    def share(self, value: Any) -> Any:
        """Make `value` available to every host once (an object ref under Ray)."""
        ...

    def describe(self) -> list[dict[str, Any]]:
        """Where each host runs."""
        ...

    def usage(self) -> list[dict[str, Any]]:
        """Each host's seconds of party work so far and peak memory (for benchmarks)."""
        ...

    def close(self) -> None:
        ...


class LocalPool:
    """All parties in this process; hosts are called one after another."""

    def __init__(
        self,
        groups: list[list[PartySpec]],
        config: FedMDConfig,
        data: SharedData,
        *,
        threads: int | None = None,
        gpus: float | None = None,
    ) -> None:
        """`threads`/`gpus` default to the config's `torch_threads`/`gpus_per_party`."""
        threads = config.torch_threads if threads is None else threads
        gpus = config.gpus_per_party if gpus is None else gpus
        self.hosts = [PartyHost(group, config, data, threads=threads, gpus=gpus) for group in groups]

    def call(self, method: str, *shared: Any, per_party: dict[int, tuple[Any, ...]] | None = None) -> dict[int, Any]:
        results: dict[int, Any] = {}
        for host in self.hosts:
            results.update(host.call(method, per_party, *shared))
        return dict(sorted(results.items()))

    def share(self, value: Any) -> Any:
        return value

    def describe(self) -> list[dict[str, Any]]:
        return [host.describe() for host in self.hosts]

    def usage(self) -> list[dict[str, Any]]:
        return [host.usage() for host in self.hosts]

    def close(self) -> None:
        self.hosts = []
