"""Parties as Ray actors: one actor per `PartyHost` (`RemoteHost`), all called at once.

A copy of the pool lives in the driver actor, which never imports torch (see
`actors.messages`): nothing here does at import time. Ray loads an actor's class in every
process that receives a handle to it, the driver actor included; so `RemoteHost` imports
torch (with `PartyHost`) only when an actor is built.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import subprocess
import uuid
from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar

import numpy as np
import numpy.typing as npt
import ray

from fedmd_ray.actors.messages import (
    Distributed,
    HostSetup,
    PartyProgress,
    PartySpec,
    PartyState,
    PartyTask,
    SharedData,
    failure_reason,
    repeats_on_restart,
)
from fedmd_ray.actors.pool import Answers, HostFailure, SavedStates, host_parties, restore
from fedmd_ray.actors.portable import Portable
from fedmd_ray.errors import ResourceError

if TYPE_CHECKING:
    from fedmd_ray.actors.placement import ActorResources  # sizing imports torch


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
        """`run`, then every hosted party's state (`PartyHost.states`), returned as a second object that
        the driver owns and never fetches itself (see `SavedStates`)."""
        return self._host.run(task, parties), self._host.states()

    @ray.method(concurrency_group="progress")
    def progress(self, since: int) -> list[PartyProgress]:
        """Answered while `run` runs (its own concurrency group): progress lines during long tasks."""
        return self._host.progress(since)

    def usage(self) -> dict[str, Any]:
        return self._host.usage()

    def describe(self) -> dict[str, Any]:
        context = ray.get_runtime_context()
        return {**self._host.describe(), "node": context.get_node_id(), "actor": context.get_actor_name()}


# made once, never pickled with a pool; `progress` answers from its own group while `run` runs
_HOST_ACTOR = ray.remote(concurrency_groups={"progress": 1})(RemoteHost)  # type: ignore[call-overload]
R = TypeVar("R")
FETCH_TIMEOUT_S = 600.0  # fetching an answer that is ready (it may be large: party states)


class RayPool:
    """Host actors, started by the constructor; `wait_ready()` before the first call.

    Not waiting in the constructor lets the caller start the driver actor while
    the hosts start (each process spends ~1.5 s of CPU importing torch).
    """

    def __init__(
        self, groups: list[list[PartySpec]], setup: HostSetup, data: SharedData, resources: ActorResources
    ) -> None:
        config = setup.config
        refs = [ray.put(getattr(data, f.name)) for f in dataclasses.fields(data)]
        self._options = dict(num_cpus=resources.cpus, num_gpus=resources.gpus, max_restarts=0)
        self._args = (resources.threads, resources.gpus, *refs)
        # each host's parties and the setup, pickled here: the driver actor holding this pool never
        # unpickles the plug-ins, and the hosts do so after adding this process's import paths
        self._packed = [Portable.wrap((group, setup)) for group in groups]
        self._fetch_timeout = config.round_timeout_s
        self._prefix = f"fedmd_ray-{uuid.uuid4().hex[:8]}"  # actor names: visible in `ray list actors`
        self._starts = 0
        self._what = f"party actors (each CPU={resources.cpus:g}, GPU={resources.gpus:g})"
        self._timeout = config.actor_start_timeout_s
        self.groups = [[s.party for s in group] for group in groups]
        self.hosts: list[Any] = [self._start(index) for index in range(len(groups))]
        self._data_refs = refs  # keep the shared arrays alive as long as the pool
        self._saved: dict[int, Any] = {}  # host -> ref to its states after its last saving call
        self._seen: dict[int, int] = {}  # host -> progress events already reported
        self._built = [host.describe.remote() for host in self.hosts]  # answered once a host is built
        self._descriptions: list[dict[str, Any]] | None = None

    def wait_ready(self) -> None:
        """Wait until every host is built; ResourceError (hosts stopped) if Ray cannot place them."""
        try:
            self._descriptions = wait_scheduled(self._built, self._timeout, self._what)
        except BaseException:
            self.close()
            raise

    def run(
        self, task: PartyTask[R], parties: Sequence[int], *, timeout: float | None = None, save: bool = False
    ) -> Answers[R]:
        """With `save`, each host's states come back as a second return value that is never
        fetched here: the driver owns it, it stays in the object store (see `SavedStates`)."""
        pending: dict[Any, int] = {}
        states: dict[int, Any] = {}
        for index, (host, group) in enumerate(zip(self.hosts, self.groups)):
            own = host_parties(group, parties)
            if host is None or not own:
                continue
            if save:
                answer, states[index] = host.run_saving.options(num_returns=2).remote(task.for_parties(own), own)
            else:
                answer = host.run.remote(task.for_parties(own), own)
            pending[answer] = index
        ready, late = ray.wait(list(pending), num_returns=len(pending), timeout=timeout)
        results: dict[int, R] = {}
        failures = []
        for ref in ready:
            index = pending[ref]
            try:
                results.update(ray.get(ref, timeout=FETCH_TIMEOUT_S))
                if index in states:
                    self._saved[index] = states[index]
            except ray.exceptions.RayTaskError as exc:  # the party raised: its traceback is in `exc`
                failures.append(
                    HostFailure(
                        index,
                        tuple(self.groups[index]),
                        failure_reason(exc.cause),
                        _plain(exc),
                        repeats_on_restart(exc.cause),
                    )
                )
                _read_failed(states.get(index))
            except ray.exceptions.RayActorError as exc:  # the process died (os._exit, OOM kill, ray.kill, node loss)
                failures.append(HostFailure(index, tuple(self.groups[index]), "its actor died", _plain(exc)))
                _read_failed(states.get(index))
        for ref in late:
            index = pending[ref]
            ray.kill(self.hosts[index])  # a hung host must not answer later
            failures.append(HostFailure(index, tuple(self.groups[index]), f"no answer within {timeout:g} s", ""))
        return Answers(dict(sorted(results.items())), failures)

    def restart(self, host: int, states: dict[int, PartyState] | None) -> HostFailure | None:
        self._kill(host)
        self._seen[host] = 0
        self.hosts[host] = self._start(host)
        descriptions = self.describe_all()
        descriptions[host] = wait_scheduled([self.hosts[host].describe.remote()], self._timeout, self._what)[0]
        return restore(self, states)

    def saved(self) -> SavedStates:
        return SavedStates(tuple((tuple(self.groups[h]), part) for h, part in self._saved.items()))

    def listen(self, callback: Callable[[list[PartyProgress]], None] | None) -> None:
        """Hosts are elsewhere: their progress is polled (`progress`), never pushed."""

    def progress(self) -> list[PartyProgress]:
        """Parties that finished a long task since the last call, asked of every host (each answers
        from a concurrency group of its own while it works); a host that does not answer within a
        few seconds is asked again next time."""
        refs = {
            index: host.progress.remote(self._seen.get(index, 0))
            for index, host in enumerate(self.hosts)
            if host is not None
        }
        ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=5)
        events: list[PartyProgress] = []
        for index, ref in refs.items():
            if ref in ready:
                try:
                    new = ray.get(ref, timeout=FETCH_TIMEOUT_S)
                except ray.exceptions.RayError:  # a host that died: its failure is reported by `run`
                    continue
                self._seen[index] = self._seen.get(index, 0) + len(new)
                events.extend(new)
        return events

    def remove(self, host: int) -> None:
        self._kill(host)
        self.hosts[host] = None
        self._saved.pop(host, None)

    def distribute(self, targets: npt.NDArray[np.float32], rows: dict[int, int] | None) -> Distributed:
        return Distributed(ray.put(targets), rows, self._fetch_timeout)

    def describe(self) -> list[dict[str, Any]]:
        return [d for d, host in zip(self.describe_all(), self.hosts) if host is not None]

    def describe_all(self) -> list[dict[str, Any]]:
        """Every host's description, by host index (fetched once; a copy of the pool in the
        driver actor reads what the hosts answered to `wait_ready`)."""
        if self._descriptions is None:
            self._descriptions = list(ray.get(self._built, timeout=self._timeout))
        return self._descriptions

    def usage(self) -> list[dict[str, Any]]:
        return list(ray.get([host.usage.remote() for host in self.hosts if host is not None], timeout=60))

    def close(self) -> None:
        for index in range(len(self.hosts)):
            self._kill(index)
        self.hosts = []

    def _start(self, index: int) -> Any:
        self._starts += 1
        name = f"{self._prefix}-host{index}-{self._starts}"
        return _HOST_ACTOR.options(name=name, **self._options).remote(self._packed[index], *self._args)

    def _kill(self, host: int) -> None:
        if self.hosts[host] is not None:
            ray.kill(self.hosts[host], no_restart=True)


def _plain(exc: Exception) -> str:
    """Ray's text of a remote failure without its terminal colours: it is logged, often to a file."""
    return re.sub(r"\x1b\[[0-9;]*m", "", str(exc))


