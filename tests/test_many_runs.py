"""Twenty runs in one process on a Ray that the caller started: nothing left behind, memory flat."""

import glob
import time

import pytest

import fedmd_ray

TINY = dict(rounds=1, upper_bound=False, pretrain_epochs=1, private_epochs=2, subset_size=100, torch_threads=1)


def _rss_mib(pid: str = "self") -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _ray_processes_mib() -> float:
    """Resident memory of every Ray process on this machine (GCS, raylet, workers)."""
    total = 0.0
    for path in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            cmdline = open(path, "rb").read().decode(errors="replace")
            if "ray" in cmdline and ("raylet" in cmdline or "gcs_server" in cmdline or "default_worker" in cmdline):
                total += _rss_mib(path.split("/")[2])
        except OSError:
            continue
    return total


@pytest.mark.timeout(600)
def test_twenty_runs_leave_no_actors_and_flat_memory(ray_cluster):
    ray = ray_cluster
    process, cluster = [], []
    for _ in range(20):
        table = fedmd_ray.run(fedmd_ray.preset("quick", **TINY), verbose=False)
        assert table.num_rows == 3 * 2
        assert ray.is_initialized()  # the caller's Ray stays up
        # every actor of the run is gone: all resources are free again (ray.kill is asynchronous)
        deadline = time.monotonic() + 15
        while ray.available_resources().get("CPU", 0) < ray.cluster_resources()["CPU"]:
            assert time.monotonic() < deadline, f"actors left behind: {ray.available_resources()}"
            time.sleep(0.1)
        process.append(_rss_mib())
        cluster.append(_ray_processes_mib())
    assert process[-1] < 1.05 * process[1], process
    assert cluster[-1] < 1.05 * cluster[1], cluster
