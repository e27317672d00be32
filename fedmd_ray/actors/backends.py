"""Open a driver over its parties, in this process or on Ray, behind one call interface.

`open_driver` yields a function `call(method, *args)` that runs a `Driver`
method and returns its result: a direct call for `backend="local"`, a remote
call on the driver actor for `backend="ray"`. The runner's phase loop is
written once against it.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Sequence

from fedmd_ray.actors.driver import Driver
from fedmd_ray.actors.common import PartySpec, SharedData
from fedmd_ray.actors.gpu_memory import check_gpu_packing, estimate_groups
from fedmd_ray.actors.placement import ActorResources, assign_parties, party_costs
from fedmd_ray.actors.local_pool import LocalPool
from fedmd_ray.actors.pool import PartyPool
from fedmd_ray.config import FedMDConfig
from fedmd_ray.errors import FedMDError, ResourceError

DriverCall = Callable[..., Any]


@contextlib.contextmanager
def open_driver(
    config: FedMDConfig, specs: list[PartySpec], data: SharedData, run_id: str, *, driver_in_process: bool = False,
    save_states: bool = True,
) -> Iterator[DriverCall]:
    """`driver_in_process=True` keeps the driver in this process even on Ray (a Tune
    trial is already a process in its placement group: no extra actor needed).
    `save_states=False` when no checkpoints are written (see `Driver`)."""
    if config.backend == "local":
        _check_local_gpu(config)
        driver = Driver(config, data.public_y, LocalPool([specs], config, data), run_id, save_states)
        try:
            yield _direct(driver)
        finally:
            driver.close()
        return
    with _ray_driver(config, specs, data, run_id, driver_in_process, save_states) as call:
        yield call


def _check_local_gpu(config: FedMDConfig) -> None:
    """The local backend would quietly fall back to the CPU; Ray's would refuse (see `check_fits`)."""
    import torch

    if config.gpus_per_party > 0 and not torch.cuda.is_available():
        raise ResourceError(
            f"gpus_per_party={config.gpus_per_party:g} but torch sees no GPU here; set gpus_per_party=0 "
            "or run on a machine with a GPU"
        )


def host_groups(
    config: FedMDConfig, specs: list[PartySpec], data: SharedData, sizes: Sequence[int]
) -> list[list[PartySpec]]:
    """The parties of each host, balanced by estimated work (see `actors.placement`)."""
    shape = data.public_x.shape[1:]
    private_sizes = [len(s.private_idx) for s in specs]
    costs = party_costs(config, private_sizes, (shape[0], shape[1], shape[2]), config.n_classes, len(data.test_y))
    return [[specs[p] for p in group] for group in assign_parties(costs, sizes)]


def check_gpu_memory(
    config: FedMDConfig, groups: list[list[PartySpec]], data: SharedData, resources: ActorResources
) -> None:
    """Refuse hosts that cannot fit their GPU's free memory (see `actors.gpu_memory`)."""
    if resources.gpus <= 0:
        return
    from fedmd_ray.actors.ray_pool import gpu_memory_info

    memory = gpu_memory_info(resources.gpus, config.actor_start_timeout_s)
    if memory is None:
        return
    check_gpu_packing(estimate_groups(config, groups, data), resources.gpus, *memory)


def _direct(driver: Driver) -> DriverCall:
    return lambda method, *args: getattr(driver, method)(*args)


@contextlib.contextmanager
def _ray_driver(
    config: FedMDConfig, specs: list[PartySpec], data: SharedData, run_id: str, in_process: bool, save_states: bool
) -> Iterator[DriverCall]:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from fedmd_ray.actors.cluster import check_fits, cluster_totals, ray_session
    from fedmd_ray.actors.ray_pool import RayPool, wait_scheduled

    with ray_session(config):
        resources = check_fits(config, cluster_totals())
        groups = host_groups(config, specs, data, resources.sizes)
        if not in_process:  # a sweep checks its trials before they start (see sweeps.tuner)
            check_gpu_memory(config, groups, data, resources)
        pool: PartyPool
        if in_process and resources.count == 1:
            # A Tune trial whose parties fit one host: its own process (already holding
            # their CPU/GPU share, see `sweeps.tuner.placement_for`) hosts them, which
            # saves an actor start per trial.
            pool = LocalPool(groups, config, data, threads=resources.threads, gpus=resources.gpus)
        else:
            pool = RayPool(groups, config, data, resources)  # hosts starting
        if in_process:
            try:
                pool.wait_ready()
                yield _direct(Driver(config, data.public_y, pool, run_id, save_states))
            finally:
                pool.close()
            return
        # The driver lives on the caller's node: losing a worker node then costs parties, not the run.
        # It starts while the hosts start.
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
        driver = ray.remote(Driver).options(num_cpus=config.driver_cpus, scheduling_strategy=here).remote(
            config, data.public_y, pool, run_id, save_states
        )
        try:
            pool.wait_ready()
            wait_scheduled([driver.describe.remote()], config.actor_start_timeout_s,
                           f"the driver actor (CPU={config.driver_cpus:g})")
            yield _remote(driver)
        finally:
            ray.kill(driver)
            pool.close()


def _remote(driver: Any) -> DriverCall:
    """Calls on the driver actor; an error the user can act on (a FedMDError such as
    PartyFailure) comes back as itself, not wrapped in Ray's traceback."""
    import ray

    def call(method: str, *args: Any) -> Any:
        try:
            return ray.get(getattr(driver, method).remote(*args))
        except ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, FedMDError):
                raise exc.cause from None
            raise

    return call
