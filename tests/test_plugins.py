"""Your own models, data and strategies: every way to name them, where they run, what is refused."""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import logging
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from cli_helpers import run_cli, sets
from torch import nn

import fedmd_ray
from fedmd_ray.checkpoint import load_checkpoint
from fedmd_ray.cli import main
from fedmd_ray.config import FedMDConfig, resumable_fields, setting
from fedmd_ray.data import load_source
from fedmd_ray.errors import ConfigError, DataError, PartyFailure, PluginError
from fedmd_ray.faults import VARIABLE
from fedmd_ray.methods import DSFL, FedMDKL
from fedmd_ray.strategy import FedMD

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))  # before Ray starts: its workers inherit the path

from custom_strategy import AgreementWeighted, TrimmedMean  # noqa: E402

LOCAL = dict(backend="local", rounds=2, torch_threads=1)


def _metrics(table):
    return table.select(["party", "model", "phase", "round", "test_accuracy", "test_loss"]).to_pylist()


# --- one declaration per field ------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class WithANewField(FedMDConfig):
    label_smoothing: float = 0.0  # declared without a role: it changes results unless it says otherwise
    log_every: int = setting(1, role="execution")


def test_a_new_field_is_in_the_fingerprint_and_the_cache_key_unless_declared_otherwise():
    base = WithANewField(public_data="digits", private_data="digits")
    smoothed = base.replace(label_smoothing=0.1)
    assert smoothed.fingerprint() != base.fingerprint()
    assert smoothed.transfer_fingerprint() != base.transfer_fingerprint()
    chatty = base.replace(log_every=5)
    assert chatty.fingerprint() == base.fingerprint() and chatty.transfer_fingerprint() == base.transfer_fingerprint()
    assert "log_every" in resumable_fields(WithANewField) and "label_smoothing" not in resumable_fields(WithANewField)


def test_roles_derive_every_list():
    base = fedmd_ray.preset("quick")
    assert set(resumable_fields()) == {
        "backend",
        "cpus_per_party",
        "parties_per_actor",
        "driver_cpus",
        "address",
        "actor_start_timeout_s",
        "out_dir",
        "on_party_failure",
        "max_party_restarts",
        "round_timeout_s",
        "connect_timeout_s",
        "save_models",
    }
    for collaboration in (dict(rounds=7), dict(subset_size=100), dict(strategy=TrimmedMean()), dict(collab_lr=1e-4)):
        changed = base.replace(**collaboration)
        assert changed.transfer_fingerprint() == base.transfer_fingerprint(), collaboration
        assert changed.fingerprint() != base.fingerprint(), collaboration
    assert base.replace(gpus_per_party=0.5).fingerprint() == base.replace(gpus_per_party=0.25).fingerprint()
    with pytest.raises(ConfigError, match=r"subset_size=0 is not allowed: must be an integer in \[1, 1000000000\]"):
        base.replace(subset_size=0)  # ranges come from the same declarations


# --- models -------------------------------------------------------------------------------------
def tiny_by_value(input_shape, n_classes):
    """Defined in this module but handed over as an object (a copy of plugin_fixtures.tiny_mlp)."""
    c, h, w = input_shape
    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 24), nn.ReLU(), nn.Linear(24, n_classes))


def test_every_kind_of_model_entry_builds_and_trains_the_same_network():
    """Import path, registered name, object: the same factory gives the same numbers."""
    from plugin_fixtures import tiny_mlp

    fedmd_ray.register_model("tiny-registered", tiny_mlp)
    tables = [
        fedmd_ray.run(fedmd_ray.preset("quick", models=(entry, "cnn2-8-16"), **LOCAL), verbose=False)
        for entry in ("plugin_fixtures:tiny_mlp", "tiny-registered", tiny_mlp)
    ]
    scores = [[(r["party"], r["phase"], r["round"], r["test_accuracy"]) for r in t.to_pylist()] for t in tables]
    assert scores[0] == scores[1] == scores[2]
    assert tables[0]["model"].to_pylist()[:2] == ["plugin_fixtures:tiny_mlp", "cnn2-8-16"]
    assert tables[1]["model"].to_pylist()[0] == "tiny-registered"


