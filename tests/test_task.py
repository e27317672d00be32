"""Building a task from config: class selection, label space, partitions, resizing."""

from __future__ import annotations

import numpy as np
import pytest

from fedmd_ray import preset
from fedmd_ray.data import LabeledImages, Split, load_source
from fedmd_ray.data import task as task_module
from fedmd_ray.data.task import build_task, conform_images
from fedmd_ray.errors import ConfigError, DataError


def test_label_space_is_public_classes_then_private_in_list_order():
    cfg = preset(
        "quick", public_classes=(3, 1), private_classes=(9, 7), n_parties=2, samples_per_class=4, subset_size=100
    )
    task = build_task(cfg)
    assert task.n_classes == 4
    assert set(np.unique(task.public_y)) == {0, 1} and set(np.unique(task.test_y)) == {2, 3}
    # digit 9 -> label 2, digit 7 -> label 3: the private classes keep their list order
    raw = load_source("digits", "/nonexistent-root-digits-needs-none")
    nines = raw.test.x[raw.test.y == 9]
    assert np.array_equal(task.test_x[task.test_y == 2], nines)


def test_iid_parties_get_disjoint_balanced_shares():
    cfg = preset("quick", n_parties=4, samples_per_class=5)
    task = build_task(cfg)
    flat = np.concatenate(task.party_indices)
    assert len(flat) == len(np.unique(flat)) == 4 * 5 * 5
    for idx in task.party_indices:
        assert np.bincount(task.private_y[idx] - 5).tolist() == [5] * 5
    assert np.array_equal(task.union_indices, np.sort(flat))


def test_public_size_caps_the_public_set_stratified():
    task = build_task(preset("quick", public_size=100, subset_size=50))
    assert len(task.public_y) == 100
    assert np.bincount(task.public_y).min() >= 19


def test_eval_size_caps_both_held_out_sets_stratified_and_keeps_smaller_ones_whole():
    full = build_task(preset("quick"))
    task = build_task(preset("quick", eval_size=60))
    assert len(task.public_val_y) == len(task.test_y) == 60
    for capped, whole in ((task.public_val_y, full.public_val_y), (task.test_y, full.test_y)):
        share = np.bincount(whole) / len(whole)
        assert np.abs(np.bincount(capped, minlength=len(share)) - 60 * share).max() < 1  # largest remainder
    # the training data is untouched, and a cap above a set's size keeps all of it
    assert np.array_equal(task.public_y, full.public_y) and np.array_equal(task.private_y, full.private_y)
    roomy = build_task(preset("quick", eval_size=10**6))
    assert np.array_equal(roomy.test_x, full.test_x) and np.array_equal(roomy.public_val_x, full.public_val_x)


def test_conform_resizes_and_recolours():
    x = np.random.default_rng(0).random((3, 1, 8, 8), dtype=np.float32)
    out = conform_images(x, (3, 28, 28))
    assert out.shape == (3, 3, 28, 28) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    np.testing.assert_array_equal(out[:, 0], out[:, 2])  # grey replicated into every channel
    assert conform_images(x, (1, 8, 8)) is x


def test_the_private_pool_holds_exactly_the_parties_images():
    """Only what parties hold is resized and shipped to the actors, each image unchanged."""
    cfg = preset("quick", n_parties=3, samples_per_class=4)
    task = build_task(cfg)
    assert len(task.private_x) == len(task.private_y) == 3 * 4 * 5
    assert np.array_equal(np.sort(np.concatenate(task.party_indices)), np.arange(len(task.private_y)))
    raw = load_source("digits", "/nonexistent-root-digits-needs-none").train
    for label, digit in enumerate(cfg.private_classes, start=len(cfg.public_classes)):
        pool = {row.tobytes() for row in raw.x[raw.y == digit]}
        assert all(row.tobytes() in pool for row in task.private_x[task.private_y == label])


def _fake(name: str, y_train: np.ndarray, y_test: np.ndarray, groups_train=None, groups_test=None) -> LabeledImages:
    rng = np.random.default_rng(0)
    return LabeledImages(
        Split(rng.random((len(y_train), 3, 32, 32), dtype=np.float32), y_train, groups_train),
        Split(rng.random((len(y_test), 3, 32, 32), dtype=np.float32), y_test, groups_test),
        tuple(str(i) for i in range(100)),
        groups=None if groups_train is None else "superclass",
        group_names=() if groups_train is None else tuple(str(i) for i in range(20)),
        name=name,
    )


_TEN = np.repeat(np.arange(10), 20).astype(np.int64)


@pytest.mark.parametrize(
    ("public_test", "private_test", "message"),
    [(_TEN, _TEN[_TEN < 5], "no private test images"), (_TEN[_TEN >= 5], _TEN, "no held-out public images")],
)
def test_an_empty_evaluation_set_is_refused_before_training(monkeypatch, public_test, private_test, message):
    """Every party is tested on both each phase: an empty one is a data error, not a mid-run crash."""
    public, private = _fake("cifar10", _TEN, public_test), _fake("cifar100", _TEN, private_test)
    monkeypatch.setattr(
        task_module, "load_source", lambda source, root: public if source.name == "cifar10" else private
    )
    cfg = preset(
        "paper-cifar-iid",
        public_classes=(0, 1),
        private_classes=(5, 6),
        n_parties=2,
        samples_per_class=2,
        subset_size=10,
    )
    with pytest.raises(DataError, match=message):
        build_task(cfg)


def test_private_superclasses_must_not_hold_public_classes_of_the_same_source(monkeypatch):
    fine = _TEN
    cifar100 = _fake("cifar100", fine, fine, fine // 5, fine // 5)  # superclass 0 = fine 0..4, 1 = fine 5..9
    monkeypatch.setattr(task_module, "load_source", lambda source, root: cifar100)
    cfg = preset(
        "paper-cifar-noniid",
        public_data="cifar100",
        public_classes=(6, 7),
        private_classes=(1,),
        n_parties=2,
        samples_per_class=2,
        subset_size=10,
    )
    with pytest.raises(ConfigError, match=r"superclasses \[1\] hold fine classes \[6, 7\]"):
        build_task(cfg)
    task = build_task(cfg.replace(private_classes=(0,)))  # superclass 0 holds fine 0..4: no overlap
    assert set(task.test_y.tolist()) == {2}
