"""Parties of one architecture as one computation (`batch_parties`, `fedmd_ray.batched`).

What holds: a party computes the same whoever shares its host (bit for bit: local, any
`parties_per_actor`, resumes, restarts), keeps its own RNG stream, and agrees with the per-party path
to float rounding; models or losses that do not batch exactly run per party, with one line saying why.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from reference_models import relu_then_torch_pool
from torch import nn

import fedmd_ray
from fedmd_ray.actors.messages import (
    Communicate,
    DigestRevisitEvaluate,
    Distributed,
    ExportState,
    ImportState,
    TransferLearn,
)
from fedmd_ray.actors.participant import PartyHost
from fedmd_ray.actors.party_group import PartyGroup
from fedmd_ray.aggregation import mean_consensus
from fedmd_ray.batched import Stack
from fedmd_ray.data.sampling import sample_alignment
from fedmd_ray.experiment import prepare
from fedmd_ray.models import build_model
from fedmd_ray.strategy import FedMD

# two models, three parties each: both batched
BATCHED = dict(n_parties=6, models=("cnn2-4-8", "mlp-16"), rounds=2, backend="local", torch_threads=1)


def metrics(table):
    return table.select(["party", "model", "phase", "round", "test_accuracy", "test_loss"]).to_pylist()


@pytest.fixture(scope="module")
def local_table():
    return fedmd_ray.run(fedmd_ray.preset("quick", **BATCHED), verbose=False)


def test_the_parties_of_a_model_several_parties_use_run_as_a_group():
    experiment = prepare(fedmd_ray.preset("quick", n_parties=4, models=("cnn2-4-8", "cnn2-4-8", "mlp-16", "mlp-64")))
    assert experiment.batched == {experiment.models[0].identity}
    specs, data = experiment.party_inputs()
    host = PartyHost(specs, experiment.setup, data, threads=1, gpus=0)
    units = host._units(list(host.participants.values()))
    assert [type(u).__name__ for u in units] == ["PartyGroup", "Participant", "Participant"]
    assert [m.party for m in units[0].members] == [0, 1]
    off = prepare(fedmd_ray.preset("quick", n_parties=4, models=("cnn2-4-8",), batch_parties=False))
    assert off.batched == frozenset()
    assert prepare(fedmd_ray.preset("quick")).batched == frozenset()  # one party per model: the presets' tables stand


def test_a_partys_numbers_do_not_depend_on_who_shares_its_call(local_table, ray_cluster):
    """Local (a batched model's parties on one host), one party per actor (each alone, run as two copies),
    three per actor: bit-identical."""
    config = fedmd_ray.preset("quick", **BATCHED)
    for layout in (dict(parties_per_actor=1), dict(parties_per_actor=3)):
        remote = fedmd_ray.run(config.replace(backend="ray", **layout), verbose=False)
        assert metrics(remote) == metrics(local_table), layout


def test_batched_numbers_agree_with_the_per_party_path_to_float_rounding(local_table):
    per_party = fedmd_ray.run(fedmd_ray.preset("quick", **BATCHED, batch_parties=False), verbose=False)
    for batched, alone in zip(metrics(local_table), metrics(per_party)):
        if batched["model"] == "mlp-16":  # no batch norm: no gradient near zero for Adam to blow up
            assert batched["test_accuracy"] == pytest.approx(alone["test_accuracy"], abs=0.011)
            assert batched["test_loss"] == pytest.approx(alone["test_loss"], rel=1e-3)
    assert local_table.column("run_id")[0] != per_party.column("run_id")[0]  # a field that changes results


def test_a_resumed_batched_run_is_the_uninterrupted_one(stopped_and_resumed):
    straight, resumed = stopped_and_resumed(fedmd_ray.preset("quick", **BATCHED))
    assert metrics(resumed) == metrics(straight)


def test_a_party_failing_inside_a_group_restarts_with_it_and_the_numbers_stand(local_table, tmp_path, monkeypatch):
    from fedmd_ray.faults import VARIABLE

    monkeypatch.setenv(VARIABLE, f"party=1,round=1,method=digest,action=raise,once={tmp_path / 'fired'}")
    table = fedmd_ray.run(fedmd_ray.preset("quick", **BATCHED), verbose=False)
    assert (tmp_path / "fired").exists()
    assert metrics(table) == metrics(local_table)
    restarted = {r["party"] for r in table.to_pylist() if r["status"] == "restarted"}
    assert restarted == {1, 3, 5}  # the mlp-16 host: parties 1, 3 and 5


@pytest.fixture(scope="module")
def host_pair():
    """Two hosts of the same four dropout-MLP parties after transfer learning: one batched, one not."""
    config = fedmd_ray.preset(
        "quick", n_parties=4, models=("mlp-16-d0.3",), revisit_shift=1, revisit_epochs=2, torch_threads=1
    )
    hosts = []
    for batch in (True, False):
        experiment = prepare(config.replace(batch_parties=batch))
        specs, data = experiment.party_inputs()
        host = PartyHost(specs, experiment.setup, data, threads=1, gpus=0)
        host.run(TransferLearn())
        hosts.append(host)
    return experiment.task, hosts


def test_each_party_draws_from_its_own_rng_stream_as_it_would_alone(host_pair):
    """Shuffles, dropout masks and shift offsets come from each party's own stream, in its own order: after
    a round the streams of the batched and the per-party host are where each other's are."""
    task, hosts = host_pair
    states = [h.run(ExportState()) for h in hosts]
    align = sample_alignment(np.random.default_rng(0), task.public_y, 100)
    for host in hosts:
        scores = host.run(Communicate(align))
        consensus = mean_consensus(np.stack([scores[p] for p in sorted(scores)]))
        host.run(DigestRevisitEvaluate(1, align, Distributed(consensus), None))
    batched, alone = hosts
    for party in batched.participants:
        assert torch.equal(batched.participants[party]._rng_state, alone.participants[party]._rng_state)
    for host, state in zip(hosts, states):
        host.run(ImportState(state))


def test_a_group_holds_nothing_of_its_parties_between_calls(host_pair):
    """Each step writes every party's weights and optimizer state back: exporting one party alone after a
    batched round gives what that party's own state holds."""
    task, (host, _) = host_pair
    before = host.run(ExportState())
    align = sample_alignment(np.random.default_rng(1), task.public_y, 100)
    scores = host.run(Communicate(align))
    consensus = mean_consensus(np.stack([scores[p] for p in sorted(scores)]))
    host.run(DigestRevisitEvaluate(1, align, Distributed(consensus), None))
    party = host.participants[2]
    optimizer_state = party.optimizer("revisit").state[next(party.model.parameters())]
    assert float(optimizer_state["step"]) > 0
    after = host.run(ExportState())
    assert not np.array_equal(after[2], before[2])
    host.run(ImportState(before))


def test_transfer_steps_that_do_not_batch_run_each_party_in_its_own_rng_stream(monkeypatch):
    """Where a step of transfer learning does not batch (a convolutional model's large batches: `_batches`), the
    group runs its parties one after another, each in its own RNG stream, as it would alone: the process's
    global RNG changes nothing, and each party ends with the weights and the stream of the per-party path."""
    monkeypatch.setattr(PartyGroup, "_batches", lambda self, batch_size: False)
    config = fedmd_ray.preset("quick", n_parties=3, models=("cnn2-4-8-d0.2",), torch_threads=1)
    ends = []
    for global_seed, batch in ((1, True), (2, True), (1, False)):
        torch.manual_seed(global_seed)  # what other code in the process left in the global stream
        experiment = prepare(config.replace(batch_parties=batch))
        specs, data = experiment.party_inputs()
        host = PartyHost(specs, experiment.setup, data, threads=1, gpus=0)
        assert isinstance(host._units(list(host.participants.values()))[0], PartyGroup) == batch
        host.run(TransferLearn())
        ends.append(host.run(ExportState()))
    for party in ends[0]:
        assert np.array_equal(ends[0][party], ends[1][party]), party
        assert np.array_equal(ends[0][party], ends[2][party]), party


class _NormNet(nn.Module):
    def __init__(self, classes: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(64)
        self.out = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.norm(x.flatten(1)))


def _norm_net(shape, classes):
    return _NormNet(classes)


class _ReadsValues(FedMD):
    def digest_loss(self, student_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        scale = float((target.abs().mean() + 1).item())  # a Python number out of the data: no vmap
        return (student_logits - target).abs().mean() / scale


def test_what_does_not_batch_exactly_runs_per_party_with_one_line_saying_why():
    model = prepare(fedmd_ray.preset("quick", n_parties=2, models=(_norm_net,)))
    assert model.batched == frozenset()
    assert any("its 2 parties run one at a time" in n and "LayerNorm" in n for n in model.notes)
    loss = prepare(fedmd_ray.preset("quick", n_parties=2, models=("mlp-16",), strategy=_ReadsValues()))
    assert loss.batched == frozenset()
    assert any("its digest loss does not run batched" in n for n in loss.notes)


def test_a_group_of_one_runs_as_two_copies_and_matches_a_group_of_two():
    """The property every layout guarantee rests on, for a convolutional model with batch norm and dropout."""
    experiment = prepare(fedmd_ray.preset("quick", n_parties=2, models=("cnn2-4-8-d0.2",), torch_threads=1))
    specs, data = experiment.party_inputs()
    together = PartyHost(specs, experiment.setup, data, threads=1, gpus=0)
    alone = PartyHost(specs[1:], experiment.setup, data, threads=1, gpus=0)
    assert isinstance(alone._units(list(alone.participants.values()))[0], PartyGroup)
    results = [together.run(TransferLearn()), alone.run(TransferLearn())]
    untimed = [{k: dataclasses.replace(v, seconds=0) for k, v in r[1].items()} for r in results]
    assert untimed[0] == untimed[1]
    for a, b in zip(
        together.participants[1].model.state_dict().values(), alone.participants[1].model.state_dict().values()
    ):
        assert torch.equal(a, b)


def test_a_stacked_evaluation_counts_each_partys_predicted_classes_from_its_own_logits():
    """What the group reports as a party's own-class share at round 0 comes from the same stacked pass
    as its accuracy and loss (no second pass over the test set, per party)."""
    from fedmd_ray import batched

    torch.manual_seed(0)
    models = [build_model("mlp-16", (1, 8, 8), 5) for _ in range(3)]
    x, y = torch.randn(50, 1, 8, 8), torch.randint(0, 5, (50,))
    scored = batched.evaluate(Stack.of(models), x, y, batch_size=16)
    guesses = batched.class_scores(Stack.of(models), x, batch_size=16).argmax(dim=2)  # (P, n)
    for party, result in enumerate(scored):
        assert torch.equal(result.predicted, torch.bincount(guesses[party], minlength=5))
        assert result.accuracy == int((guesses[party] == y).sum()) / len(y)


def test_a_stacked_cnn_pass_with_its_relu_in_the_pool_is_the_relu_then_the_pool_bit_for_bit():
    """The built-in CNNs run a stage's ReLU inside its `MaxPool2x2` (`relu=True`); a party group's passes
    (forward-only and training, under vmap) give exactly what a ReLU then `nn.MaxPool2d` gave: logits and
    every gradient, to the last bit."""
    torch.manual_seed(0)
    ours = [build_model("cnn2-8-16", (1, 28, 28), 5) for _ in range(3)]
    theirs = [relu_then_torch_pool(model) for model in ours]
    x = torch.randn(3, 64, 1, 28, 28)
    results = []
    for models in (ours, theirs):
        stack = Stack.of(models)
        with torch.no_grad():
            scores = stack.logits(x[0], shared=True)
        masks = {name: torch.ones(3, 64, 16, 7, 7) for name in stack.dropouts}
        logits = stack.logits(x, shared=False, train=True, masks=masks)
        stack.backward(logits.square().sum())
        results.append((scores, logits.detach(), stack.grad.clone()))
    for a, b in zip(*results):
        assert torch.equal(a, b)