def test_the_fingerprint_covers_the_models_identity():
    from plugin_fixtures import tiny_mlp

    by_path = fedmd_ray.preset("quick", models=("plugin_fixtures:tiny_mlp",))
    assert by_path.fingerprint() == fedmd_ray.preset("quick", models=(tiny_mlp,)).fingerprint()
    assert by_path.fingerprint() != fedmd_ray.preset("quick", models=(tiny_by_value,)).fingerprint()  # other source
    assert by_path.to_json()["models"] == ["plugin_fixtures:tiny_mlp"]


def test_a_strategys_identity_covers_its_own_base_classes_not_the_librarys(tmp_path, monkeypatch):
    """Editing a base class of yours changes what `super()` runs: a resume must refuse it."""
    from fedmd_ray.plugins import object_identity

    child = (
        "from userbase import Base\n\nclass Child(Base):\n    def aggregate(self, scores, info):\n"
        "        return super().aggregate(scores, info)\n"
    )
    identities = []
    for version, body in enumerate(["scores.mean(axis=0)", "np.median(scores, axis=0)"]):
        folder = tmp_path / str(version)
        folder.mkdir()
        (folder / "userbase.py").write_text(
            "import numpy as np\nimport fedmd_ray\n\n"
            f"class Base(fedmd_ray.FedMD):\n    def aggregate(self, scores, info):\n"
            f"        return {body}\n"
        )
        (folder / "userchild.py").write_text(child)
        monkeypatch.syspath_prepend(str(folder))
        for name in ("userbase", "userchild"):
            sys.modules.pop(name, None)
        import userchild

        identities.append(object_identity(userchild.Child))
        assert object_identity(userchild.Child()).startswith(identities[-1] + "#")  # an instance: its class's too
        own_source = hashlib.sha256(inspect.getsource(userchild.Base).encode()).hexdigest()[:12]
        assert object_identity(userchild.Base) == f"userbase:Base@{own_source}"  # fedmd_ray's FedMD does not enter
    assert identities[0] != identities[1]
    for name in ("userbase", "userchild"):
        sys.modules.pop(name, None)


def test_partials_and_instances_are_told_apart_by_their_arguments():
    """Two grid points of one factory or one strategy class are two runs with two labels."""
    import functools

    from plugin_fixtures import tiny_mlp, wrong_output

    from fedmd_ray.plugins import describe

    def fingerprint(model):
        return fedmd_ray.preset("quick", models=(model,)).fingerprint()

    narrow, wide = functools.partial(tiny_mlp), functools.partial(tiny_mlp, n_classes=10)
    assert len({fingerprint(narrow), fingerprint(wide), fingerprint(functools.partial(wrong_output))}) == 3
    assert fingerprint(functools.partial(tiny_mlp, n_classes=10)) == fingerprint(wide)
    assert describe(wide) == "plugin_fixtures:tiny_mlp(n_classes=10)"
    strategies = [TrimmedMean(), TrimmedMean(trim=0.4)]
    assert describe(strategies[0]) != describe(strategies[1])
    assert describe(strategies[1]).startswith("TrimmedMean(") and "0.4" in describe(strategies[1])


def test_a_model_defined_in_a_function_travels_by_value_to_ray_actors_with_the_numbers_of_local(ray_cluster):
    def local_net(input_shape, n_classes):  # no import path: Ray's cloudpickle copies it
        c, h, w = input_shape
        return nn.Sequential(nn.Conv2d(c, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * h * w, n_classes))

    config = fedmd_ray.preset("quick", models=(local_net, "mlp-64"), **LOCAL)
    local = fedmd_ray.run(config, verbose=False)
    remote = fedmd_ray.run(config.replace(backend="ray", parties_per_actor=1), verbose=False)
    assert _metrics(remote) == _metrics(local)
    assert config.to_json()["models"][0].startswith("<object ")  # a file cannot rebuild it: said on resume


