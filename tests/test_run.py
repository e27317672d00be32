"""End-to-end runs of the `quick` preset on both backends, and the checks before Ray starts."""

from __future__ import annotations

import json
import time

import numpy as np
import pyarrow as pa
import pytest
import torch

import fedmd_ray
from fedmd_ray.analysis.schema import RESULT_SCHEMA
from fedmd_ray.errors import ConfigError, ResourceError

QUICK = dict(rounds=2, torch_threads=1)


def _metrics(table: pa.Table) -> list[tuple]:
    cols = ["party", "model", "phase", "round", "test_accuracy", "test_loss"]
    return list(zip(*(table[c].to_pylist() for c in cols)))


@pytest.fixture(scope="module")
def local_table(tmp_path_factory):
    out = tmp_path_factory.mktemp("quick-local")
    return fedmd_ray.run(fedmd_ray.preset("quick", backend="local", **QUICK), out_dir=out, verbose=False), out


def test_local_run_table_has_the_design_schema(local_table):
    table, out = local_table
    assert table.schema == RESULT_SCHEMA
    cfg = fedmd_ray.preset("quick", **QUICK)
    # per party: round 0 (transfer) + upper bound + one row per round
    assert table.num_rows == cfg.n_parties * (2 + cfg.rounds)
    phases = table.group_by(["phase", "round"]).aggregate([("party", "count")]).to_pylist()
    assert sorted((p["phase"], p["round"], p["party_count"]) for p in phases if p["round"] is not None) == [
        ("collaborate", 1, 3),
        ("collaborate", 2, 3),
        ("transfer", 0, 3),
    ]
    assert [(p["phase"], p["party_count"]) for p in phases if p["round"] is None] == [("upper_bound", 3)]
    # the upper bound belongs to no round: a per-round mean is the parties' mean, round 0 included
    df = table.to_pandas()
    assert df.groupby("round")["test_accuracy"].mean().loc[0] == pytest.approx(
        df[df["phase"] == "transfer"]["test_accuracy"].mean()
    )
    accuracies = table["test_accuracy"].to_pylist()
    assert all(0.0 <= a <= 1.0 for a in accuracies)
    assert table["model"].to_pylist()[:3] == list(cfg.party_models)


def test_local_run_writes_parquet_and_config(local_table):
    table, out = local_table
    assert fedmd_ray.load_results(out).equals(table)
    saved = json.loads((out / "config.json").read_text())
    assert fedmd_ray.FedMDConfig.from_dict(saved["config"]).fingerprint() == saved["fingerprint"]
    assert saved["config"]["rounds"] == 2
    # what else the numbers depend on: two runs that should agree but do not can be told apart
    assert saved["numpy"] == np.__version__ and saved["torch"] == torch.__version__
    assert saved["cpu"].endswith(torch.backends.cpu.get_cpu_capability())


def test_quick_models_learn_the_private_task(local_table):
    table, _ = local_table
    from fedmd_ray.analysis.summary import summarize

    summary = summarize(table)
    assert summary.baseline > 0.5  # 5 private classes: chance is 0.2
    assert summary.upper_bound > summary.baseline + 0.05  # pooled private data helps


def test_parties_per_actor_does_not_change_results(local_table):
    table, _ = local_table
    grouped = fedmd_ray.run(fedmd_ray.preset("quick", backend="local", parties_per_actor=2, **QUICK), verbose=False)
    assert _metrics(grouped) == _metrics(table)


def test_ray_backend_matches_local_and_leaves_ray_up(ray_cluster, local_table):
    table, _ = local_table
    remote = fedmd_ray.run(fedmd_ray.preset("quick", backend="ray", **QUICK), verbose=False)
    # Same seed, same torch thread count, CPU: bit-identical accuracies and losses.
    assert _metrics(remote) == _metrics(table)
    assert ray_cluster.is_initialized()
    _assert_all_resources_released(ray_cluster)


def _assert_all_resources_released(ray, timeout_s: float = 15.0) -> None:
    """Every actor of the run is gone once its CPUs are free again (the state API needs a dashboard)."""
    deadline = time.monotonic() + timeout_s
    while ray.available_resources().get("CPU", 0) < ray.cluster_resources()["CPU"]:
        assert time.monotonic() < deadline, f"actors left behind: {ray.available_resources()}"
        time.sleep(0.2)


def test_cluster_too_small_is_refused_before_any_actor(ray_cluster):
    with pytest.raises(ResourceError, match=r"needs CPU=3.*cluster has CPU=2"):
        fedmd_ray.run(fedmd_ray.preset("quick", cpus_per_party=1.0), verbose=False)


def test_gpu_without_gpu_is_refused(ray_cluster):
    with pytest.raises(ResourceError, match="no GPU"):
        fedmd_ray.run(fedmd_ray.preset("quick", gpus_per_party=0.5), verbose=False)


def test_an_address_other_than_the_running_sessions_is_refused(ray_cluster, tmp_path):
    running = ray_cluster.get_runtime_context().gcs_address
    with pytest.raises(ResourceError, match=r"already running in this process, attached to .*address='127.0.0.1:1'"):
        fedmd_ray.run(fedmd_ray.preset("quick", address="127.0.0.1:1"), out_dir=tmp_path / "r", verbose=False)
    assert not (tmp_path / "r").exists()
    table = fedmd_ray.run(fedmd_ray.preset("quick", address=running, rounds=0, upper_bound=False), verbose=False)
    assert table.num_rows == 3


def test_busy_cluster_times_out_instead_of_hanging(ray_cluster):
    ray = ray_cluster

    @ray.remote(num_cpus=2)
    class Hog:
        def ping(self) -> int:
            return 1

    hog = Hog.remote()
    ray.get(hog.ping.remote(), timeout=60)
    try:
        with pytest.raises(ResourceError, match="not scheduled within 3 s"):
            fedmd_ray.run(fedmd_ray.preset("quick", cpus_per_party=0.5, actor_start_timeout_s=3), verbose=False)
    finally:
        ray.kill(hog)
    _assert_all_resources_released(ray)


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (dict(subset_size=5000), "subset_size=5000 exceeds the public set (701 images)"),
        (dict(samples_per_class=100), "exceeds the 134 training images of private class"),
        (dict(public_size=10_000), "public_size=10000 exceeds the public set"),
    ],
)
def test_data_dependent_checks_run_before_ray(overrides, fragment, monkeypatch, tmp_path):
    import ray

    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray must not start for a bad config"))
    with pytest.raises(ConfigError) as err:
        fedmd_ray.run(fedmd_ray.preset("quick", **overrides), out_dir=tmp_path / "out", verbose=False)
    assert fragment in str(err.value)
    assert not (tmp_path / "out").exists()  # a rejected run leaves nothing on disk


def test_results_are_never_silently_replaced(local_table):
    _, out = local_table
    before = (out / "results.parquet").read_bytes()
    with pytest.raises(ConfigError, match="already holds"):
        fedmd_ray.run(fedmd_ray.preset("quick", backend="local", rounds=0), out_dir=out, verbose=False)
    assert (out / "results.parquet").read_bytes() == before
