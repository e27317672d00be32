import json

import pytest

import fedmd_ray
from fedmd_ray import FedMDConfig, preset
from fedmd_ray.config import PRESETS, parse_overrides
from fedmd_ray.errors import ConfigError


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (dict(rounds=-1), "rounds=-1"),
        (dict(subset_size=0), "subset_size=0"),
        (dict(n_parties=0), "n_parties=0"),
        (dict(aggregator="mode"), "aggregator='mode'"),
        (dict(public_data="imagenet"), "imagenet"),
        (dict(models=("resnet9000",)), "resnet9000"),
        (dict(partition="dirichlet"), "partition='dirichlet'"),
        (dict(digest_loss="hinge"), "digest_loss='hinge'"),
        (dict(backend="spark"), "backend='spark'"),
        (dict(rounds="3"), "rounds='3'"),
        (dict(lr=0), "lr=0"),
        (dict(cpus_per_party=1.5), "cpus_per_party=1.5"),
        (dict(gpus_per_party=-0.5), "gpus_per_party=-0.5"),
        (dict(eval_batch_size=0), "eval_batch_size=0"),
        (dict(partition="noniid", noniid_alpha=float("inf")), "noniid_alpha=inf is not allowed: must be a finite"),
        (dict(lr=float("nan")), "lr=nan is not allowed: must be a finite"),
        (dict(private_classes=(5, -1)), "private_classes=(5, -1) is not allowed: must be a list of class ids >= 0"),
        (dict(strategy="fedmdd"), "strategy 'fedmdd' is not known (did you mean 'fedmd'?)"),
        (dict(public_data="mnsit"), "public_data='mnsit' is not a known data source (did you mean 'mnist'?)"),
        (dict(models=(3,)), "models entry 3 is not allowed"),
    ],
)
def test_bad_values_name_field_value_and_rule(overrides, fragment):
    """Static checks: no data loaded, nothing imported."""
    with pytest.raises(ConfigError) as err:
        preset("offline", **overrides)
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (dict(private_classes=(5, 99)), "private_classes=[5, 99] is not allowed: must be class ids in 0..9"),
        (
            dict(public_data="mnist", private_data="mnist-idx", private_classes=(3, 7)),
            "share classes [3] of the same images",
        ),
        (dict(private_classes=(4, 5)), "share classes [4]"),
        (dict(models=("paper-cnn3-64-128-256",)), "paper-cnn3"),
        (dict(partition="writer"), "partition='writer' needs writer ids"),
        (dict(strategy="fedmd_ray.plugins:Registry"), "not a Strategy subclass or instance"),
        (dict(models=("no_such_module_xyz:net",)), "cannot import module 'no_such_module_xyz'"),
        (dict(models=("fedmd_ray.models:no_such_factory",)), "has no attribute 'no_such_factory'"),
        (
            dict(revisit_shift=4),
            "revisit_shift=4 moves the 8x8 images (the public set's size, which private "
            "images are resized to) by half their side or more; use at most 3",
        ),
    ],
)
def test_values_checked_with_the_data_and_plugins_are_refused_by_check(overrides, fragment):
    """What needs the data or an import is refused by `check` (and by `run` before anything starts)."""
    with pytest.raises(ConfigError) as err:
        fedmd_ray.check(preset("quick", **overrides))
    assert fragment in str(err.value)


def test_unknown_preset_lists_known():
    with pytest.raises(ConfigError, match="quick, offline, offline-fashion"):
        preset("huge")


def test_unknown_field_suggests_the_close_one():
    with pytest.raises(ConfigError, match="did you mean 'rounds'"):
        preset("offline", roundz=3)


def test_set_parsing_by_field_type():
    values = parse_overrides(["rounds=5", "lr=3e-4", "models=cnn2-8-16, mlp-64", "collab_lr=none", "upper_bound=false"])
    assert values == dict(rounds=5, lr=3e-4, models=("cnn2-8-16", "mlp-64"), collab_lr=None, upper_bound=False)
    cfg = preset("quick", **values)
    assert cfg.party_models == ("cnn2-8-16", "mlp-64", "cnn2-8-16")