@pytest.mark.parametrize(
    "entry, message",
    [
        ("no_such_pkg_xyz.nets:net", "model 'no_such_pkg_xyz.nets:net': cannot import module 'no_such_pkg_xyz.nets'"),
        ("plugin_fixtures:missing", "'plugin_fixtures' has no attribute 'missing'"),
        ("plugin_fixtures:NOT_CALLABLE", "is a int, not a factory"),
        (
            "plugin_fixtures:raises",
            "model 'plugin_fixtures:raises' for input (2, 1, 8, 8) and 10 classes: RuntimeError",
        ),
        ("plugin_fixtures:not_a_module", "returned str, not a torch.nn.Module"),
        ("plugin_fixtures:wrong_output", "maps input (2, 1, 8, 8) to (2, 11); expected float logits of shape (2, 10)"),
        (
            "plugin_fixtures:no_arguments",
            "is not a factory(input_shape, n_classes): it cannot be called with those two arguments",
        ),
        ("plugin_fixtures:unregistered_layers", "has no trainable parameters (layers kept in a plain list"),
        ("plugin_fixtures:holds_a_lock", "'plugin_fixtures:holds_a_lock' cannot be copied (TypeError"),
        ("plugin_fixtures:tuple_when_training", "in train mode maps input (2, 1, 8, 8) to tuple; expected logits"),
        ("my-net", "model 'my-net' is not known"),
    ],
)
def test_a_bad_model_entry_exits_2_before_ray_starts_and_writes_nothing(entry, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).parent)
    out = tmp_path / "run"
    assert main(["run", "--preset", "quick", "--set", f"models={entry},cnn2-8-16", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert "Started a local Ray instance" not in err and not out.exists()


# --- data ---------------------------------------------------------------------------------------
def _write_npz(path: Path, source: fedmd_ray.LabeledImages, **overrides) -> Path:
    arrays = dict(
        x_train=source.train.x,
        y_train=source.train.y,
        x_test=source.test.x,
        y_test=source.test.y,
        class_names=np.array(source.class_names),
    )
    np.savez(path, **{**arrays, **overrides})
    return path


def test_npz_loader_and_builtin_give_one_task_with_the_same_numbers(tmp_path):
    """The same arrays through three doors are checked by one path and train identically."""
    digits = load_source("digits")
    npz = _write_npz(tmp_path / "digits.npz", digits)
    tables = [
        fedmd_ray.run(fedmd_ray.preset("quick", public_data=entry, private_data=entry, **LOCAL), verbose=False)
        for entry in ("digits", str(npz), "plugin_fixtures:digits_subset")
    ]
    assert _metrics(tables[0]) == _metrics(tables[1]) == _metrics(tables[2])


def test_an_image_folder_is_read_into_arrays_once(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = {}
    for part, n in (("train", 4), ("test", 2)):
        for name in ("cat", "dog"):
            (tmp_path / part / name).mkdir(parents=True)
            for i in range(n):
                image = rng.integers(0, 256, (6, 5), dtype=np.uint8)
                Image.fromarray(image).save(tmp_path / part / name / f"{i}.png")
                pixels[(part, name, i)] = image
    data = load_source(str(tmp_path))
    assert data.class_names == ("cat", "dog")
    assert data.train.x.shape == (8, 1, 6, 5) and data.test.x.shape == (4, 1, 6, 5)
    assert data.train.y.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    np.testing.assert_array_equal(data.train.x[5, 0], pixels[("train", "dog", 1)] / np.float32(255))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(y_train=np.zeros(10)), "labels must be an integer numpy array, got float64"),
        (dict(y_train=np.full(1397, 12)), "labels lie in 12..12 but there are 10 class names"),
        (dict(x_train=np.full((1397, 1, 8, 8), np.nan, dtype=np.float32)), "images hold NaN or infinite values"),
        (dict(x_train=np.full((1397, 1, 8, 8), 2.0, dtype=np.float32)), "image values lie in [2, 2]"),
        (dict(x_train=np.zeros((1397, 64), dtype=np.float32)), "images must be a numpy array (n, C, H, W)"),
        (dict(x_train=np.zeros((1397, 8, 8, 3), dtype=np.uint8)), "look channels-last"),
        (dict(y_test=np.zeros(3, dtype=np.int64)), "labels are shaped (3,); expected (400,)"),
        (
            dict(x_test=np.zeros((400, 1, 4, 4), dtype=np.float32)),
            "train images are (1, 8, 8) but test images are (1, 4, 4)",
        ),
    ],
)
def test_bad_arrays_are_refused_with_what_is_wrong(overrides, message, tmp_path):
    npz = _write_npz(tmp_path / "bad.npz", load_source("digits"), **overrides)
    with pytest.raises(DataError) as err:
        fedmd_ray.check(fedmd_ray.preset("quick", private_data=str(npz)))
    assert message in str(err.value) and str(npz) in str(err.value)


