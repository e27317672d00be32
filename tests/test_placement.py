"""Parties onto host actors: how many actors, what each asks for, who goes where."""

import pytest

import fedmd_ray
from fedmd_ray.actors.placement import actor_resources, assign_parties, party_costs
from fedmd_ray.errors import ResourceError
from fedmd_ray.models import footprint


def test_auto_starts_one_actor_per_whole_cpu():
    res = actor_resources(fedmd_ray.preset("offline"), {"CPU": 2.0})
    assert res.sizes == (5, 5)
    assert res.cpus * res.count + 0.05 <= 2.0 and res.threads == 1


def test_auto_never_starts_more_actors_than_parties():
    res = actor_resources(fedmd_ray.preset("quick"), {"CPU": 16.0})
    assert res.sizes == (1, 1, 1) and res.threads == 5


def test_thousand_parties_on_two_cores_use_two_actors():
    res = actor_resources(fedmd_ray.preset("offline", n_parties=1000), {"CPU": 2.0})
    assert res.sizes == (500, 500)


def test_explicit_cpus_per_party_bounds_the_total_request():
    res = actor_resources(fedmd_ray.preset("quick", cpus_per_party=0.5), {})
    assert res.count == 2  # 1.5 CPUs for the parties
    assert res.cpus * res.count <= 1.5


def test_explicit_parties_per_actor():
    res = actor_resources(fedmd_ray.preset("offline", parties_per_actor=3, cpus_per_party=0.1), {})
    assert res.sizes == (3, 3, 2, 2) and res.cpus == pytest.approx(0.3)


def test_a_request_ray_cannot_express_is_refused():
    with pytest.raises(ResourceError, match="whole number"):
        actor_resources(fedmd_ray.preset("offline", parties_per_actor=3, cpus_per_party=0.5), {})


def test_gpu_share_scales_with_parties_per_actor():
    res = actor_resources(fedmd_ray.preset("offline", gpus_per_party=0.1), {"CPU": 16.0, "GPU": 1.0})
    assert res.count == 10 and res.gpus == pytest.approx(0.1)


def test_lpt_balances_work_and_places_every_party_once():
    costs = [9.0, 1.0, 1.0, 8.0, 2.0, 2.0, 3.0, 3.0]
    groups = assign_parties(costs, [4, 4])
    assert sorted(p for g in groups for p in g) == list(range(8))
    assert all(g == sorted(g) for g in groups)
    loads = [sum(costs[p] for p in g) for g in groups]
    assert loads == [14.0, 15.0] or loads == [15.0, 14.0]
    assert assign_parties(costs, [4, 4]) == groups  # deterministic


def test_lpt_respects_sizes():
    groups = assign_parties([100.0, 1.0, 1.0, 1.0, 1.0], [3, 2])
    assert [len(g) for g in groups] == [3, 2]
    assert 0 in groups[0] and len(groups[0]) == 3


def test_costs_rank_models_by_work():
    config = fedmd_ray.preset("offline", models=("mlp-128", "cnn3-6-12-24"), n_parties=2)
    mlp, cnn = party_costs(config, [15, 15], (1, 28, 28), 10, 1000)
    assert cnn > 5 * mlp
    more_data = party_costs(config, [15, 300], (1, 28, 28), 10, 1000)[1]
    assert more_data > cnn


def test_footprint_counts_parameters():
    fp = footprint("mlp-128", (1, 28, 28), 10)
    assert fp.params == 784 * 128 + 128 + 128 * 10  # output layer has no bias
    assert fp.flops >= 2 * (784 * 128 + 128 * 10)