def test_a_number_field_that_also_takes_a_word_parses_both_and_refuses_the_rest():
    """`revisit_shift` is pixels or `auto`: from --set, from Python and through config.json alike."""
    assert parse_overrides(["revisit_shift=auto", "rounds=2"])["revisit_shift"] == "auto"
    assert parse_overrides(["revisit_shift=3"])["revisit_shift"] == 3
    cfg = preset("quick", revisit_shift="auto")
    assert FedMDConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    one = preset("quick", revisit_shift=1)
    assert cfg.fingerprint() != one.fingerprint()  # `auto` is what was asked: a run of its own,
    assert cfg.transfer_fingerprint() == one.transfer_fingerprint()  # from the same transfer learning
    for bad in ("Auto", "x", 2.5, True, -1):
        with pytest.raises(ConfigError, match=r"revisit_shift=.* is not allowed: must be an integer.* or 'auto'"):
            preset("quick", revisit_shift=bad)
    with pytest.raises(ConfigError, match="revisit_shift='none' is not allowed: must be an integer or 'auto'"):
        parse_overrides(["revisit_shift=none"])  # not an optional field: "none" is no word of it


@pytest.mark.parametrize(
    "item, fragment",
    [("rounds=five", "rounds='five'"), ("roundz=3", "unknown config field 'roundz'"), ("rounds", "field=value")],
)
def test_set_parsing_errors(item, fragment):
    with pytest.raises(ConfigError, match=fragment):
        parse_overrides([item])


def test_presets_are_valid_and_json_round_trips():
    for name in PRESETS:
        cfg = preset(name)
        again = FedMDConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert again == cfg and again.fingerprint() == cfg.fingerprint()


def test_fingerprint_ignores_where_and_how_but_not_what():
    cfg = preset("quick")
    assert cfg.replace(out_dir="/x", backend="local").fingerprint() == cfg.fingerprint()
    assert cfg.replace(rounds=3).fingerprint() != cfg.fingerprint()


def test_label_space_is_public_then_private():
    from fedmd_ray.experiment import prepare

    assert prepare(preset("quick")).task.n_classes == 10
    assert prepare(preset("quick", public_classes=(0, 1, 2, 3, 4, 5, 6), private_classes=(7, 8))).task.n_classes == 9


def test_numpy_scalars_from_samplers_are_accepted_as_python_numbers():
    import numpy as np

    cfg = preset("quick", rounds=np.int64(3), lr=np.float32(0.5))
    assert type(cfg.rounds) is int and cfg.rounds == 3
    assert type(cfg.lr) is float and cfg.lr == 0.5
    with pytest.raises(ConfigError, match="rounds=True"):
        preset("quick", rounds=True)
    swa = preset("quick", swa=np.bool_(True)).swa  # a grid of np.array([True, False]) gives these
    assert type(swa) is bool and swa
    with pytest.raises(ConfigError, match="swa=array"):
        preset("quick", swa=np.array([True]))
    with pytest.raises(ConfigError, match="must be a finite number"):
        preset("quick", temperature=10**400)  # beyond any float: refused, not an OverflowError


def test_transfer_cache_key_follows_the_data_directory(tmp_path):
    """Trials over different data directories must never share transfer-learned parties."""
    base = preset("quick", data_root=str(tmp_path / "a"))
    assert base.transfer_fingerprint() != base.replace(data_root=str(tmp_path / "b")).transfer_fingerprint()
    assert (
        base.transfer_fingerprint() == base.replace(data_root=str(tmp_path / "a" / ".." / "a")).transfer_fingerprint()
    )
    assert base.transfer_fingerprint() == base.replace(rounds=7).transfer_fingerprint()
    # the hosts' actual torch threads, not the field (None resolves per cluster): they change numerics
    assert base.transfer_fingerprint((1, 1)) != base.transfer_fingerprint((2,))
