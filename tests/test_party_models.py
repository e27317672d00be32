"""Party models out of a run: written where documented, tensors only, loaded ready to classify."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import fedmd_ray
from fedmd_ray.errors import ConfigError, DataError
from fedmd_ray.outdir import LOCK_FILE
from fedmd_ray.party_models import kept_models, model_path

QUICK = dict(backend="local", torch_threads=1)


def _accuracy(model: nn.Module, task) -> float:
    with torch.no_grad():
        predicted = model(torch.as_tensor(task.test_x)).argmax(dim=1).numpy()
    return float(np.mean(predicted == task.test_y))


def _final(table, rounds: int) -> dict[int, float]:
    return {r["party"]: r["test_accuracy"] for r in table.to_pylist() if r["round"] == rounds}


@pytest.mark.parametrize("fields", [dict(), dict(swa=True, rounds=4, wise_ft=0.5)])
def test_each_loaded_party_model_scores_what_the_run_reported(tmp_path, fields):
    config = fedmd_ray.preset("quick", **{"rounds": 2, **QUICK, **fields})
    table = fedmd_ray.run(config, out_dir=tmp_path, verbose=False)
    task = fedmd_ray.load_task(config)
    reported = _final(table, config.rounds)
    for party, accuracy in reported.items():  # with swa / wise_ft: the averaged, blended model it reported
        model = fedmd_ray.load_party_model(tmp_path, party)
        assert not model.training
        assert _accuracy(model, task) == pytest.approx(accuracy)
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["party-000.pt", "party-001.pt", "party-002.pt"]
    assert not (tmp_path / LOCK_FILE).exists()  # a finished run leaves no lock behind


def test_a_model_file_holds_tensors_and_what_rebuilds_the_model(tmp_path):
    config = fedmd_ray.preset("quick", rounds=1, **QUICK)
    fedmd_ray.run(config, out_dir=tmp_path, verbose=False)
    saved = torch.load(model_path(tmp_path, 1), weights_only=True)  # no pickled code to run
    about = saved["about"]
    assert about["party"] == 1 and about["round"] == 1 and about["entry"] == "mlp-64"
    assert about["input_shape"] == [1, 8, 8] and about["n_classes"] == 10
    assert about["class_names"] == [str(c) for c in range(10)]  # public 0-4, then private 5-9
    assert all(isinstance(v, torch.Tensor) for v in saved["weights"].values())


def test_every_round_keeps_each_rounds_models_and_never_keeps_none(tmp_path):
    config = fedmd_ray.preset("quick", rounds=2, save_models="every_round", **QUICK)
    table = fedmd_ray.run(config, out_dir=tmp_path / "every", verbose=False)
    task = fedmd_ray.load_task(config)
    names = {str(p.relative_to(tmp_path / "every" / "models")) for p in kept_models(tmp_path / "every")}
    assert names == {
        f"{folder}party-00{p}.pt" for p in range(3) for folder in ("", "round-000/", "round-001/", "round-002/")
    }
    for round_ in (0, 1):
        for party, accuracy in _final(table, round_).items():
            model = fedmd_ray.load_party_model(tmp_path / "every", party, round=round_)
            assert _accuracy(model, task) == pytest.approx(accuracy)
    fedmd_ray.run(config.replace(save_models="never"), out_dir=tmp_path / "never", verbose=False)
    assert not (tmp_path / "never" / "models").exists()
    fedmd_ray.run(config.replace(save_models="never"), out_dir=tmp_path / "every", overwrite=True, verbose=False)
    assert not (tmp_path / "every" / "models").exists()  # never the old run's models beside the new table


def test_a_run_without_rounds_keeps_its_transfer_learned_models(tmp_path):
    config = fedmd_ray.preset("quick", rounds=0, **QUICK)
    table = fedmd_ray.run(config, out_dir=tmp_path, verbose=False)
    task = fedmd_ray.load_task(config)
    for party, accuracy in _final(table, 0).items():
        assert _accuracy(fedmd_ray.load_party_model(tmp_path, party), task) == pytest.approx(accuracy)


def test_a_resumed_run_keeps_the_models_of_the_run_it_continues(stopped_and_resumed, tmp_path):
    stopped_and_resumed(fedmd_ray.preset("quick", rounds=2, **QUICK))
    for party in range(3):
        straight = torch.load(model_path(tmp_path / "straight", party), weights_only=True)["weights"]
        resumed = torch.load(model_path(tmp_path / "resumed", party), weights_only=True)["weights"]
        assert straight.keys() == resumed.keys()
        assert all(torch.equal(straight[k], resumed[k]) for k in straight)  # bit for bit


def test_a_model_from_a_factory_object_loads_with_that_factory(tmp_path):
    def tiny(input_shape, n_classes):
        return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), n_classes))

    config = fedmd_ray.preset("quick", rounds=1, models=(tiny, "mlp-64", "cnn1-16"), **QUICK)
    table = fedmd_ray.run(config, out_dir=tmp_path, verbose=False)
    with pytest.raises(ConfigError, match="factory="):
        fedmd_ray.load_party_model(tmp_path, 0)
    model = fedmd_ray.load_party_model(tmp_path, 0, factory=tiny)
    assert _accuracy(model, fedmd_ray.load_task(config)) == pytest.approx(_final(table, 1)[0])


def test_a_missing_or_damaged_model_is_one_clear_error(tmp_path):
    fedmd_ray.run(fedmd_ray.preset("quick", rounds=1, **QUICK), out_dir=tmp_path, verbose=False)
    with pytest.raises(DataError, match="party-007.pt does not exist"):
        fedmd_ray.load_party_model(tmp_path, 7)
    with pytest.raises(DataError, match="round"):
        fedmd_ray.load_party_model(tmp_path, 0, round=1)  # the run kept only its last models
    model_path(tmp_path, 2).write_bytes(b"not a model")
    with pytest.raises(DataError, match="is not a fedmd_ray party model"):
        fedmd_ray.load_party_model(tmp_path, 2)


def test_report_lists_the_party_models(tmp_path):
    from fedmd_ray.analysis.report import report

    fedmd_ray.run(fedmd_ray.preset("quick", rounds=1, **QUICK), out_dir=tmp_path, verbose=False)
    text, _ = report(tmp_path)
    assert f"party models: 3 in {tmp_path / 'models'}" in text


@pytest.mark.slow  # ~40 s: a two-trial sweep
@pytest.mark.timeout(300)
def test_a_sweep_keeps_no_models_by_default_and_each_trials_when_asked(ray_cluster, tmp_path):
    config = fedmd_ray.preset("quick", rounds=1, cpus_per_party=0.3, torch_threads=1)
    fedmd_ray.sweep(config, {"subset_size": [100]}, out_dir=tmp_path / "plain", verbose=False)
    assert not list((tmp_path / "plain").rglob("models"))  # the transfer cache's states are not party models
    table = fedmd_ray.sweep(
        config.replace(save_models="end"), {"subset_size": [100, 300]}, out_dir=tmp_path / "kept", verbose=False
    )
    task = fedmd_ray.load_task(config)
    trials = sorted((tmp_path / "kept").glob("tune/*/fedmd_trials/*"))
    assert sorted(t.name for t in trials) == sorted(set(table.column("trial_id").to_pylist()))
    for trial in trials:
        rows = [r for r in table.to_pylist() if r["trial_id"] == trial.name and r["round"] == 1]
        for row in rows:  # each trial's own models, scoring what that trial reported
            model = fedmd_ray.load_party_model(trial, row["party"])
            assert _accuracy(model, task) == pytest.approx(row["test_accuracy"])


def test_weights_that_do_not_fit_the_given_factory_and_bad_arguments_are_refused(tmp_path):
    fedmd_ray.run(fedmd_ray.preset("quick", rounds=0, **QUICK), out_dir=tmp_path, verbose=False)
    with pytest.raises(ConfigError, match="do not fit the model built for them"):
        fedmd_ray.load_party_model(tmp_path, 0, factory=lambda shape, n: nn.Linear(3, n))
    for party in ("0", -1, True, 1.0):
        with pytest.raises(TypeError, match="party must be"):
            fedmd_ray.load_party_model(tmp_path, party)