def _read_failed(ref: Any) -> None:
    """Read the failed task's second return (its states) once: Ray prints an errored ref that is
    dropped unread as an "Unhandled error", which repeated the party's traceback."""
    if ref is not None:
        with contextlib.suppress(ray.exceptions.RayError):
            ray.get(ref, timeout=FETCH_TIMEOUT_S)


def wait_scheduled(refs: list[Any], timeout_s: float, what: str) -> list[dict[str, Any]]:
    """The answers of actors' `describe.remote()` calls (`refs`), or a clear error when Ray cannot
    place the actors (it would wait forever)."""
    ready, not_ready = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
    if not_ready:
        raise ResourceError(
            f"{len(not_ready)} of {len(refs)} {what} were not scheduled within {timeout_s:g} s; the cluster has "
            f"{_fmt(ray.available_resources())} available of {_fmt(ray.cluster_resources())}. "
            "Lower cpus_per_party/gpus_per_party, raise parties_per_actor, or free the cluster."
        )
    try:
        return list(ray.get(refs, timeout=timeout_s))
    except ray.exceptions.RayError as exc:
        raise RuntimeError(f"{what} failed while starting: {_plain(exc)}") from exc


def gpu_memory_info(gpus: float, timeout_s: float) -> tuple[int, int] | None:
    """(free, total) bytes of a GPU that a `num_gpus=gpus` actor would get; None when
    Ray's GPUs are logical only (no nvidia-smi there)."""

    @ray.remote(num_gpus=gpus)
    def probe() -> tuple[int, int] | None:
        # nvidia-smi answers in ~0.1 s; a CUDA context would cost seconds and memory
        ids = [str(i) for i in ray.get_gpu_ids()]
        query = ["nvidia-smi", "--query-gpu=memory.free,memory.total", "--format=csv,noheader,nounits", "-i", ids[0]]
        try:
            out = subprocess.run(query, capture_output=True, text=True, timeout=30, check=True).stdout
        except (OSError, subprocess.SubprocessError, IndexError):
            return None  # logical GPUs (tests) or no NVIDIA tools: nothing to measure
        free_mib, total_mib = (int(v) for v in out.strip().splitlines()[0].split(","))
        return free_mib * 2**20, total_mib * 2**20

    ref = probe.remote()
    ready, _ = ray.wait([ref], timeout=timeout_s)
    if not ready:
        ray.cancel(ref, force=True)
        raise ResourceError(
            f"no GPU share of {gpus:g} became free within {timeout_s:g} s; the cluster has "
            f"{_fmt(ray.available_resources())} available of {_fmt(ray.cluster_resources())}"
        )
    return ray.get(ref, timeout=timeout_s)


def _fmt(resources: dict[str, float]) -> str:
    return ", ".join(f"{k}={resources.get(k, 0):g}" for k in ("CPU", "GPU"))