def test_npz_labels_and_class_names_are_checked_whether_or_not_names_are_given(tmp_path):
    digits = load_source("digits")
    arrays = dict(x_train=digits.train.x, x_test=digits.test.x, y_test=digits.test.y)
    np.savez(tmp_path / "float.npz", **arrays, y_train=digits.train.y.astype(np.float64))  # no class_names
    np.savez(tmp_path / "flat.npz", **arrays, y_train=digits.train.y, class_names=np.array([list("0123456789")]))
    np.savez(
        tmp_path / "rgba.npz",
        x_train=np.repeat(digits.train.x, 4, axis=1),
        x_test=np.repeat(digits.test.x, 4, axis=1),
        y_train=digits.train.y,
        y_test=digits.test.y,
    )
    for name, message in (
        ("float", "labels must be an integer numpy array, got float64"),
        ("flat", "class_names is shaped (1, 10); expected a 1-D array of names"),
        ("rgba", "4 channels cannot become 1 (only grayscale <-> colour is converted)"),
    ):
        with pytest.raises(DataError) as err:
            fedmd_ray.check(fedmd_ray.preset("quick", private_data=str(tmp_path / f"{name}.npz")))
        assert message in str(err.value) and name in str(err.value)


def test_a_loader_that_raises_or_returns_something_else_is_named(tmp_path):
    def broken():
        raise OSError("disk on fire")

    with pytest.raises(DataError, match="data source '.*broken': its loader raised OSError: disk on fire"):
        fedmd_ray.check(fedmd_ray.preset("quick", private_data=broken))
    with pytest.raises(DataError, match="returned dict; a source loader must return fedmd_ray.LabeledImages"):
        fedmd_ray.check(fedmd_ray.preset("quick", private_data=lambda: {"x": 1}))
    with pytest.raises(ConfigError, match="is a file but not an .npz archive"):
        (tmp_path / "data.csv").write_text("1,2")
        fedmd_ray.check(fedmd_ray.preset("quick", private_data=str(tmp_path / "data.csv")))


def test_a_data_files_content_is_its_identity(tmp_path):
    digits = load_source("digits")
    npz = _write_npz(tmp_path / "d.npz", digits)
    before = fedmd_ray.preset("quick", private_data=str(npz)).transfer_fingerprint()
    _write_npz(npz, digits, y_test=digits.test.y[::-1].copy())
    assert fedmd_ray.preset("quick", private_data=str(npz)).transfer_fingerprint() != before


# --- strategies ---------------------------------------------------------------------------------
def test_trimmed_mean_drops_the_extremes_on_a_hand_computed_example():
    scores = np.array([[[0.0, 1.0]], [[10.0, 2.0]], [[1.0, -50.0]], [[2.0, 3.0]]], dtype=np.float32)  # (4, 1, 2)
    out = TrimmedMean(trim=0.25).aggregate(scores, fedmd_ray.RoundInfo(1, (0, 1, 2, 3), 4))
    np.testing.assert_allclose(out, [[1.5, 1.5]])  # drops 0 and 10 / -50 and 3


def test_agreement_weighted_gives_each_party_its_own_target_and_remembers():
    strategy = AgreementWeighted(momentum=0.5)
    scores = np.array([[[0.9, 0.1]], [[0.8, 0.2]], [[0.1, 0.9]]], dtype=np.float32)  # parties 0, 1 agree
    targets = strategy.aggregate(scores, fedmd_ray.RoundInfo(1, (0, 1, 2), 3))
    assert targets.shape == (3, 1, 2)
    # row 0 weights: agreement EMA 0.5*1 + 0.5*[1, 1, 0] = [1, 1, 0.5], normalised by 2.5
    np.testing.assert_allclose(targets[0], (1 * scores[0] + 1 * scores[1] + 0.5 * scores[2]) / 2.5, rtol=1e-6)
    np.testing.assert_allclose(strategy.state_dict()["agreement"][0], [1.0, 1.0, 0.5])


def test_a_stateful_personalised_strategy_gives_local_and_ray_the_same_numbers(ray_cluster):
    config = fedmd_ray.preset("quick", strategy=AgreementWeighted(temperature=2.0), **LOCAL)
    local = fedmd_ray.run(config, verbose=False)
    remote = fedmd_ray.run(config.replace(backend="ray"), verbose=False)
    assert _metrics(remote) == _metrics(local)
    assert _metrics(fedmd_ray.run(config, verbose=False)) == _metrics(local)  # and the caller's object is unchanged


