"""Open a driver over its parties, in this process or on Ray, behind one typed interface.

`open_driver` yields a `DriverHandle`: the `Driver` itself for `backend="local"` (and
inside a Tune trial), a `RemoteDriver` forwarding each method to the driver actor for
`backend="ray"`. The runner's phase loop is written once against it.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, Iterator, Protocol, Sequence

import numpy as np
import numpy.typing as npt

from fedmd_ray.actors.driver import Driver, DriverActor, Row, Snapshot
from fedmd_ray.actors.gpu_memory import check_gpu_packing, check_host_packing, estimate_groups
from fedmd_ray.actors.messages import HostSetup, PartyProgress, PartySpec, PartyState, SharedData
from fedmd_ray.actors.placement import ActorResources, assign_parties, party_costs
from fedmd_ray.actors.pool import LocalPool, PartyPool
from fedmd_ray.actors.portable import Portable
from fedmd_ray.config import FedMDConfig
from fedmd_ray.errors import FedMDError, ResourceError
from fedmd_ray.log import LOGGER, emit_taken
from fedmd_ray.strategy import StrategyState


class DriverHandle(Protocol):
    """What the runner and a Tune trial call on a driver, wherever it runs."""

    def describe(self) -> list[dict[str, Any]]: ...

    def transfer_learn(
        self, cache_root: str | None = None, on_progress: Callable[[list[PartyProgress]], None] | None = None
    ) -> list[Row]: ...

    def run_round(self, round_: int) -> list[Row]: ...

    def export_states(self) -> Snapshot: ...

    def export_models(self) -> dict[int, PartyState]: ...

    def import_states(self, states: dict[int, PartyState], strategy_state: StrategyState) -> None: ...

    def usage(self) -> dict[str, Any]: ...


@contextlib.contextmanager
def open_driver(
    setup: HostSetup,
    specs: list[PartySpec],
    data: SharedData,
    run_id: str,
    *,
    driver_in_process: bool = False,
    save_states: bool = True,
) -> Iterator[DriverHandle]:
    """`driver_in_process=True` keeps the driver in this process even on Ray (a Tune
    trial is already a process in its placement group: no extra actor needed).
    `save_states=False` when no checkpoints are written (see `Driver`)."""
    config = setup.config
    if config.backend == "local":
        _check_local_gpu(setup)
        from fedmd_ray.actors.cluster import local_totals

        check_host_memory(setup, [specs], data, local_totals())  # one process holds every party
        driver = _driver(setup, specs, data, LocalPool([specs], setup, data), run_id, save_states)
        try:
            yield driver
        finally:
            driver.close()
        return
    with _ray_driver(setup, specs, data, run_id, driver_in_process, save_states) as handle:
        yield handle


def _driver(
    setup: HostSetup, specs: list[PartySpec], data: SharedData, pool: PartyPool, run_id: str, save_states: bool
) -> Driver:
    models = [s.model.name for s in sorted(specs, key=lambda s: s.party)]
    counts = label_counts(specs, data, setup.n_classes)
    return Driver(setup.config, setup.strategy, models, data.public_y, pool, run_id, save_states, counts)


def label_counts(specs: list[PartySpec], data: SharedData, n_classes: int) -> npt.NDArray[np.int64]:
    """(parties, classes): how many private images of each class each party holds (`RoundInfo.label_counts`)."""
    ordered = sorted(specs, key=lambda s: s.party)
    return np.stack([np.bincount(data.private_y[s.private_idx], minlength=n_classes) for s in ordered]).astype(np.int64)


def _check_local_gpu(setup: HostSetup) -> None:
    """The local backend would quietly fall back to the CPU; Ray's would refuse (see `check_fits`)."""
    import torch

    if setup.config.gpus_per_party > 0 and not torch.cuda.is_available():
        raise ResourceError(
            f"gpus_per_party={setup.config.gpus_per_party:g} but torch sees no GPU here; set gpus_per_party=0 "
            "or run on a machine with a GPU"
        )


def host_groups(
    setup: HostSetup, specs: list[PartySpec], data: SharedData, sizes: Sequence[int]
) -> list[list[PartySpec]]:
    """The parties of each host, balanced by estimated work (see `actors.placement`)."""
    c, h, w = data.public_x.shape[1:]
    private_sizes = [len(s.private_idx) for s in specs]
    costs = party_costs(
        setup.config, [s.model for s in specs], private_sizes, (c, h, w), setup.n_classes, len(data.test_y)
    )
    return [[specs[p] for p in group] for group in assign_parties(costs, sizes)]


