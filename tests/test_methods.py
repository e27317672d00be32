"""The FedMD family as strategies: each on a small hand-computed example, and end to end."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import fedmd_ray
from fedmd_ray import RoundInfo
from fedmd_ray.actors.participant import Participant
from fedmd_ray.aggregation import (
    equal_private_shares,
    information_weights,
    knowledge_coefficient_step,
    match_class_shares,
    project_rows_to_simplex,
    trimmed_mean_consensus,
)
from fedmd_ray.checkpoint import load_checkpoint
from fedmd_ray.errors import ConfigError
from fedmd_ray.methods import DSFL, Cronus, FedMDKL, KTpFL
from fedmd_ray.strategy import STRATEGIES, resolve_strategy

LOCAL = dict(backend="local", rounds=2, torch_threads=1)
INFO = RoundInfo(1, (0, 1), 2)


def test_the_family_is_registered_like_a_users_strategy():
    assert STRATEGIES.names()[:7] == ["fedmd", "cronus", "fedmd-cw", "ds-fl", "fedmd-kl", "kt-pfl", "local"]
    config = fedmd_ray.preset("quick", temperature=2.0, era_temperature=0.2, kt_rho=0.3, kt_lr=0.1, trim_fraction=0.25)
    assert resolve_strategy("ds-fl", config).era_temperature == 0.2
    kt = resolve_strategy("kt-pfl", config)
    assert (kt.temperature, kt.kt_rho, kt.kt_lr) == (2.0, 0.3, 0.1)
    assert resolve_strategy("cronus", config).trim_fraction == 0.25
    assert resolve_strategy("fedmd-cw", config.replace(digest_loss="kl")).temperature == 2.0


def test_fedmd_is_the_mean_of_logits_with_an_l1_digest():
    fedmd = fedmd_ray.FedMD()
    scores = np.array([[[1.0, -2.0]], [[3.0, 4.0]]], dtype=np.float32)
    np.testing.assert_array_equal(fedmd.aggregate(scores, INFO), [[2.0, 1.0]])
    loss = fedmd.digest_loss(torch.tensor([[0.0, 0.0]]), torch.tensor([[2.0, 1.0]]))
    assert loss.item() == pytest.approx(1.5)  # (|2| + |1|) / 2


def test_cronus_trims_before_averaging():
    scores = np.array([[[0.0]], [[1.0]], [[2.0]], [[100.0]]], dtype=np.float32)  # 4 parties, one score
    assert Cronus(trim_fraction=0.25).aggregate(scores, RoundInfo(1, (0, 1, 2, 3), 4))[0, 0] == pytest.approx(1.5)
    assert trimmed_mean_consensus(scores, 0.0)[0, 0] == pytest.approx(25.75)  # nothing trimmed: the mean


def test_ds_fl_shares_probabilities_and_sharpens_their_mean():
    dsfl = DSFL(era_temperature=0.5)
    shared = dsfl.share(torch.tensor([[0.0, math.log(3.0)]]))
    np.testing.assert_allclose(shared.numpy(), [[0.25, 0.75]], rtol=1e-6)
    probs = np.array([[[0.2, 0.8]], [[0.4, 0.6]]], dtype=np.float32)  # mean (0.3, 0.7)
    sharp = np.exp(np.array([0.3, 0.7]) / 0.5)
    np.testing.assert_allclose(dsfl.aggregate(probs, INFO), [sharp / sharp.sum()], rtol=1e-6)
    student = torch.tensor([[0.0, 0.0]])
    assert dsfl.digest_loss(student, torch.tensor([[0.3, 0.7]])).item() == pytest.approx(math.log(2.0))


def test_fedmd_kl_averages_tempered_probabilities_and_scales_kl_by_t_squared():
    kl = FedMDKL(temperature=2.0)
    shared = kl.share(torch.tensor([[0.0, 2.0 * math.log(3.0)]]))  # softmax(z / 2) = (0.25, 0.75)
    np.testing.assert_allclose(shared.numpy(), [[0.25, 0.75]], rtol=1e-6)
    probs = np.array([[[0.25, 0.75]], [[0.75, 0.25]]], dtype=np.float32)
    np.testing.assert_allclose(kl.aggregate(probs, INFO), [[0.5, 0.5]])
    target = torch.tensor([[0.25, 0.75]])
    student = torch.tensor([[0.0, 0.0]])  # softmax(0 / 2) = (0.5, 0.5)
    expected = 4.0 * (0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5))
    assert kl.digest_loss(student, target).item() == pytest.approx(expected, rel=1e-5)


def test_information_weights_silence_a_party_that_answers_the_same_for_every_image():
    one_class = [[1.0, 0.0], [1.0, 0.0]]  # the same answer for both images: I = 0
    telling = [[1.0, 0.0], [0.0, 1.0]]  # tells the two images apart: I = log 2
    half = [[0.9, 0.1], [0.1, 0.9]]  # the same, less sure: I = log 2 - H(0.9, 0.1)
    probs = np.array([one_class, telling, half], dtype=np.float32)
    h = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    expected = np.array([0.0, math.log(2), math.log(2) - h]) / (2 * math.log(2) - h)
    np.testing.assert_allclose(information_weights(probs), expected, atol=1e-6)
    np.testing.assert_allclose(information_weights(probs[:1]), [1.0])  # nobody informative: equal weights
    kl = FedMDKL(party_weights="information")
    consensus = kl.aggregate(probs[:2], INFO)
    np.testing.assert_allclose(consensus, telling, atol=1e-6)  # the one-class party has no say
    kl.aggregate(probs[[2, 0]], RoundInfo(2, (2, 0), 3))  # party 1 sat the round out: no say
    np.testing.assert_allclose(kl.state_dict()["party_weights"], [0.0, 0.0, 1.0], atol=1e-6)
    restored = FedMDKL(party_weights="information")
    restored.load_state_dict(kl.state_dict())
    np.testing.assert_array_equal(restored.state_dict()["party_weights"], kl.state_dict()["party_weights"])
    assert FedMDKL().state_dict() == {}
    np.testing.assert_allclose(FedMDKL().aggregate(probs[:2], INFO), [[1.0, 0.0], [0.5, 0.5]])
    with pytest.raises(ConfigError, match="party_weights='votes' is not allowed"):
        FedMDKL(party_weights="votes")
    config = fedmd_ray.preset("quick", party_weights="information")
    assert resolve_strategy("fedmd-kl", config).party_weights == "information"
    with pytest.raises(ConfigError, match="party_weights"):
        fedmd_ray.preset("quick", party_weights="votes")


def odds_ratio(p: np.ndarray, c: int, d: int) -> float:
    """Samples 0 and 1's odds ratio between classes c and d: what class rescaling must keep."""
    return float(p[0, c] * p[1, d] / (p[0, d] * p[1, c]))