def test_strategy_state_is_checkpointed_and_a_resume_continues_bit_identically(stopped_and_resumed, tmp_path):
    config = fedmd_ray.preset("quick", strategy="custom_strategy:AgreementWeighted", **{**LOCAL, "rounds": 3})
    straight, resumed = stopped_and_resumed(config)
    agreement = load_checkpoint(tmp_path / "straight").strategy_state["agreement"]  # the fixture's directories
    assert agreement.shape == (3, 3) and not np.allclose(agreement, 1)
    assert _metrics(resumed) == _metrics(straight)  # round 3 needs the agreement matrix of round 2


def test_a_strategy_raising_inside_digest_meets_the_failure_policy_with_party_round_and_phase():
    config = fedmd_ray.preset("quick", strategy="plugin_fixtures:FailsOnLargeBatches", on_party_failure="fail", **LOCAL)
    with pytest.raises(
        PartyFailure,
        match=r"party 0 \(cnn2-8-16\) failed in digest/revisit/evaluate of round 1: "
        r"raised ZeroDivisionError: digest blew up \(in digest\)",
    ):
        fedmd_ray.run(config, verbose=False)


def test_a_nan_digest_loss_is_the_partys_failure_before_any_weight_turns_nan():
    """Not `aggregate`'s of the next round (it used to be blamed, the party's row said ok with a nan loss)."""
    config = fedmd_ray.preset(
        "quick", strategy="plugin_fixtures:NanLossOnLargeBatches", on_party_failure="fail", **LOCAL
    )
    with pytest.raises(
        PartyFailure,
        match=r"party 0 \(cnn2-8-16\) failed in digest/revisit/evaluate of round 1: "
        r"raised FloatingPointError: the training loss is nan .*\(in digest\)",
    ):
        fedmd_ray.run(config, verbose=False)


def test_a_nan_loss_is_not_restarted_it_would_recur(caplog):
    """A restart redoes the same arithmetic from the same state: the party is dropped at once."""
    models = ["plugin_fixtures:nan_on_real_images", "plugin_fixtures:tiny_mlp", "plugin_fixtures:tiny_mlp"]
    config = fedmd_ray.preset("quick", models=models, on_party_failure="restart", max_party_restarts=2, **LOCAL)
    with caplog.at_level(logging.WARNING, logger="fedmd_ray"):
        table = fedmd_ray.run(config, verbose=False).to_pylist()
    assert "restarted" not in {r["status"] for r in table}
    assert {r["status"] for r in table if r["party"] == 0} == {"dropped"}
    assert "party 0 (plugin_fixtures:nan_on_real_images) not restarted: its numbers went non-finite" in caplog.text
    assert "failed again after a restart" not in caplog.text


def test_a_non_finite_step_is_known_as_such_after_crossing_ray(ray_cluster):
    """The Ray pool decides from the exception it receives: the mark must survive pickling."""
    from fedmd_ray.actors.messages import StepError, repeats_on_restart

    @ray_cluster.remote(num_cpus=0)
    def step(repeats: bool) -> None:
        raise StepError("FloatingPointError: the training loss is nan (in digest)", repeats)

    for repeats in (True, False):
        with pytest.raises(ray_cluster.exceptions.RayTaskError) as err:
            ray_cluster.get(step.remote(repeats), timeout=60)
        assert repeats_on_restart(err.value.cause) is repeats


def test_a_model_with_nan_outputs_is_that_partys_failure_and_the_others_go_on():
    models = ["plugin_fixtures:nan_on_real_images", "plugin_fixtures:tiny_mlp", "plugin_fixtures:tiny_mlp"]
    config = fedmd_ray.preset("quick", models=models, on_party_failure="drop", **LOCAL)
    table = fedmd_ray.run(config, verbose=False).to_pylist()
    assert {r["status"] for r in table if r["party"] == 0} == {"dropped"}
    others = [r for r in table if r["party"] != 0 and r["phase"] == "collaborate"]
    assert {r["status"] for r in others} == {"ok"} and all(np.isfinite(r["test_loss"]) for r in others)
    with pytest.raises(
        PartyFailure,
        match=r"party 0 \(plugin_fixtures:nan_on_real_images\) failed in transfer "
        r".*FloatingPointError: the training loss is nan .*\(in transfer learning\)",
    ):
        fedmd_ray.run(config.replace(on_party_failure="fail"), verbose=False)


