"""Open a driver over its parties, in this process or on Ray, behind one call interface.

`open_driver` yields a function `call(method, *args)` that runs a `Driver`
method and returns its result: a direct call for `backend="local"`, a remote
call on the driver actor for `backend="ray"`. The runner's phase loop is
written once against it.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

from fedmd_ray.actors.driver import Driver
from fedmd_ray.actors.participant import PartySpec, SharedData
from fedmd_ray.actors.pool import LocalPool
from fedmd_ray.config import FedMDConfig

DriverCall = Callable[..., Any]


@contextlib.contextmanager
def open_driver(
    config: FedMDConfig, specs: list[PartySpec], data: SharedData, run_id: str, *, driver_in_process: bool = False
) -> Iterator[DriverCall]:
    """`driver_in_process=True` keeps the driver in this process even on Ray (a Tune
    trial is already a process in its placement group: no extra actor needed)."""
    if config.backend == "local":
        driver = Driver(config, data.public_y, LocalPool(specs, config, data), run_id)
        try:
            yield _direct(driver)
        finally:
            driver.close()
        return
    with _ray_driver(config, specs, data, run_id, driver_in_process) as call:
        yield call


def _direct(driver: Driver) -> DriverCall:
    return lambda method, *args: getattr(driver, method)(*args)


@contextlib.contextmanager
def _ray_driver(
    config: FedMDConfig, specs: list[PartySpec], data: SharedData, run_id: str, in_process: bool
) -> Iterator[DriverCall]:
    import ray

    from fedmd_ray.actors.cluster import check_fits, cluster_totals, ray_session
    from fedmd_ray.actors.ray_pool import RayPool, wait_scheduled

    with ray_session(config):
        resources = check_fits(config, cluster_totals())
        pool = RayPool(specs, config, data, resources)
        if in_process:
            try:
                yield _direct(Driver(config, data.public_y, pool, run_id))
            finally:
                pool.close()
            return
        driver = ray.remote(Driver).options(num_cpus=config.driver_cpus).remote(config, data.public_y, pool, run_id)
        try:
            wait_scheduled([driver], config.actor_start_timeout_s, f"the driver actor (CPU={config.driver_cpus:g})")
            yield lambda method, *args: ray.get(getattr(driver, method).remote(*args))
        finally:
            ray.kill(driver)
            pool.close()