def test_matching_class_shares_rescales_the_columns_and_keeps_each_row_a_distribution():
    # two samples, two classes; the mean gives class 0 a share of 0.5, the target 0.75
    consensus = np.array([[0.5, 0.5], [0.5, 0.5]], dtype=np.float32)
    np.testing.assert_allclose(match_class_shares(consensus, np.array([0.75, 0.25])), [[0.75, 0.25]] * 2, atol=1e-6)
    # shares (0.4, 0.6) toward (0.8, 0.2), one step by hand: class 0 times 2, class 1 times 1/3, rows
    # renormalised: (0.6, 0.4) -> (1.2, 2/15) -> (0.9, 0.1); (0.2, 0.8) -> (0.4, 4/15) -> (0.6, 0.4)
    uneven = np.array([[0.6, 0.4], [0.2, 0.8]], dtype=np.float32)
    one_step = match_class_shares(uneven, np.array([0.8, 0.2]), iterations=1)
    np.testing.assert_allclose(one_step, [[0.9, 0.1], [0.6, 0.4]], rtol=1e-6)
    held = match_class_shares(uneven, np.array([0.5, 0.5]))
    np.testing.assert_allclose(held.mean(axis=0), [0.5, 0.5], atol=1e-6)
    np.testing.assert_allclose(held.sum(axis=1), 1.0, atol=1e-6)
    assert odds_ratio(held, 0, 1) == pytest.approx(odds_ratio(uneven, 0, 1), rel=1e-5)  # how it tells samples apart
    np.testing.assert_array_equal(match_class_shares(uneven, uneven.mean(axis=0).astype(np.float64)), uneven)
    with pytest.raises(ValueError, match="shaped"):
        match_class_shares(uneven[None], np.array([0.5, 0.5]))