def preflight(
    setup: HostSetup,
    specs: list[PartySpec],
    data: SharedData,
    totals: dict[str, float],
    *,
    subject: str = "the run",
    memory: bool = True,
) -> tuple[ActorResources, list[list[PartySpec]]]:
    """The one cluster check of a run and of a sweep's trials, before anything starts: its host actors fit
    the cluster's CPUs and GPUs (`cluster.check_fits`), and (`memory`) their parties' estimated host
    memory fits the cluster's (`check_host_memory`). The hosts' resources and parties."""
    from fedmd_ray.actors.cluster import check_fits

    resources = check_fits(setup.config, totals, subject=subject)
    groups = host_groups(setup, specs, data, resources.sizes)
    if memory:
        check_host_memory(setup, groups, data, totals, subject=subject)
    return resources, groups


def check_host_memory(
    setup: HostSetup,
    groups: list[list[PartySpec]],
    data: SharedData,
    totals: dict[str, float],
    subject: str = "the run",
) -> None:
    """Refuse hosts that cannot fit the cluster's (or this machine's) memory, with the numbers
    (see `actors.gpu_memory`); skipped when the cluster reports no memory."""
    if not totals.get("memory"):
        return
    shared = sum(getattr(data, name).nbytes for name in data.__dataclass_fields__)
    estimates = estimate_groups(setup, groups, data, device="cpu")
    check_host_packing(estimates, shared, totals["memory"], totals.get("node_memory", totals["memory"]), subject)


def host_memory_bytes(setup: HostSetup, groups: list[list[PartySpec]], data: SharedData) -> float:
    """The estimated host memory of a run's hosts and its shared arrays (`actors.gpu_memory`)."""
    shared = sum(getattr(data, name).nbytes for name in data.__dataclass_fields__)
    return float(sum(e.bytes for e in estimate_groups(setup, groups, data, device="cpu")) + shared)


def check_gpu_memory(
    setup: HostSetup, groups: list[list[PartySpec]], data: SharedData, resources: ActorResources
) -> None:
    """Refuse hosts that cannot fit their GPU's free memory (see `actors.gpu_memory`)."""
    if resources.gpus <= 0:
        return
    from fedmd_ray.actors.ray_pool import gpu_memory_info

    memory = gpu_memory_info(resources.gpus, setup.config.actor_start_timeout_s)
    if memory is None:
        return
    check_gpu_packing(estimate_groups(setup, groups, data), resources.gpus, *memory)


@contextlib.contextmanager
def _ray_driver(
    setup: HostSetup, specs: list[PartySpec], data: SharedData, run_id: str, in_process: bool, save_states: bool
) -> Iterator[DriverHandle]:
    import ray

    from fedmd_ray.actors.cluster import cluster_totals, ray_session
    from fedmd_ray.actors.ray_pool import RayPool, wait_scheduled

    config = setup.config

    def check_cluster(totals: dict[str, float]) -> tuple[ActorResources, list[list[PartySpec]]]:
        # a sweep checks its trials' memory before they start (see sweeps.tuner)
        return preflight(setup, specs, data, totals, memory=not in_process)

    with ray_session(config, precheck=check_cluster):  # checked on this machine before a local Ray starts
        resources, groups = check_cluster(cluster_totals())
        if not in_process:
            check_gpu_memory(setup, groups, data, resources)
        pool: PartyPool
        if in_process and resources.count == 1:
            # A Tune trial whose parties fit one host: its own process (already holding
            # their CPU/GPU share, see `sweeps.tuner.placement_for`) hosts them, which
            # saves an actor start per trial.
            pool = LocalPool(groups, setup, data, threads=resources.threads, gpus=resources.gpus)
        else:
            pool = RayPool(groups, setup, data, resources)  # hosts starting
        if in_process:
            try:
                pool.wait_ready()
                yield _driver(setup, specs, data, pool, run_id, save_states)
            finally:
                pool.close()
            return
        actor = _start_driver_actor(setup, specs, data, pool, run_id, save_states)
        try:
            pool.wait_ready()
            wait_scheduled(
                [actor.describe.remote()],
                config.actor_start_timeout_s,
                f"the driver actor (CPU={config.driver_cpus:g})",
            )
            yield RemoteDriver(actor, pool, _driver_call_bound(config))
        finally:
            ray.kill(actor)
            pool.close()


