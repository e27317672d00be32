"""How a sweep fills a cluster by default (`sweeps.plan`), on this machine and on simulated larger ones."""

from __future__ import annotations

import pytest

from fedmd_ray.sweeps.plan import plan_sweep

GIB = 2**30


@pytest.mark.parametrize(
    "cluster, trials, parties, share, at_once",
    [
        (dict(cpus=2), 4, 3, 0.15, 4),  # this machine, 4 quick trials: all at once, one process each
        (dict(cpus=2), 100, 10, 0.04, 4),  # many trials on few cores: each still gets ~half a core
        (dict(cpus=16), 8, 10, 0.19, 8),
        (dict(cpus=64), 4, 10, 1.0, 6),  # a big box: one CPU per party, never six threads per tiny model
        (dict(cpus=64), 100, 10, 0.05, 116),
        (dict(cpus=64, gpus=4), 8, 10, 0.79, 4),  # 0.1 GPU per party: four trials fill four GPUs
    ],
)
def test_a_sweep_fills_the_cluster_at_an_efficient_share(cluster, trials, parties, share, at_once):
    gpus_per_party = 0.1 if cluster.get("gpus") else 0.0
    plan = plan_sweep(trials=trials, parties=parties, gpus_per_party=gpus_per_party, **cluster)
    assert plan.cpus_per_party == pytest.approx(share)
    assert plan.at_once == at_once and plan.max_concurrent is None
    assert plan.at_once * plan.trial_cpus <= cluster["cpus"]


def test_memory_caps_the_trials_at_once():
    plan = plan_sweep(trials=20, parties=3, cpus=16, memory=8 * GIB, trial_bytes=2 * GIB)
    assert plan.at_once == plan.max_concurrent == 3  # 80 % of 8 GiB holds three trials of 2 GiB


def test_the_users_numbers_still_decide():
    one_at_a_time = plan_sweep(trials=4, parties=3, cpus=2, max_concurrent=1)
    assert one_at_a_time.max_concurrent == 1 and one_at_a_time.cpus_per_party == pytest.approx(0.65)
    fixed = plan_sweep(trials=4, parties=3, cpus=64, cpus_per_party=2.0)
    assert fixed.cpus_per_party == 2.0 and fixed.at_once == 10
