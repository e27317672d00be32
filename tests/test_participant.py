"""A participant's protocol steps, in-process (no Ray)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from fedmd_ray import preset, training
from fedmd_ray.actors.messages import (
    Communicate,
    DigestRevisitEvaluate,
    Distributed,
    ImportState,
    SharedData,
    TransferLearn,
)
from fedmd_ray.actors.participant import PartyHost
from fedmd_ray.aggregation import mean_consensus
from fedmd_ray.data.sampling import sample_alignment
from fedmd_ray.experiment import prepare


@pytest.fixture(scope="module")
def setup():
    experiment = prepare(preset("quick", torch_threads=1))
    specs, data = experiment.party_inputs()
    return experiment.setup, experiment.task, data, specs


def _round(targets, align=None, next_align=None, round_=1):
    align = np.arange(10) if align is None else align
    return DigestRevisitEvaluate(round_, align, Distributed(targets), next_align)


def test_digest_moves_every_party_toward_the_consensus(setup):
    config, task, data, specs = setup
    host = PartyHost(specs, config, data, threads=1, gpus=0)
    host.run(TransferLearn())
    align = sample_alignment(np.random.default_rng(0), task.public_y, config.config.subset_size)
    before = host.run(Communicate(align))
    consensus = mean_consensus(np.stack([before[p] for p in sorted(before)]))
    for participant in host.participants.values():
        participant.digest(align, consensus)
    after = host.run(Communicate(align))
    for party in before:
        assert np.abs(after[party] - consensus).mean() < np.abs(before[party] - consensus).mean()


@pytest.mark.parametrize("head_epochs", [0, 3])
def test_head_epochs_train_the_output_layer_alone(head_epochs):
    """No pretraining, no whole-model epochs: only `head_epochs` may change a weight, and only the head's."""
    config = preset(
        "quick",
        pretrain_epochs=0,
        private_epochs=0,
        head_epochs=head_epochs,
        upper_bound=False,
        refit_head_epochs=0,
        torch_threads=1,
    )
    experiment = prepare(config)
    specs, data = experiment.party_inputs()
    host = PartyHost(specs[:1], experiment.setup, data, threads=1, gpus=0)
    model = host.participants[0].model
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    host.run(TransferLearn())
    changed = {name for name, p in model.named_parameters() if not np.array_equal(p.detach(), before[name])}
    assert changed == ({"output_layer.weight"} if head_epochs else set())


def test_a_stuck_private_fit_is_redone_with_the_output_layer_first_and_kept_when_it_fits_better():
    """An untrained model (no epochs at all) fits its private data no better than one class: with
    `refit_head_epochs` it is fitted again, output layer first, and that fit is kept; without, not."""
    outcomes = {}
    for refit_epochs in (0, 10):
        config = preset(
            "quick",
            pretrain_epochs=0,
            private_epochs=0,
            upper_bound=False,
            refit_head_epochs=refit_epochs,
            torch_threads=1,
        )
        experiment = prepare(config)
        specs, data = experiment.party_inputs()
        host = PartyHost(specs[:1], experiment.setup, data, threads=1, gpus=0)
        outcomes[refit_epochs] = host.run(TransferLearn())[0]["transfer"]
    assert outcomes[0].refit is False
    assert outcomes[10].refit is True
    assert outcomes[10].train_accuracy > outcomes[0].train_accuracy


def test_an_imperfect_private_fit_is_redone_an_imperfect_upper_bound_fit_is_not(monkeypatch):
    """A party's own few images are within every model's reach: a fit that misses one is retried
    (the better kept); the upper bound's fit of everyone's data is retried only when stuck."""
    config = preset("quick", torch_threads=1)
    experiment = prepare(config)
    specs, data = experiment.party_inputs()
    host = PartyHost(specs[:1], experiment.setup, data, threads=1, gpus=0)
    own, union = len(host.participants[0]._private[1]), len(data.union_idx)
    assert own != union
    real, fits = training.evaluate, []

    def scripted(model, x, y, *, batch_size):  # every fit of own or pooled data scores 0.95, then 0.99
        scored = real(model, x, y, batch_size=batch_size)
        if len(y) not in (own, union):
            return scored
        fits.append(len(y))
        return scored._replace(accuracy=0.95 if fits.count(len(y)) == 1 else 0.99)

    monkeypatch.setattr(training, "evaluate", scripted)
    result = host.run(TransferLearn())[0]
    assert fits.count(union) == 1 and result["upper_bound"].refit is False  # 0.95 of the pool: not stuck
    assert fits.count(own) >= 2 and result["transfer"].refit is True  # retried, and 0.99 > 0.95 kept