def _start_driver_actor(
    setup: HostSetup, specs: list[PartySpec], data: SharedData, pool: PartyPool, run_id: str, save_states: bool
) -> Any:
    """The driver actor, on the caller's node (losing a worker node then costs parties, not the run); it
    starts while the hosts start."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    config = setup.config
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
    models = [s.model.name for s in sorted(specs, key=lambda s: s.party)]
    log_group = {DriverActor.LOG_GROUP: 1}
    driver_actor = ray.remote(concurrency_groups=log_group)(DriverActor)  # type: ignore[call-overload]
    return driver_actor.options(num_cpus=config.driver_cpus, scheduling_strategy=here).remote(
        Portable.wrap((config, setup.strategy)),
        LOGGER.getEffectiveLevel(),
        models,
        data.public_y,
        pool,
        run_id,
        save_states,
        label_counts(specs, data, setup.n_classes),
    )


def _driver_call_bound(config: FedMDConfig) -> float | None:
    """The longest a phase can take on the driver: every party attempt (the first and each restart)
    waits at most `round_timeout_s` and each restart at most `actor_start_timeout_s` for its actor;
    twice that, plus a margin. None when `round_timeout_s` is None (the user's choice)."""
    if config.round_timeout_s is None:
        return None
    attempts = config.max_party_restarts + 1
    return 2 * attempts * (config.round_timeout_s + config.actor_start_timeout_s) + 300.0


POLL_S = 3.0  # how often a waiting call relays the driver's log records and asks the hosts' progress


class RemoteDriver:
    """A `DriverHandle` over the driver actor. The actor bounds its own waits on parties
    (`round_timeout_s`, per failure), and every call here is bounded by what those allow
    (`_driver_call_bound`); an error the user can act on (a FedMDError such as
    PartyFailure) comes back as itself, not wrapped in Ray's traceback. While a call runs,
    the driver's log records are emitted here every few seconds, and all of them before
    the call returns (see `DriverActor`)."""

    def __init__(self, actor: Any, pool: PartyPool, timeout_s: float | None) -> None:
        self._actor = actor
        self._pool = pool  # this process's handles to the hosts: progress is polled from here
        self._timeout_s = timeout_s

    def describe(self) -> list[dict[str, Any]]:
        return list(self._get(self._actor.describe.remote()))

    def transfer_learn(
        self, cache_root: str | None = None, on_progress: Callable[[list[PartyProgress]], None] | None = None
    ) -> list[Row]:
        """The driver actor's transfer learning; meanwhile the hosts are asked every few seconds which
        parties are done, for `on_progress`."""
        report = None if on_progress is None else lambda: self._report(on_progress)
        rows = list(self._get(self._actor.transfer_learn.remote(cache_root), report))
        if report is not None:
            report()
        return rows

    def run_round(self, round_: int) -> list[Row]:
        return list(self._get(self._actor.run_round.remote(round_)))

    def export_states(self) -> Snapshot:
        snapshot: Snapshot = self._get(self._actor.export_states.remote())
        return snapshot

    def export_models(self) -> dict[int, PartyState]:
        return dict(self._get(self._actor.export_models.remote()))

    def import_states(self, states: dict[int, PartyState], strategy_state: StrategyState) -> None:
        self._get(self._actor.import_states.remote(states, strategy_state))

    def usage(self) -> dict[str, Any]:
        return dict(self._get(self._actor.usage.remote()))

    def _report(self, on_progress: Callable[[list[PartyProgress]], None]) -> None:
        done = self._pool.progress()
        if done:
            on_progress(done)

    def _relay_log(self) -> None:
        """The driver's log records so far, emitted here; none when the actor is gone."""
        import ray

        from fedmd_ray.actors.ray_pool import FETCH_TIMEOUT_S

        call = self._actor.take_log_records.options(concurrency_group=DriverActor.LOG_GROUP).remote()
        with contextlib.suppress(ray.exceptions.RayError):
            emit_taken(ray.get(call, timeout=FETCH_TIMEOUT_S))

    def _get(self, ref: Any, while_waiting: Callable[[], None] | None = None) -> Any:
        import ray

        from fedmd_ray.actors.ray_pool import FETCH_TIMEOUT_S

        deadline = None if self._timeout_s is None else time.monotonic() + self._timeout_s
        try:
            while not ray.wait([ref], timeout=POLL_S)[0]:
                self._relay_log()
                if while_waiting is not None:
                    while_waiting()
                if deadline is not None and time.monotonic() > deadline:
                    raise ResourceError(
                        f"the driver actor did not answer within {self._timeout_s:g} s, longer than round_timeout_s "
                        "and its restarts allow: the cluster may be overloaded or the driver's node lost"
                    )
            return ray.get(ref, timeout=FETCH_TIMEOUT_S)  # ready: this only fetches it
        except ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, FedMDError):
                raise exc.cause from None
            raise
        finally:
            self._relay_log()