@pytest.mark.parametrize(
    "entry, message",
    [
        ("plugin_fixtures:FailsInRoundTwo", "strategy FailsInRoundTwo raised in aggregate of round 2: KeyError"),
        ("plugin_fixtures:WrongShapeInRoundTwo", "aggregate returned float32 (3, 3, 10); expected float (300, 10)"),
        (
            "plugin_fixtures:StringStateInRoundTwo",
            "failed in aggregate of round 2: strategy StringStateInRoundTwo."
            "state_dict must return a dict of str -> numeric numpy arrays",
        ),
    ],
)
def test_a_strategy_failing_on_the_driver_stops_the_run_naming_it_and_the_round(entry, message, tmp_path):
    config = fedmd_ray.preset("quick", strategy=entry, **{**LOCAL, "rounds": 3})
    with pytest.raises(PluginError) as err:
        fedmd_ray.run(config, out_dir=tmp_path, verbose=False)
    assert message in str(err.value)
    assert load_checkpoint(tmp_path).round == 1  # round 1 is kept (a resume after an unchanged rerun)
    assert max(r for r in pq.read_table(tmp_path / "results.parquet")["round"].to_pylist() if r is not None) == 1


@pytest.mark.parametrize(
    "entry, message",
    [
        ("plugin_fixtures:BadShare", "share returned (4, 2) for logits (4, 10); expected the same shape"),
        ("plugin_fixtures:ScalarlessLoss", "digest_loss must return a scalar tensor"),
        ("plugin_fixtures:tiny_mlp", "'plugin_fixtures:tiny_mlp' is not a Strategy subclass or instance"),
        ("plugin_fixtures:SharesState", "state_dict must return a dict of str -> numeric numpy arrays"),
        ("plugin_fixtures:StateWithoutLoad", "was given state ['n'] but does not override load_state_dict"),
        ("no_such_strategy", "strategy 'no_such_strategy' is not known"),
    ],
)
def test_a_bad_strategy_is_refused_before_ray_starts(entry, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).parent)
    assert main(["run", "--preset", "quick", "--set", f"strategy={entry}", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Started a local Ray instance" not in err and not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: FedMDKL(temperature=1e-300), r"FedMDKL\(temperature=1e-300.*\.share returned non-finite"),
        (lambda: DSFL(era_temperature=1e-320), r"DSFL\(era_temperature=1e-320\)\.aggregate returned non-fin"),
        (
            lambda: FedMD(digest_loss="kl", temperature=1e-40),
            r"FedMD\(.*temperature=1e-40.*\)\.digest_loss gave a non-finite",
        ),
        (
            lambda: FedMD(digest_loss="kl", temperature=1e300),
            r"FedMD\(.*temperature=1e\+300.*\) failed a trial round .*Overflow",
        ),
    ],
)
def test_parameters_that_overflow_are_refused_in_the_trial_round_with_their_values(build, message, recwarn):
    """Not later, as nan losses after the run started; no numpy RuntimeWarning on the way. (The config's
    bounds refuse these values; a strategy built in Python is checked by its trial round.)"""
    from fedmd_ray.strategy import probe_strategy

    strategy = build()
    with pytest.raises(ConfigError, match=message):
        probe_strategy(strategy, n_parties=3, n_classes=10)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_constructor_parameters_named_like_fields_come_from_the_config():
    from fedmd_ray.strategy import resolve_strategy

    strategy = resolve_strategy("custom_strategy:AgreementWeighted", fedmd_ray.preset("quick", temperature=3.0))
    assert isinstance(strategy, AgreementWeighted) and strategy.temperature == 3.0 and strategy.momentum == 0.5
    fedmd = resolve_strategy("fedmd", fedmd_ray.preset("quick", aggregator="median", digest_loss="kl"))
    assert isinstance(fedmd, fedmd_ray.FedMD) and (fedmd.aggregator, fedmd.loss) == ("median", "kl")
    logits = torch.tensor([[2.0, 0.0]])
    assert fedmd.digest_loss(logits, logits).item() == pytest.approx(0.0, abs=1e-7)


def test_the_trial_round_gives_parties_different_scores_and_names_an_uncopyable_instance():
    """A strategy that divides by the parties' disagreement is valid: the trial round must not
    feed every party the same scores. An instance a run cannot copy is refused by name."""
    from plugin_fixtures import HoldsALock, InverseDeviation

    from fedmd_ray.strategy import probe_strategy, resolve_strategy

    probe_strategy(InverseDeviation(), n_parties=3, n_classes=10)
    with pytest.raises(ConfigError, match="strategy 'HoldsALock' cannot be copied .*locks, open files"):
        resolve_strategy(HoldsALock(), fedmd_ray.preset("quick"))


# --- plug-ins in sweep trials and across a CLI resume ---------------------------------------------
@pytest.mark.slow
def test_plugins_reach_sweep_trials_by_name_by_path_and_by_object(ray_cluster, tmp_path):
    from plugin_fixtures import tiny_mlp

    fedmd_ray.register_model("tiny-for-sweeps", tiny_mlp)  # registered here, installed in each trial
    config = fedmd_ray.preset(
        "quick", models=("tiny-for-sweeps", "cnn2-8-16"), rounds=1, cpus_per_party=0.3, torch_threads=1
    )
    grid = {"strategy": ["fedmd", TrimmedMean(trim=0.25), "custom_strategy:AgreementWeighted"]}
    table = fedmd_ray.sweep(config, grid, out_dir=tmp_path, verbose=False)
    df = table.to_pandas()
    assert sorted(df["strategy"].unique()) == ["TrimmedMean(trim=0.25)", "custom_strategy:AgreementWeighted", "fedmd"]
    assert set(df["model"]) == {"tiny-for-sweeps", "cnn2-8-16"}
    assert df.groupby("strategy").size().tolist() == [3 * 3] * 3  # 3 parties x (transfer, upper bound, round 1)
    round0 = df[df["round"] == 0].groupby("strategy")["test_accuracy"].apply(list)
    assert round0.iloc[0] == round0.iloc[1] == round0.iloc[2]  # one cached transfer phase for every strategy


@pytest.mark.slow
def test_a_cli_run_with_plugins_resumes_from_its_own_directory(tmp_path):
    import os

    env = {"PYTHONPATH": os.pathsep.join([str(EXAMPLES), os.environ.get("PYTHONPATH", "")])}
    fields = sets(
        "backend=local",
        "rounds=3",
        "torch_threads=1",
        "models=plugin_fixtures:tiny_mlp,cnn2-8-16",
        "strategy=custom_strategy:AgreementWeighted",
        "on_party_failure=fail",
    )
    here = Path(__file__).parent
    straight = run_cli("run", "--preset", "quick", *fields, "--quiet", "--out", str(tmp_path / "a"), env=env, cwd=here)
    assert straight.returncode == 0, straight.stderr
    failing = {**env, VARIABLE: "party=0,round=2,method=revisit,action=raise"}
    stopped = run_cli(
        "run", "--preset", "quick", *fields, "--quiet", "--out", str(tmp_path / "b"), env=failing, cwd=here
    )
    assert stopped.returncode == 2 and load_checkpoint(tmp_path / "b").round == 1
    resumed = run_cli("run", "--resume", str(tmp_path / "b"), "--quiet", env=env, cwd=here)
    assert resumed.returncode == 0, resumed.stderr
    assert _metrics(pq.read_table(tmp_path / "b" / "results.parquet")) == _metrics(
        pq.read_table(tmp_path / "a" / "results.parquet")
    )


def test_grid_and_set_take_import_paths_like_names():
    from fedmd_ray.config import parse_overrides
    from fedmd_ray.sweeps.space import parse_grid

    grid = parse_grid(
        ["models=plugin_fixtures:tiny_mlp,cnn2-8-16;cnn1-8", "strategy=fedmd,custom_strategy:TrimmedMean"]
    )
    assert grid == {
        "models": [("plugin_fixtures:tiny_mlp", "cnn2-8-16"), ("cnn1-8",)],
        "strategy": ["fedmd", "custom_strategy:TrimmedMean"],
    }
    assert parse_overrides(["private_data=~/data/mine.npz"]) == {"private_data": "~/data/mine.npz"}
    with pytest.raises(ConfigError, match="--set rounds is given twice"):
        parse_overrides(["rounds=3", "rounds=4"])
