"""Start or attach to Ray, and check a run fits before asking Ray for actors.

Ray never fails an actor that no node can host: it waits forever. So the
request is compared with the cluster's totals first and refused with numbers.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import ray

from fedmd_ray.actors.placement import ActorResources, actor_resources
from fedmd_ray.config import FedMDConfig
from fedmd_ray.errors import ResourceError


@contextlib.contextmanager
def ray_session(config: FedMDConfig) -> Iterator[None]:
    """Use the running Ray (and leave it up), attach to `address`, or start one and stop it after."""
    if ray.is_initialized():
        yield
        return
    address = config.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        check_fits(config, _local_totals())  # refuse before paying for a Ray start
        ray.init(include_dashboard=False, log_to_driver=True)
    try:
        yield
    finally:
        ray.shutdown()  # for an attached cluster this only disconnects


def check_fits(config: FedMDConfig, totals: dict[str, float], subject: str = "the run") -> ActorResources:
    """The request of a run (or of one sweep trial: `subject`) against the cluster's totals;
    ResourceError with both when it cannot fit."""
    res = actor_resources(config, totals)
    need_cpu = res.cpus * res.count + config.driver_cpus
    need_gpu = res.gpus * res.count
    have_cpu, have_gpu = totals.get("CPU", 0.0), totals.get("GPU", 0.0)
    if need_gpu > 0 and have_gpu == 0:
        raise ResourceError(
            f"gpus_per_party={config.gpus_per_party:g} but the cluster has no GPU; set gpus_per_party=0 "
            "or attach to a cluster with GPUs (--set address=...)"
        )
    if need_cpu > have_cpu + 1e-9 or need_gpu > have_gpu + 1e-9:
        raise ResourceError(
            f"{subject} needs CPU={need_cpu:g}, GPU={need_gpu:g} ({res.count} actors x "
            f"CPU={res.cpus:g}, GPU={res.gpus:g}, plus CPU={config.driver_cpus:g} for the driver) but the "
            f"cluster has CPU={have_cpu:g}, GPU={have_gpu:g}; lower cpus_per_party/gpus_per_party, "
            "raise parties_per_actor, or use a bigger cluster"
        )
    return res


def cluster_totals() -> dict[str, float]:
    return {k: float(v) for k, v in ray.cluster_resources().items()}


def _local_totals() -> dict[str, float]:
    """What `ray.init()` would detect on this machine."""
    import torch

    return {"CPU": float(os.cpu_count() or 1), "GPU": float(torch.cuda.device_count())}