def test_fit_is_stuck_compares_with_always_answering_the_most_common_class():
    labels = torch.tensor([3, 3, 3, 4, 5, 6])  # most common class: half of them
    assert training.fit_is_stuck(0.5, labels)  # exactly the majority answer
    assert training.fit_is_stuck(0.7, labels)  # below 1.5 x 0.5
    assert not training.fit_is_stuck(0.75, labels)
    assert not training.fit_is_stuck(1.0, torch.tensor([2, 2, 2]))  # one class: a perfect fit is no stall


def test_scores_are_float32_logits_over_all_classes(setup):
    config, task, data, specs = setup
    host = PartyHost(specs[:1], config, data, threads=1, gpus=0)
    scores = host.run(Communicate(np.arange(7)))[0]
    assert scores.dtype == np.float32 and scores.shape == (7, task.n_classes)


def test_party_rng_streams_do_not_depend_on_neighbours(setup):
    config, task, data, specs = setup
    alone = PartyHost(specs[1:2], config, data, threads=1, gpus=0).run(TransferLearn())
    together = PartyHost(specs, config, data, threads=1, gpus=0).run(TransferLearn())
    assert alone[1]["transfer"].accuracy == together[1]["transfer"].accuracy
    assert alone[1]["transfer"].loss == together[1]["transfer"].loss


def test_shared_arrays_are_never_written(setup):
    config, task, data, specs = setup
    frozen = SharedData(*(np.array(getattr(data, f)) for f in data.__dataclass_fields__))
    for array in vars(frozen).values():
        array.flags.writeable = False  # a write would now raise, as on Ray's object store
    host = PartyHost(specs[:1], config, frozen, threads=1, gpus=0)
    host.run(TransferLearn())
    consensus = np.zeros((10, task.n_classes), dtype=np.float32)
    consensus.flags.writeable = False
    result = host.run(_round(consensus, next_align=np.arange(5)))[0]
    assert 0.0 <= result.evaluation.accuracy <= 1.0
    assert result.next_scores.shape == (5, task.n_classes)


def test_personalised_targets_reach_each_party_as_its_own_row(setup):
    """A (parties, n, C) target array is put once; each party digests its row, and a party given
    another party's row ends elsewhere."""
    config, task, data, specs = setup
    rows = np.random.default_rng(0).standard_normal((2, 10, task.n_classes)).astype(np.float32)
    personal = PartyHost(specs[:2], config, data, threads=1, gpus=0).run(
        DigestRevisitEvaluate(1, np.arange(10), Distributed(rows, {0: 0, 1: 1}), np.arange(10))
    )
    own = {
        p: PartyHost(specs[p : p + 1], config, data, threads=1, gpus=0).run(_round(rows[p], next_align=np.arange(10)))
        for p in (0, 1)
    }
    swapped = PartyHost(specs[:1], config, data, threads=1, gpus=0).run(_round(rows[1], next_align=np.arange(10)))
    for party in (0, 1):
        assert np.array_equal(personal[party].next_scores, own[party][party].next_scores)
    assert not np.array_equal(personal[0].next_scores, swapped[0].next_scores)


def test_scores_sent_ahead_equal_a_separate_communicate(setup):
    """The fused round (collaborate returns the next round's scores) changes no number."""
    config, task, data, specs = setup
    host = PartyHost(specs[:2], config, data, threads=1, gpus=0)
    consensus = np.zeros((10, task.n_classes), dtype=np.float32)
    ahead = host.run(_round(consensus, next_align=np.arange(20, 40)))
    separate = host.run(Communicate(np.arange(20, 40)))
    for party in ahead:
        assert np.array_equal(ahead[party].next_scores, separate[party])


def test_a_hosts_states_are_every_hosted_partys_also_of_those_that_sat_out(setup):
    """A restart or a checkpoint needs all of a host's parties, not only those called."""
    config, task, data, specs = setup
    host = PartyHost(specs[:2], config, data, threads=1, gpus=0)
    consensus = np.zeros((10, task.n_classes), dtype=np.float32)
    answers, states = host.run(_round(consensus), [0]), host.states()  # party 1 sits out
    assert set(answers) == {0} and set(states) == {0, 1}
    assert all(s.dtype == np.uint8 for s in states.values())  # read by Ray without a copy
    fresh = PartyHost(specs[:2], config, data, threads=1, gpus=0)
    fresh.run(ImportState(states))
    assert fresh.participants[0].round == 1 and fresh.participants[1].round == 0
    assert np.array_equal(fresh.run(Communicate(np.arange(5)))[0], host.run(Communicate(np.arange(5)))[0])


def test_saved_states_resolve_only_the_hosts_of_the_parties_asked_for():
    from fedmd_ray.actors.pool import SavedStates

    a, b, c = (np.full(3, i, dtype=np.uint8) for i in range(3))
    saved = SavedStates((((0, 1), {0: a, 1: b}), ((2,), {2: c})))
    assert sorted(saved.resolve()) == [0, 1, 2]
    assert list(saved.resolve([1])) == [1] and saved.resolve([1])[1] is b
    assert SavedStates().resolve() == {}