def test_equal_private_shares_give_each_private_class_the_same_share_and_leave_the_public_ones():
    # classes 0 public, 1-2 private; mean shares (0.2, 0.6, 0.2): the private pair gets (0.4, 0.4)
    consensus = np.array([[0.2, 0.6, 0.2], [0.2, 0.6, 0.2]], dtype=np.float32)
    np.testing.assert_allclose(equal_private_shares(consensus, 2), [[0.2, 0.4, 0.4]] * 2, atol=1e-6)
    uneven = np.array([[0.1, 0.8, 0.1], [0.3, 0.3, 0.4]], dtype=np.float32)  # shares (0.2, 0.55, 0.25)
    balanced = equal_private_shares(uneven, 2)
    np.testing.assert_allclose(balanced.mean(axis=0), [0.2, 0.4, 0.4], atol=1e-6)
    np.testing.assert_allclose(balanced.sum(axis=1), 1.0, atol=1e-6)
    assert odds_ratio(balanced, 1, 2) == pytest.approx(odds_ratio(uneven, 1, 2), rel=1e-5)  # as the consensus's
    kl = FedMDKL(private_shares="equal", private_classes=(7, 9))
    np.testing.assert_array_equal(kl.aggregate(uneven[None], RoundInfo(1, (0,), 1)), balanced)
    assert kl.state_dict() == {}  # recomputed every round: nothing to save
    np.testing.assert_allclose(FedMDKL().aggregate(uneven[None], RoundInfo(1, (0,), 1)), uneven)  # free: FedDF's
    with pytest.raises(ValueError, match="n_private must be in 1..3"):
        equal_private_shares(uneven, 4)
    with pytest.raises(ConfigError, match="private_shares='fixed' is not allowed"):
        FedMDKL(private_shares="fixed")
    with pytest.raises(ConfigError, match="needs the task's private classes"):
        FedMDKL(private_shares="equal")
    config = fedmd_ray.preset("quick", strategy="fedmd-kl", private_shares="equal")
    assert resolve_strategy("fedmd-kl", config).n_private == len(config.private_classes)


def test_simplex_projection_and_one_knowledge_coefficient_step():
    np.testing.assert_allclose(project_rows_to_simplex(np.array([[2.0, 0.0], [0.4, 0.4]])), [[1, 0], [0.5, 0.5]])
    # two parties, one sample: party 0 is sure of class 0, party 1 of class 1
    p = np.array([[[0.9, 0.1]], [[0.1, 0.9]]], dtype=np.float32)
    c = np.full((2, 2), 0.5)
    step = knowledge_coefficient_step(c, p, rho=0.0, lr=0.1)
    # target_0 = (0.5, 0.5): d/dc_00 = -(0.9*0.9 + 0.1*0.1) / 0.5 = -1.64, d/dc_01 = -(0.9*0.1 + 0.1*0.9) / 0.5 = -0.36
    # the step adds (0.164, 0.036); projection takes off the excess 0.1 each: (0.564, 0.436)
    np.testing.assert_allclose(step[0], [0.564, 0.436], rtol=1e-6)
    np.testing.assert_allclose(step.sum(axis=1), 1.0)
    pulled = knowledge_coefficient_step(np.array([[1.0, 0.0], [0.0, 1.0]]), p, rho=100.0, lr=0.001)
    assert pulled[0, 1] > 0  # the penalty pulls each row toward equal weights


def test_kt_pfl_gives_each_party_its_own_target_and_keeps_the_matrix_as_state():
    kt = KTpFL(temperature=1.0, kt_rho=0.0, kt_lr=0.1)
    p = np.array([[[0.9, 0.1]], [[0.1, 0.9]]], dtype=np.float32)
    targets = kt.aggregate(p, INFO)
    c = kt.state_dict()["coefficients"]
    np.testing.assert_allclose(c[0], [0.564, 0.436], rtol=1e-6)
    np.testing.assert_allclose(targets[0, 0], c[0] @ p[:, 0, :], rtol=1e-6)  # target_0 = sum_j c_0j P_j
    assert targets.shape == (2, 1, 2) and not np.allclose(targets[0], targets[1])
    restored = KTpFL()
    restored.load_state_dict(kt.state_dict())
    np.testing.assert_array_equal(restored.coefficients, c)


