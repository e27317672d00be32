"""The paper's non-iid schemes: one writer per party (EMNIST), subclasses of superclasses (CIFAR-100)."""

from __future__ import annotations

import numpy as np
import pytest

from fedmd_ray import preset
from fedmd_ray.data import task as task_module
from fedmd_ray.data.partition import superclass_partition, writer_partition
from fedmd_ray.data.sources import LabeledImages, Split
from fedmd_ray.errors import ConfigError


def test_writer_partition_gives_each_party_one_whole_writer():
    writers = np.repeat([7, 8, 9, 10], [20, 5, 30, 18]).astype(np.int64)
    parts = writer_partition(np.random.default_rng(0), writers, n_parties=3, min_samples=18)
    assert sorted(len(np.unique(writers[p])) for p in parts) == [1, 1, 1]
    assert sorted(int(writers[p][0]) for p in parts) == [7, 9, 10]  # writer 8 has too few samples
    assert all(len(p) == (writers == writers[p][0]).sum() for p in parts)  # everything that writer wrote
    with pytest.raises(ValueError, match="only 3 writers"):
        writer_partition(np.random.default_rng(0), writers, n_parties=4, min_samples=18)


def test_superclass_partition_shows_each_party_other_subclasses():
    # 2 superclasses (labels 10, 11) with subclasses {0,1,2} and {3,4}; 40 samples per subclass
    fine = np.repeat(np.arange(5), 40).astype(np.int64)
    coarse = np.where(fine < 3, 10, 11).astype(np.int64)
    parts = superclass_partition(np.random.default_rng(0), coarse, fine, n_parties=4, per_class=5)
    seen = [sorted(set(fine[p].tolist())) for p in parts]
    assert seen == [[0, 3], [1, 4], [2, 3], [0, 4]]  # party i: subclass i mod k of each superclass
    flat = np.concatenate(parts)
    assert len(flat) == len(np.unique(flat)) == 4 * 2 * 5  # disjoint even where subclasses repeat


def _fake_source(
    name: str,
    groups_train: np.ndarray | None,
    y_train: np.ndarray,
    y_test: np.ndarray,
    groups_test: np.ndarray | None = None,
) -> LabeledImages:
    rng = np.random.default_rng(1)
    x_train = rng.random((len(y_train), 3, 32, 32), dtype=np.float32)
    x_test = rng.random((len(y_test), 3, 32, 32), dtype=np.float32)
    n_names = int(y_train.max()) + 1  # as many class names as the labels use
    kind = {"cifar100": "superclass", "emnist-letters": "writer"}.get(name) if groups_train is not None else None
    return LabeledImages(
        Split(x_train, y_train, groups_train),
        Split(x_test, y_test, groups_test),
        tuple(str(i) for i in range(n_names)),
        groups=kind,
        group_names=tuple(str(i) for i in range(20)) if kind == "superclass" else (),
        name=name,
    )


def test_cifar_superclass_task_end_to_end(monkeypatch):
    fine = np.repeat(np.arange(10), 30).astype(np.int64)
    coarse = fine // 5  # superclass 0 = fine 0..4, superclass 1 = fine 5..9
    cifar10 = _fake_source(
        "cifar10", None, np.repeat(np.arange(10), 30).astype(np.int64), np.repeat(np.arange(10), 5).astype(np.int64)
    )
    cifar100 = _fake_source(
        "cifar100",
        coarse,
        fine,
        np.repeat(np.arange(10), 4).astype(np.int64),
        np.repeat(np.arange(10), 4).astype(np.int64) // 5,
    )
    monkeypatch.setattr(
        task_module, "load_source", lambda source, root: cifar10 if source.name == "cifar10" else cifar100
    )
    config = preset("paper-cifar-noniid", private_classes=(1, 0), n_parties=3, samples_per_class=4, subset_size=50)
    task = task_module.build_task(config)
    assert task.n_classes == 12
    assert set(task.test_y.tolist()) == {10, 11} and len(task.test_y) == 40  # all test images of both superclasses
    for idx in task.party_indices:
        assert np.bincount(task.private_y[idx] - 10).tolist() == [4, 4]  # 4 per superclass
    # private_classes=(1, 0): label 10 = superclass 1 (fine 5..9), label 11 = superclass 0 (fine 0..4);
    # party p sees fine 5 + p and fine p. Recover the fine labels through the images (random, unique).
    fine_of = dict(zip(cifar100.train.x[:, 0, 0, 0].tolist(), fine.tolist()))
    for party, idx in enumerate(task.party_indices):
        seen = sorted({fine_of[v] for v in task.private_x[idx][:, 0, 0, 0].tolist()})
        assert seen == [party, 5 + party]


def test_writer_partition_needs_writer_ids():
    with pytest.raises(ConfigError, match="partition='writer' needs writer ids"):
        task_module.build_task(preset("quick", partition="writer"))
    with pytest.raises(ConfigError, match="partition='superclass' needs superclass ids"):
        task_module.build_task(preset("quick", partition="superclass"))


def test_emnist_idx_files_without_writers_are_refused_for_writer_partition(monkeypatch):
    mnist = _fake_source(
        "mnist", None, np.repeat(np.arange(10), 10).astype(np.int64), np.repeat(np.arange(10), 2).astype(np.int64)
    )
    letters = _fake_source(
        "emnist-letters",
        None,
        np.repeat(np.arange(26), 10).astype(np.int64),
        np.repeat(np.arange(26), 2).astype(np.int64),
    )
    monkeypatch.setattr(task_module, "load_source", lambda source, root: mnist if source.name == "mnist" else letters)
    with pytest.raises(ConfigError, match="needs writer ids .emnist-letters from its .mat file"):
        task_module.build_task(preset("paper-mnist-noniid", n_parties=2, subset_size=10, models=("cnn2-8-16",)))
