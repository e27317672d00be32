"""Parties onto host actors: how many actors, what each asks for, who goes where."""

import pytest
import torch

import fedmd_ray
from fedmd_ray.actors.placement import actor_resources, assign_parties, party_costs
from fedmd_ray.errors import ResourceError
from fedmd_ray.models import build_model, footprint


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
    mlp, cnn = party_costs(config, config.models, [15, 15], (1, 28, 28), 10, 1000)
    assert cnn > 5 * mlp
    more_data = party_costs(config, config.models, [15, 300], (1, 28, 28), 10, 1000)[1]
    assert more_data > cnn


def test_footprint_counts_parameters():
    fp = footprint("mlp-128", (1, 28, 28), 10)
    assert fp.params == 784 * 128 + 128 + 128 * 10  # output layer has no bias
    assert fp.flops >= 2 * (784 * 128 + 128 * 10)


@pytest.mark.parametrize(
    "name, shape",
    [
        ("cnn3-6-12-24", (1, 28, 28)),
        ("mlp-512-256-128", (1, 8, 8)),
        ("paper-cnn3-64-128-192", (3, 32, 32)),
    ],
)
def test_footprint_counts_flops_as_torch_does(name, shape):
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(name, shape, 16).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, *shape))
    assert footprint(name, shape, 16).flops == counter.get_total_flops()


# --- GPU memory: estimates and the packing check (pure functions; no GPU needed) ---

from fedmd_ray.actors.gpu_memory import CUDA_CONTEXT_BYTES, check_gpu_packing, estimate_hosts  # noqa: E402
from fedmd_ray.model_registry import resolve_model  # noqa: E402

GIB = 2**30


def _paper_estimates(groups):
    config = fedmd_ray.preset(
        "paper-mnist-iid", public_classes=(0, 1, 2, 3, 4), private_data="mnist", private_classes=(5, 6, 7, 8, 9)
    )
    models = [resolve_model(m) for m in config.party_models]
    return estimate_hosts(config, models, groups, [15] * 10, (1, 28, 28), 10, shared_bytes=200 * 2**20)


def test_estimate_grows_with_the_model_and_counts_the_context_once_per_host():
    alone = _paper_estimates([[p] for p in range(10)])
    together = _paper_estimates([list(range(10))])
    assert all(e.bytes > CUDA_CONTEXT_BYTES for e in alone)
    assert alone[4].bytes > alone[6].bytes  # paper-cnn2-256-512 > paper-cnn3-64-128-192
    # one host shares the context, the data and the activation peak
    assert together[0].bytes < sum(e.bytes for e in alone)


def test_packing_that_overflows_the_gpu_is_refused_with_numbers():
    estimates = _paper_estimates([[p] for p in range(10)])
    need = sum(e.bytes for e in estimates)
    check_gpu_packing(estimates, 0.1, free_bytes=need + GIB, total_bytes=80 * GIB)  # fits
    with pytest.raises(ResourceError, match=r"10 host actor\(s\) at num_gpus=0.1 share one GPU.*GiB free of 8.0 GiB"):
        check_gpu_packing(estimates, 0.1, free_bytes=need - GIB, total_bytes=8 * GIB)
    # at 0.5 GPU only two hosts share a GPU: the two largest must fit
    two = sum(sorted((e.bytes for e in estimates), reverse=True)[:2])
    check_gpu_packing(estimates, 0.5, free_bytes=two, total_bytes=8 * GIB)