def test_an_absent_party_keeps_its_coefficients_and_the_saved_rows_stay_on_the_simplex():
    kt = KTpFL(kt_rho=0.0, kt_lr=0.1)
    three = RoundInfo(1, (0, 1, 2), 3)
    p3 = np.array([[[0.9, 0.1]], [[0.1, 0.9]], [[0.5, 0.5]]], dtype=np.float32)
    kt.aggregate(p3, three)
    before = kt.coefficients.copy()
    targets = kt.aggregate(p3[[0, 2]], RoundInfo(2, (0, 2), 3))  # party 1 sits out
    assert np.array_equal(kt.coefficients[1], before[1])  # its own row waits for its return
    np.testing.assert_allclose(kt.coefficients.sum(axis=1), 1.0)  # what strategy_state.parquet shows
    assert kt.coefficients[0, 1] == before[0, 1]  # the others' weight on it is held for its return
    used = kt.coefficients[0, [0, 2]] / kt.coefficients[0, [0, 2]].sum()  # the round's weights: present only
    np.testing.assert_allclose(targets[0, 0], used @ p3[[0, 2], 0, :], rtol=1e-6)
    kt.coefficients[0] = [0.0, 1.0, 0.0]  # a row whose whole share is on the absent party ...
    kt.aggregate(p3[[0, 2]], RoundInfo(3, (0, 2), 3))
    assert kt.coefficients[0, 1] == 0.0 and kt.coefficients[0].sum() == pytest.approx(1.0)  # ... gives it up


@pytest.mark.parametrize("strategy", ["ds-fl", "fedmd-kl", "kt-pfl", "cronus"])
def test_each_method_runs_end_to_end_with_bytes_counted(strategy, tmp_path):
    # the other values (party_weights=equal, private_shares=free): the unit tests'
    extra = {"party_weights": "information", "private_shares": "equal"} if strategy == "fedmd-kl" else {}
    config = fedmd_ray.preset("quick", strategy=strategy, **extra, **LOCAL)
    table = fedmd_ray.run(config, out_dir=tmp_path, verbose=False)
    rows = table.to_pylist()
    rounds = [r for r in rows if r["phase"] == "collaborate"]
    n_classes, subset = 10, config.subset_size
    for r in rounds:
        assert r["bytes_sent"] == subset * n_classes * 4  # float32 scores
        ahead = 8 * subset if r["round"] < config.rounds else 0  # the next subset's int64 indices
        asked = 8 * subset if r["round"] == 1 else 0  # round 1's scores were asked for separately
        target = subset * n_classes * 4  # a consensus, or its own row of personalised targets
        assert r["bytes_received"] == 8 * subset + ahead + asked + target
    assert all(r["model_bytes"] > 0 for r in rows if r["phase"] == "transfer")
    if strategy == "kt-pfl":
        history = pq.read_table(tmp_path / "strategy_state.parquet").to_pylist()
        assert [h["round"] for h in history] == [1, 2] and history[0]["shape"] == [3, 3]
        last = np.reshape(history[-1]["values"], history[-1]["shape"])
        np.testing.assert_allclose(last, load_checkpoint(tmp_path).strategy_state["coefficients"])
        np.testing.assert_allclose(last.sum(axis=1), 1.0)
    if strategy == "fedmd-kl":  # who had a say, round by round
        history = pq.read_table(tmp_path / "strategy_state.parquet").to_pylist()
        assert [(h["round"], h["name"], h["shape"]) for h in history] == [(r, "party_weights", [3]) for r in (1, 2)]
        assert all(sum(h["values"]) == pytest.approx(1.0) and min(h["values"]) >= 0 for h in history)


def test_with_absent_parties_bytes_count_what_crossed_and_kt_pfl_rows_stay_on_the_simplex(tmp_path):
    """A party absent next round is not sent the next subset (its scores would be thrown away)."""
    config = fedmd_ray.preset("quick", strategy="kt-pfl", party_dropout=0.4, **{**LOCAL, "rounds": 4})
    rows = [
        r for r in fedmd_ray.run(config, out_dir=tmp_path, verbose=False).to_pylist() if r["phase"] == "collaborate"
    ]
    absent = {(r["party"], r["round"]) for r in rows if r["status"] == "absent"}
    subset, n_classes = config.subset_size, 10
    cases = set()
    for r in (r for r in rows if r["status"] != "absent"):
        asked = r["round"] == 1 or (r["party"], r["round"] - 1) in absent
        ahead = r["round"] < config.rounds and (r["party"], r["round"] + 1) not in absent
        cases.add((asked, ahead))
        assert r["bytes_received"] == 8 * subset * (1 + asked + ahead) + subset * n_classes * 4, r
    assert (False, False) in cases and (True, True) in cases  # absent next round; back after an absence
    for h in pq.read_table(tmp_path / "strategy_state.parquet").to_pylist():
        np.testing.assert_allclose(np.reshape(h["values"], h["shape"]).sum(axis=1), 1.0)


