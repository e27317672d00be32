"""Start or attach to Ray, and check a run fits before asking Ray for actors.

Ray never fails an actor that no node can host: it waits forever. So the
request is compared with the cluster's totals first and refused with numbers:
before a local Ray starts (with this machine's CPUs, GPUs and memory) and again
with what the cluster reports. Attaching to an address waits at most
`connect_timeout_s` (Ray itself retries for minutes).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from typing import Callable, Iterator

import ray

from fedmd_ray.actors.placement import ActorResources, actor_resources
from fedmd_ray.config import FedMDConfig
from fedmd_ray.errors import ResourceError
from fedmd_ray.log import LOGGER, ray_logging_level
from fedmd_ray.signals import terminate_as_interrupt


@contextlib.contextmanager
def ray_session(config: FedMDConfig, precheck: Callable[[dict[str, float]], object] | None = None) -> Iterator[None]:
    """Use the running Ray (and leave it up), attach to `address`, or start one and stop it after.
    `precheck(totals)` runs on this machine's resources before a local Ray is started (default:
    `check_fits`): a refusal costs no Ray start."""
    if ray.is_initialized():
        _check_running_session(config.address)
        LOGGER.info("Ray: the running session (%s)", _describe())
        yield
        return
    address = config.address or os.environ.get("RAY_ADDRESS")
    if address:
        _connect(address, config.connect_timeout_s)
        LOGGER.info("Ray: attached to the cluster at %s (%s)", address, _describe())
    else:
        (precheck or (lambda totals: check_fits(config, totals)))(local_totals())
        # "local": a new instance even where `ray start` left an address in /tmp/ray (Ray would attach to it)
        ray.init(address="local", include_dashboard=False, log_to_driver=True, logging_level=ray_logging_level())
        LOGGER.info("Ray: started a local instance for this command (%s)", _describe())
    try:
        with terminate_as_interrupt():  # again: ray.init replaced the handler
            yield
    finally:
        ray.shutdown()  # for an attached cluster this only disconnects


def _check_running_session(address: str | None) -> None:
    """A config that names a cluster (`address` host:port) must not silently run on the different
    one this process is already attached to: ResourceError naming both."""
    if not address or address == "auto" or address.startswith("ray://"):
        return  # "auto" means whatever runs; a client address is not the GCS address Ray reports
    running = ray.get_runtime_context().gcs_address
    if _endpoint(address) != _endpoint(running):
        raise ResourceError(
            f"Ray is already running in this process, attached to {running}, not to address={address!r}; "
            "call ray.shutdown() first, or drop `address` to use the running session"
        )


def _endpoint(address: str) -> tuple[str, str]:
    """(IP, port) of "host:port" (names resolved where they can be)."""
    host, _, port = address.rpartition(":")
    try:
        return socket.gethostbyname(host), port
    except OSError:
        return host, port


def _describe() -> str:
    totals = ray.cluster_resources()
    return f"{totals.get('CPU', 0):g} CPU, {totals.get('GPU', 0):g} GPU"


def _connect(address: str, timeout_s: float) -> None:
    """`ray.init(address=...)` within `timeout_s`, or ResourceError naming the address."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if address != "auto" and host and port.isdigit():
        try:
            socket.create_connection((host, int(port)), timeout=timeout_s).close()
        except OSError as exc:
            raise ResourceError(
                f"cannot reach the Ray cluster at address={address!r} within {timeout_s:g} s ({exc}); check the "
                "address and that the head node is up (ray start --head), or raise connect_timeout_s"
            ) from None
    failure: list[BaseException] = []

    def attach() -> None:
        try:
            ray.init(address=address, log_to_driver=True, logging_level=ray_logging_level())
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)

    worker = threading.Thread(target=attach, name="fedmd-ray-connect", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise ResourceError(
            f"the Ray cluster at address={address!r} did not accept a connection within {timeout_s:g} s; check the "
            "address, the cluster's auth token (~/.ray/auth_token) and Ray versions, or raise connect_timeout_s"
        )
    if failure:
        raise ResourceError(f"cannot attach to the Ray cluster at address={address!r}: {failure[0]}") from failure[0]


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
    short_cpu, short_gpu = need_cpu > have_cpu + 1e-9, need_gpu > have_gpu + 1e-9
    if short_cpu or short_gpu:
        knobs = [
            name
            for name, short in (
                ("cpus_per_party", short_cpu and res.cpus > 0),
                ("driver_cpus", short_cpu and config.driver_cpus > 0),
                ("gpus_per_party", short_gpu),
            )
            if short
        ]
        raise ResourceError(
            f"{subject} needs CPU={need_cpu:g}, GPU={need_gpu:g} ({res.count} actors x "
            f"CPU={res.cpus:g}, GPU={res.gpus:g}, plus CPU={config.driver_cpus:g} for the driver) but the "
            f"cluster has CPU={have_cpu:g}, GPU={have_gpu:g}; lower {' or '.join(knobs)}, or use a bigger cluster"
        )
    return res


def cluster_totals() -> dict[str, float]:
    """The cluster's resources, with `node_memory`: the largest node's `memory` resource."""
    totals = {k: float(v) for k, v in ray.cluster_resources().items()}
    nodes = [n.get("Resources", {}).get("memory", 0.0) for n in ray.nodes() if n.get("Alive")]
    totals["node_memory"] = float(max(nodes, default=totals.get("memory", 0.0)))
    return totals


def local_totals() -> dict[str, float]:
    """What `ray.init()` would detect on this machine, and its available memory."""
    import torch

    memory = float(_available_memory())
    return {
        "CPU": float(os.cpu_count() or 1),
        "GPU": float(torch.cuda.device_count()),
        "memory": memory,
        "node_memory": memory,
    }


def _available_memory() -> int:
    """Bytes available to new processes (Linux: MemAvailable), else the physical memory."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
