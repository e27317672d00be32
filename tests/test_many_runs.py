"""Twenty runs in one process on a Ray that the caller started: nothing left behind, memory flat.

Runs with `pytest -s` to see the memory of every run."""

import glob
import os
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


def _own_processes() -> set[str]:
    """Pids of this test process's descendants: the Ray it started (raylet, GCS, workers). Other Ray
    clusters on a shared machine are not ours to count."""
    parents = {}
    for path in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = open(path).read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[path.split("/")[2]] = fields[1]
    own, frontier = set(), {str(os.getpid())}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - own
        own |= frontier
    return own


def _actor_processes() -> list[tuple[str, str]]:
    """(pid, process title) of the fedmd_ray actor processes of this test's Ray."""
    found = []
    for pid in _own_processes():
        try:
            name = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if name.startswith(("ray::RemoteHost", "ray::Driver")):
            found.append((pid, name))
    return found


def _ray_processes_mib() -> dict[str, float]:
    """Resident memory of this test's Ray processes: workers (where parties run) and the control plane
    (GCS, raylet, agents)."""
    total = {"workers": 0.0, "control": 0.0}
    for pid in _own_processes():
        path = f"/proc/{pid}/cmdline"
        try:
            argv = open(path, "rb").read().decode(errors="replace").split("\0")
            if not any("ray" in a for a in argv[:3]):
                continue
            kind = "workers" if argv[0].startswith("ray::") or "default_worker.py" in " ".join(argv[:3]) else "control"
            total[kind] += _rss_mib(path.split("/")[2])
        except OSError:
            continue
    return total


@pytest.mark.slow  # ~2-3 min: CI runs it with the slow set
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
        while _actor_processes():  # and their processes have exited
            assert time.monotonic() < deadline, f"actor processes left behind: {_actor_processes()}"
            time.sleep(0.1)
        process.append(_rss_mib())
        cluster.append(_ray_processes_mib())
    print("this process MiB:", [round(m) for m in process])
    print("Ray workers / control plane MiB:", [(round(c["workers"]), round(c["control"])) for c in cluster])
    assert process[-1] < 1.05 * process[1], process
    assert cluster[-1]["workers"] < 1.05 * cluster[1]["workers"] + 1, cluster
    # Ray's control plane (GCS, raylet, agents) keeps records of finished actors and tasks up
    # to its own caps (~1 MiB per run here): reported above, not fedmd_ray's memory.


@pytest.mark.timeout(300)
def test_the_driver_actor_never_loads_torch(ray_cluster):
    """The driver routes indices, scores and states; torch there would cost every run ~1.2 s of
    CPU while the hosts start, and its memory for the whole run."""
    from fedmd_ray.actors.backends import open_driver
    from fedmd_ray.experiment import prepare

    config = fedmd_ray.preset("quick", **TINY)
    experiment = prepare(config)
    specs, data = experiment.party_inputs()
    with open_driver(experiment.setup, specs, data, "test") as driver:
        driver.transfer_learn()
        driver.run_round(1)
        states = driver.export_states().parties.resolve()
        maps = {(pid, name.split(".")[0]): open(f"/proc/{pid}/maps").read() for pid, name in _actor_processes()}
    assert sorted(states) == list(range(config.n_parties))
    drivers = [m for (_, kind), m in maps.items() if kind == "ray::DriverActor"]
    hosts = [m for (_, kind), m in maps.items() if kind == "ray::RemoteHost"]
    assert len(drivers) == 1 and len(hosts) == 2
    assert "libtorch" not in drivers[0]
    assert all("libtorch" in m for m in hosts)  # the check can see torch where it is