def test_local_is_the_no_collaboration_control(monkeypatch):
    """`strategy=local`: parties only revisit, nothing is scored or digested, 0 bytes cross; the same
    run as a method with `digest_epochs=0`, which rounds the same way."""
    from fedmd_ray.analysis.summary import format_run

    revisits = []
    real = Participant.revisit
    monkeypatch.setattr(Participant, "revisit", lambda self: revisits.append(1) or real(self))
    table = fedmd_ray.run(fedmd_ray.preset("quick", strategy="local", **LOCAL), verbose=False)
    assert len(revisits) == 3 * 2  # every party, every round
    rounds = [r for r in table.to_pylist() if r["phase"] == "collaborate"]
    assert len(rounds) == 6 and all(r["bytes_sent"] == r["bytes_received"] == 0 for r in rounds)
    assert "communication: 0 B moved in the rounds, 0.0% of the" in format_run(table)

    def never(self, *args):
        raise AssertionError("a round without collaboration scored or digested")

    monkeypatch.setattr(Participant, "communicate", never)
    monkeypatch.setattr(Participant, "digest", never)
    same = fedmd_ray.run(fedmd_ray.preset("quick", strategy="local", **LOCAL), verbose=False)
    no_digest = fedmd_ray.run(fedmd_ray.preset("quick", digest_epochs=0, **LOCAL), verbose=False)
    accuracy = [r["test_accuracy"] for r in table.to_pylist()]
    assert [r["test_accuracy"] for r in same.to_pylist()] == accuracy
    assert [r["test_accuracy"] for r in no_digest.to_pylist()] == accuracy


def test_the_summary_reports_bytes_moved_against_weight_exchange():
    from fedmd_ray.analysis.summary import byte_size, format_run, summarize

    table = fedmd_ray.run(fedmd_ray.preset("quick", **LOCAL), verbose=False)
    summary = summarize(table)
    rows = table.to_pylist()
    moved = sum(r["bytes_sent"] + r["bytes_received"] for r in rows if r["phase"] == "collaborate")
    model = {r["party"]: r["model_bytes"] for r in rows if r["phase"] == "transfer"}
    assert summary.traffic.moved == moved
    assert summary.traffic.weights == sum(2 * model[p] * 2 for p in model)  # 2 rounds, both ways
    assert f"communication: {byte_size(moved)} moved" in format_run(table)
    assert [byte_size(n) for n in (0, 999, 1000, 28_870, 3_500_000, 2 * 10**9, 999_940, 999_960, 999_960_000)] == [
        "0 B",
        "999 B",
        "1.0 kB",
        "28.9 kB",
        "3.5 MB",
        "2.0 GB",
        "999.9 kB",
        "1.0 MB",
        "1.0 GB",
    ]


def test_precise_bn_makes_eval_mode_see_the_training_data():
    """A Keras-momentum model after a short schedule: running statistics lag; precise BN fixes it."""
    from fedmd_ray import training
    from fedmd_ray.models import build_model

    torch.manual_seed(0)
    model = build_model("paper-cnn2-16-32", (1, 8, 8), 4)
    x = torch.rand(64, 1, 8, 8) * 0.2 + 0.7  # far from the statistics' initial 0 mean / 1 variance
    y = torch.arange(64) % 4
    x = x + y.view(-1, 1, 1, 1).float() * 0.05
    training.fit_classifier(model, x, y, epochs=20, batch_size=16, lr=1e-2)
    lagging, batch = training.batch_norm_gap(model, x, y, batch_size=64)
    training.recompute_bn_statistics(model, x, batch_size=64)
    precise, _ = training.batch_norm_gap(model, x, y, batch_size=64)
    assert batch - lagging > 0.25 and precise >= batch - 0.05