def test_swa_evaluates_the_average_of_the_last_half_of_the_rounds_and_keeps_training_its_own(setup):
    """With `swa` and 4 rounds, rounds 1-3 report the party's own weights (round 3 starts the average)
    and round 4 the model whose weights (and batch-norm statistics) are the mean of rounds 3 and 4; the
    party itself digests and revisits from its own weights, as without `swa`."""
    config, task, data, specs = setup
    configs = {
        swa: dataclasses.replace(config, config=config.config.replace(swa=swa, rounds=4)) for swa in (False, True)
    }
    hosts = {swa: PartyHost(specs[:1], c, data, threads=1, gpus=0) for swa, c in configs.items()}
    for host in hosts.values():
        host.run(TransferLearn())
    consensus = np.zeros((10, task.n_classes), dtype=np.float32)
    weights, reported = [], {True: [], False: []}
    for round_ in (1, 2, 3, 4):
        for swa, host in hosts.items():
            evaluation = host.run(_round(consensus, round_=round_))[0].evaluation
            reported[swa].append((evaluation.accuracy, evaluation.loss))
        participant = hosts[True].participants[0]
        weights.append({k: v.double() for k, v in participant.model.state_dict().items() if v.is_floating_point()})
    own = hosts[False].participants[0].model.state_dict()
    assert all(torch.equal(own[k], v.float()) for k, v in weights[-1].items())  # the same training
    assert reported[True][:3] == reported[False][:3]  # before the window, and the average of one round
    model = hosts[True].participants[0].model
    model.load_state_dict({k: ((weights[2][k] + weights[3][k]) / 2).float() for k in weights[0]}, strict=False)
    average = training.evaluate(model, *hosts[True].participants[0].data.test, batch_size=256)[:2]
    assert reported[True][3] == pytest.approx(average, rel=1e-6) and reported[True][3][1] != reported[False][3][1]


def test_wise_ft_reports_the_blend_with_the_round0_weights_and_keeps_training_its_own(setup):
    """`wise_ft=a`: each round reports the model (1 - a) theta_0 + a theta (batch-norm statistics
    blended alike), theta_0 the weights after transfer learning; a = 0 reports round 0's model every
    round. The party itself trains as without it."""
    config, task, data, specs = setup
    hosts = {
        a: PartyHost(
            specs[:1], dataclasses.replace(config, config=config.config.replace(wise_ft=a)), data, threads=1, gpus=0
        )
        for a in (1.0, 0.25, 0.0)
    }
    round0 = {a: host.run(TransferLearn())[0]["transfer"] for a, host in hosts.items()}
    start = {k: v.clone() for k, v in hosts[1.0].participants[0].model.state_dict().items()}
    consensus = np.zeros((10, task.n_classes), dtype=np.float32)
    for round_ in (1, 2):
        reported = {a: host.run(_round(consensus, round_=round_))[0].evaluation for a, host in hosts.items()}
        own = {k: v.clone() for k, v in hosts[1.0].participants[0].model.state_dict().items()}
        assert all(torch.equal(own[k], v) for k, v in hosts[0.25].participants[0].model.state_dict().items())
        model = hosts[0.25].participants[0].model  # evaluates the hand-made blend, then gets its weights back
        model.load_state_dict(
            {
                k: (0.75 * start[k].double() + 0.25 * v.double()).float() if v.is_floating_point() else v
                for k, v in own.items()
            }
        )
        blend = training.evaluate(model, *hosts[0.25].participants[0].data.test, batch_size=256)[:2]
        model.load_state_dict(own)
        assert (reported[0.25].accuracy, reported[0.25].loss) == pytest.approx(blend, rel=1e-6)
        assert reported[0.25].loss != reported[1.0].loss
        assert (reported[0.0].accuracy, reported[0.0].loss) == pytest.approx(
            (round0[0.0].accuracy, round0[0.0].loss), rel=1e-6
        )


def test_a_state_saved_without_round0_weights_is_refused_where_wise_ft_needs_them(setup):
    config, task, data, specs = setup
    host = PartyHost(specs[:1], config, data, threads=1, gpus=0)
    host.run(TransferLearn())
    host.run(_round(np.zeros((10, task.n_classes), dtype=np.float32)))
    saved = host.states()
    blending = PartyHost(
        specs[:1], dataclasses.replace(config, config=config.config.replace(wise_ft=0.5)), data, threads=1, gpus=0
    )
    with pytest.raises(ValueError, match="round 1 holds no round-0 weights.*saved with wise_ft=1"):
        blending.run(ImportState(saved))
