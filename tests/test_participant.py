"""A participant's protocol steps, in-process (no Ray)."""

from __future__ import annotations

import numpy as np
import pytest

from fedmd_ray import preset
from fedmd_ray.actors.common import PartySpec, SharedData
from fedmd_ray.actors.participant import PartyHost
from fedmd_ray.aggregation import mean_consensus
from fedmd_ray.data.sampling import sample_alignment
from fedmd_ray.data.task import build_task


@pytest.fixture(scope="module")
def setup():
    config = preset("quick", torch_threads=1)
    task = build_task(config)
    data = SharedData(
        task.public_x, task.public_y, task.public_val_x, task.public_val_y,
        task.private_x, task.private_y, task.test_x, task.test_y, task.union_indices,
    )
    specs = [PartySpec(p, m, idx) for p, (m, idx) in enumerate(zip(config.party_models, task.party_indices))]
    return config, task, data, specs


def test_digest_moves_every_party_toward_the_consensus(setup):
    config, task, data, specs = setup
    host = PartyHost(specs, config, data, threads=1, gpus=0)
    host.call("transfer_learn", None)
    align = sample_alignment(np.random.default_rng(0), task.public_y, config.subset_size)
    before = host.call("communicate", None, align)
    consensus = mean_consensus(np.stack([before[p] for p in sorted(before)]))
    host.call("digest", None, align, consensus)
    after = host.call("communicate", None, align)
    for party in before:
        assert np.abs(after[party] - consensus).mean() < np.abs(before[party] - consensus).mean()


def test_scores_are_float32_logits_over_all_classes(setup):
    config, task, data, specs = setup
    host = PartyHost(specs[:1], config, data, threads=1, gpus=0)
    scores = host.call("communicate", None, np.arange(7))[0]
    assert scores.dtype == np.float32 and scores.shape == (7, config.n_classes)


def test_party_rng_streams_do_not_depend_on_neighbours(setup):
    config, task, data, specs = setup
    alone = PartyHost(specs[1:2], config, data, threads=1, gpus=0).call("transfer_learn", None)
    together = PartyHost(specs, config, data, threads=1, gpus=0).call("transfer_learn", None)
    assert alone[1]["transfer"].accuracy == together[1]["transfer"].accuracy
    assert alone[1]["transfer"].loss == together[1]["transfer"].loss


def test_shared_arrays_are_never_written(setup):
    config, task, data, specs = setup
    frozen = SharedData(*(np.array(getattr(data, f)) for f in data.__dataclass_fields__))
    for array in vars(frozen).values():
        array.flags.writeable = False  # a write would now raise, as on Ray's object store
    host = PartyHost(specs[:1], config, frozen, threads=1, gpus=0)
    host.call("transfer_learn", None)
    consensus = np.zeros((10, config.n_classes), dtype=np.float32)
    consensus.flags.writeable = False
    evaluation, next_scores = host.call("collaborate", None, np.arange(10), consensus, np.arange(5))[0]
    assert 0.0 <= evaluation.accuracy <= 1.0
    assert next_scores.shape == (5, config.n_classes)


def test_scores_sent_ahead_equal_a_separate_communicate(setup):
    """The fused round (collaborate returns the next round's scores) changes no number."""
    config, task, data, specs = setup
    host = PartyHost(specs[:2], config, data, threads=1, gpus=0)
    consensus = np.zeros((10, config.n_classes), dtype=np.float32)
    ahead = host.call("collaborate", None, np.arange(10), consensus, np.arange(20, 40))
    separate = host.call("communicate", None, np.arange(20, 40))
    for party in ahead:
        assert np.array_equal(ahead[party][1], separate[party])


def test_a_saving_call_returns_every_hosted_partys_state_also_of_those_that_sat_out(setup):
    """A restart or a checkpoint needs all of a host's parties, not only those called."""
    config, task, data, specs = setup
    host = PartyHost(specs[:2], config, data, threads=1, gpus=0)
    consensus = np.zeros((10, config.n_classes), dtype=np.float32)
    answers, states = host.call_saving("collaborate", {0: ()}, np.arange(10), consensus)  # party 1 sits out
    assert set(answers) == {0} and set(states) == {0, 1}
    assert all(s.dtype == np.uint8 for s in states.values())  # read by Ray without a copy
    fresh = PartyHost(specs[:2], config, data, threads=1, gpus=0)
    fresh.call("import_state", {p: (s,) for p, s in states.items()})
    assert fresh.participants[0].round == 1 and fresh.participants[1].round == 0
    assert np.array_equal(fresh.call("communicate", None, np.arange(5))[0],
                          host.call("communicate", None, np.arange(5))[0])


def test_saved_states_resolve_only_the_hosts_of_the_parties_asked_for():
    from fedmd_ray.actors.pool import SavedStates

    a, b, c = (np.full(3, i, dtype=np.uint8) for i in range(3))
    saved = SavedStates((((0, 1), {0: a, 1: b}), ((2,), {2: c})))
    assert sorted(saved.resolve()) == [0, 1, 2]
    assert list(saved.resolve([1])) == [1] and saved.resolve([1])[1] is b
    assert SavedStates().resolve() == {}