def test_transfer_health_names_a_party_near_chance_and_a_batch_norm_lag():
    from fedmd_ray.analysis.metrics import transfer_health

    rows = [
        {
            "phase": "transfer",
            "party": 0,
            "model": "ok-net",
            "test_accuracy": 0.8,
            "train_accuracy": 1.0,
            "train_accuracy_batch_stats": 1.0,
        },
        {
            "phase": "transfer",
            "party": 1,
            "model": "mlp-128",
            "test_accuracy": 0.195,
            "train_accuracy": 0.3,
            "train_accuracy_batch_stats": 0.3,
        },
        {
            "phase": "transfer",
            "party": 2,
            "model": "paper-cnn3",
            "test_accuracy": 0.42,
            "train_accuracy": 0.43,
            "train_accuracy_batch_stats": 1.0,
        },
    ]
    warnings = transfer_health(rows, private_classes=5)
    assert len(warnings) == 2
    assert warnings[0].startswith("party 1 (mlp-128) ended transfer learning near chance (19.5%; chance 20.0%")
    assert "party 2 (paper-cnn3)" in warnings[1] and "set precise_bn=true" in warnings[1]
    rows[1] = {**rows[1], "test_accuracy": 0.49, "train_accuracy": 1.0, "private_refit": True}
    warnings = transfer_health(rows, private_classes=5)
    assert len(warnings) == 2 and warnings[0].startswith("party 1 (mlp-128) did not fit its own private images")
    unknown = transfer_health(rows, private_classes=None)  # a report without config.json: chance unknown
    assert unknown == warnings


def test_report_without_config_json_keeps_the_health_findings_the_table_holds(tmp_path):
    from fedmd_ray.analysis.report import report

    config = fedmd_ray.preset("quick", **{**LOCAL, "rounds": 1})
    fedmd_ray.run(config, out_dir=tmp_path, verbose=False)
    rows = pq.read_table(tmp_path / "results.parquet").to_pylist()
    rows[0] = {**rows[0], "private_refit": True}  # what a refitted private fit leaves in the table
    pq.write_table(
        pa.Table.from_pylist(rows, schema=pq.read_schema(tmp_path / "results.parquet")), tmp_path / "results.parquet"
    )
    (tmp_path / "config.json").unlink()
    text, _ = report(tmp_path)
    assert f"party {rows[0]['party']} ({rows[0]['model']}) did not fit its own private images" in text
    assert "no near-chance check: " in text and "config.json is missing or unreadable" in text


def test_a_run_warns_of_fields_its_strategy_ignores_and_of_a_trimmed_mean_that_trims_none(monkeypatch):
    """They change the run id, not the run: a user who set them for this run must hear so."""
    from fedmd_ray.experiment import prepare
    from fedmd_ray.strategy import STRATEGIES

    notes = prepare(fedmd_ray.preset("quick", strategy="cronus", aggregator="median", kt_rho=3.0)).notes
    assert notes == (
        "aggregator='median' has no effect: strategy cronus does not take it (fedmd does)",
        "kt_rho=3.0 has no effect: strategy cronus does not take it (kt-pfl does)",
        "trim_fraction=0.2 of 3 parties trims none (it rounds down): the consensus is their plain mean; "
        "trim_fraction >= 0.333 trims one at each end",
    )
    assert prepare(fedmd_ray.preset("quick", strategy="cronus", trim_fraction=0.34)).notes == ()
    assert prepare(fedmd_ray.preset("quick", strategy="kt-pfl", temperature=2.0, kt_rho=0.1)).notes == ()
    assert prepare(fedmd_ray.preset("quick", strategy=fedmd_ray.FedMD(), temperature=2.0)).notes == (
        "temperature=2.0 has no effect: strategy FedMD(aggregator='mean', loss='l1', temperature=1.0, "
        "trim_fraction=0.2) does not take it (fedmd, fedmd-cw, fedmd-kl, kt-pfl do)",
    )  # an instance keeps its own
    monkeypatch.setattr(STRATEGIES, "_items", dict(STRATEGIES._items))  # the registration below ends with the test
    fedmd_ray.register_strategy("takes-seed", TakesSeed)
    assert prepare(fedmd_ray.preset("quick", seed=3)).notes == ()  # every run uses the seed: not a strategy's field
    assert prepare(fedmd_ray.preset("quick", kt_lr=0.1)).notes == (
        "kt_lr=0.1 has no effect: strategy fedmd does not take it (kt-pfl does)",
    )
    assert (
        "(fedmd, fedmd-cw, fedmd-kl, kt-pfl, takes-seed do)"
        in prepare(fedmd_ray.preset("quick", strategy="local", temperature=2.0)).notes[0]
    )


class TakesSeed(fedmd_ray.FedMD):
    """A user's strategy built from a field that every run uses."""

    def __init__(self, seed: int = 0, temperature: float = 1.0) -> None:
        super().__init__(temperature=temperature)
        self.seed = seed
