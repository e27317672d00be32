"""Skewed splits: the class-weighted consensus on a hand-computed example, label counts reaching the
strategy once, and round 0's health naming a party that knows one class."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import fedmd_ray
from fedmd_ray import training
from fedmd_ray.actors.messages import TransferLearn
from fedmd_ray.actors.participant import PartyHost
from fedmd_ray.actors.party_group import PartyGroup
from fedmd_ray.aggregation import class_weighted_consensus, mean_consensus
from fedmd_ray.analysis.metrics import transfer_health
from fedmd_ray.config.presets import preset_names
from fedmd_ray.experiment import prepare
from fedmd_ray.methods import ClassWeighted
from fedmd_ray.reference import run_reference
from fedmd_ray.strategy import RoundInfo, Strategy


def test_the_class_weighted_consensus_hears_on_each_class_only_those_who_hold_it():
    # two parties, one sample, three classes: class 0 public (nobody holds it), 1 held by party 0 (3 images),
    # 2 held by party 0 (1 image) and party 1 (3 images)
    scores = np.array([[[1.0, 4.0, 2.0]], [[3.0, -6.0, 10.0]]], np.float32)
    counts = np.array([[0, 3, 1], [0, 0, 3]])
    # class 0: equal votes (1 + 3) / 2 = 2; class 1: party 0 alone = 4; class 2: (1 * 2 + 3 * 10) / 4 = 8
    assert class_weighted_consensus(scores, counts).tolist() == [[2.0, 4.0, 8.0]]


def test_with_equal_counts_it_is_the_papers_mean():
    scores = np.random.default_rng(0).normal(size=(4, 6, 5)).astype(np.float32)
    counts = np.full((4, 5), 3)
    np.testing.assert_allclose(class_weighted_consensus(scores, counts), mean_consensus(scores), rtol=1e-6)


class _Seen(ClassWeighted):
    """Records the label counts the driver hands to `aggregate`."""

    seen: list = []

    def aggregate(self, scores, info: RoundInfo):
        _Seen.seen.append((info.round, info.parties, None if info.label_counts is None else info.label_counts.copy()))
        return super().aggregate(scores, info)


def test_each_partys_label_counts_reach_the_strategy_and_count_once_in_round_1s_bytes():
    config = fedmd_ray.preset("quick", rounds=2, backend="local", torch_threads=1, partition="noniid", noniid_alpha=0.1)
    _Seen.seen = []
    table = fedmd_ray.run(config.replace(strategy=_Seen()), verbose=False)
    task = fedmd_ray.load_task(config)
    expected = np.stack([np.bincount(task.private_y[idx], minlength=task.n_classes) for idx in task.party_indices])
    rounds = _Seen.seen[1:]  # the first: the strategy's probe before the run, on made-up counts
    assert [r for r, _, _ in rounds] == [1, 2]
    for _, parties, counts in rounds:
        assert parties == (0, 1, 2) and counts.tolist() == expected.tolist()
    plain = fedmd_ray.run(config.replace(strategy="fedmd"), verbose=False).to_pylist()
    sent = {(r["round"], r["party"]): r["bytes_sent"] for r in table.to_pylist() if r["phase"] == "collaborate"}
    plain_sent = {(r["round"], r["party"]): r["bytes_sent"] for r in plain if r["phase"] == "collaborate"}
    for (round_, party), value in sent.items():  # the scores, and in round 1 its row of counts (10 int64)
        assert value == plain_sent[round_, party] + (expected[party].nbytes if round_ == 1 else 0)


def test_a_strategy_that_does_not_ask_gets_no_label_counts():
    class Plain(Strategy):
        def aggregate(self, scores, info):
            assert info.label_counts is None
            return mean_consensus(scores)

        def digest_loss(self, student_logits, target):
            return (student_logits - target).abs().mean()

    fedmd_ray.run(fedmd_ray.preset("quick", rounds=1, backend="local", strategy=Plain()), verbose=False)


def test_the_reference_round_gives_the_class_weighted_runs_table():
    config = fedmd_ray.preset("quick", rounds=2, backend="local", torch_threads=1, partition="noniid",
                              noniid_alpha=0.1, strategy="fedmd-cw")  # fmt: skip
    drop = ("seconds", "bytes_received")
    keep = lambda t: t.drop_columns(list(drop)).to_pylist()  # noqa: E731
    assert keep(run_reference(config)) == keep(fedmd_ray.run(config, verbose=False))


def _transfer_row(party, held, own, accuracy=0.2):
    return {"phase": "transfer", "party": party, "model": "mlp-64", "test_accuracy": accuracy,
            "private_classes_held": held, "own_class_predictions": own}  # fmt: skip


def test_round_0_health_names_a_party_that_holds_one_class_or_predicts_only_its_own():
    rows = [_transfer_row(0, 1, 1.0), _transfer_row(1, 2, 0.97), _transfer_row(2, 2, 0.5, 0.6),
            _transfer_row(3, 5, 1.0, 0.9)]  # fmt: skip
    warnings = transfer_health(rows, 5)
    assert len(warnings) == 3
    assert warnings[0] == "party 0 (mlp-64) holds 1 of the 5 private classes and 100% of its test predictions name it"
    assert warnings[1] == "party 1 (mlp-64) holds 2 of the 5 private classes and 97% of its test predictions name them"
    assert not any("near chance" in w for w in warnings)  # the skew explains party 0: one message
    advice = warnings[2]  # what to do, once for all of them, after the parties
    assert advice.startswith("a skewed split (partition=noniid at a small noniid_alpha): the 2 parties named above")
    assert "configs/robust.toml" in advice and "strategy=local" in advice  # what to try, and against what
    assert "docs/methods.md#skewed-splits" in advice  # where it was measured
    assert "the 1 party named above" in transfer_health(rows[:1], 5)[1]
    assert transfer_health(rows, None) == []  # without the number of classes nothing can be said


@pytest.mark.timeout(300)
def test_a_run_on_a_skewed_split_names_its_one_class_parties_in_progress_and_summary(capsys):
    config = fedmd_ray.preset("quick", backend="local", rounds=1, partition="noniid", noniid_alpha=0.01)
    table = fedmd_ray.run(config, verbose=True)
    err = capsys.readouterr().err
    rows = [r for r in table.to_pylist() if r["phase"] == "transfer"]
    one_class = [r["party"] for r in rows if r["private_classes_held"] == 1]
    assert one_class, "Dirichlet(0.01) gives some party a single class"
    progress, summary = err.split("mean test accuracy:")
    for party in one_class:  # named at round 0 in the progress, and again in the summary
        line = f"party {party} ({rows[party]['model']}) holds 1 of the 5 private classes"
        assert line in progress and line in summary


@pytest.mark.parametrize("name", preset_names())
def test_the_robust_config_file_combines_with_every_preset_and_set(name):
    """configs/robust.toml (docs/methods.md: the recommended recipe) sets only collaboration fields: any preset gives
    the rest, --set applies on top, and the paper's `fedmd` stays every preset's own strategy."""
    from pathlib import Path

    from fedmd_ray.config_file import config_from

    robust = Path(__file__).parents[1] / "configs" / "robust.toml"
    config = config_from(robust, name, {"partition": "noniid", "noniid_alpha": 0.1})
    plain = fedmd_ray.preset(name)
    recipe = ("fedmd-kl", "information", True, "auto", "own", "equal", 16)
    fields = (config.strategy, config.party_weights, config.swa, config.revisit_shift, config.revisit_classes)
    assert (*fields, config.private_shares, config.revisit_epochs) == recipe
    assert (config.partition, config.noniid_alpha) == ("noniid", 0.1)
    assert (config.rounds, config.party_models) == (plain.rounds, plain.party_models)
    assert (plain.strategy, plain.revisit_classes) == ("fedmd", "all")


def test_the_restricted_softmax_zeroes_the_private_classes_a_party_does_not_hold():
    # classes 0-1 public, 2-4 private; the party holds private class 3 only
    scale = training.own_class_scale(torch.tensor([3, 3]), 5, n_private=3)
    assert scale.tolist() == [1.0, 1.0, 0.0, 1.0, 0.0]  # its images are not public ones: those stay
    logits = torch.tensor([[0.0, 1.0, 2.0, 1.0, 3.0]], requires_grad=True)
    # softmax over (0, 1, 0, 1, 0): -log(e^1 / (3 + 2e)) = log(3 + 2e) - 1
    loss = training.restricted_cross_entropy(logits, torch.tensor([3]), scale)
    assert float(loss) == pytest.approx(math.log(3 + 2 * math.e) - 1, rel=1e-6)
    loss.backward()
    assert logits.grad[0, 2] == logits.grad[0, 4] == 0 and logits.grad[0, 1] > 0  # nothing reaches 2 and 4
    everything = training.own_class_scale(torch.tensor([2, 3, 4]), 5, n_private=3)
    assert everything.tolist() == [1.0] * 5  # a party that holds every private class: the full softmax


@pytest.mark.parametrize("batch", [True, False])
def test_an_own_classes_revisit_leaves_the_output_rows_of_classes_a_party_does_not_hold(batch):
    """With revisit_classes=own a party's revisit gives no gradient to the logits of the private classes
    it does not hold: what the digest taught it about them survives (both paths: batched groups and one
    party at a time)."""
    config = fedmd_ray.preset(
        "quick", n_parties=3, models=("mlp-16",), partition="noniid", noniid_alpha=0.05, revisit_classes="own"
    )
    experiment = prepare(config.replace(batch_parties=batch, torch_threads=1))
    specs, data = experiment.party_inputs()
    host = PartyHost(specs, experiment.setup, data, threads=1, gpus=0)
    host.run(TransferLearn())
    members = list(host.participants.values())
    before = [m.model.output_layer.weight.detach().clone() for m in members]
    if batch:
        PartyGroup(members).revisit()
    else:
        for member in members:
            member.revisit()
    private = range(members[0].n_classes - len(config.private_classes), members[0].n_classes)
    for member, weight in zip(members, before):
        held = member._private[1].unique()
        others = [c for c in private if c not in held.tolist()]
        assert others, member.party  # the split is skewed enough for every party to miss a class
        after = member.model.output_layer.weight.detach()
        assert torch.equal(after[others], weight[others]), member.party
        assert not torch.equal(after[held], weight[held]), member.party  # its own classes still train


def test_where_every_party_holds_every_private_class_own_is_the_full_softmax():
    """iid: nothing to restrict, the same numbers as `all` to the last bit (the recipe costs nothing there)."""
    config = fedmd_ray.preset("quick", rounds=2, backend="local", torch_threads=1, revisit_shift=1)
    columns = ["party", "phase", "round", "test_accuracy", "test_loss"]
    tables = [fedmd_ray.run(config.replace(revisit_classes=c), verbose=False).select(columns) for c in ("all", "own")]
    assert tables[0].to_pylist() == tables[1].to_pylist()
