import numpy as np
import pytest

from fedmd_ray.data.partition import class_counts, dirichlet_partition, iid_partition
from fedmd_ray.data.sampling import sample_alignment, stratified_sample

LABELS = np.repeat(np.arange(5, 10), [40, 35, 50, 45, 30]).astype(np.int64)


def test_iid_is_disjoint_and_class_balanced():
    parts = iid_partition(np.random.default_rng(0), LABELS, n_parties=10, per_class=3)
    assert len(parts) == 10
    flat = np.concatenate(parts)
    assert len(flat) == len(set(flat.tolist())) == 10 * 3 * 5
    for part in parts:
        assert class_counts(LABELS, part, range(5, 10)) == {c: 3 for c in range(5, 10)}


def test_iid_is_seeded():
    a = iid_partition(np.random.default_rng(1), LABELS, 4, 2)
    b = iid_partition(np.random.default_rng(1), LABELS, 4, 2)
    c = iid_partition(np.random.default_rng(2), LABELS, 4, 2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_noniid_is_disjoint_same_size_and_skewed():
    parts = dirichlet_partition(np.random.default_rng(0), LABELS, n_parties=8, per_class=3, alpha=0.1)
    flat = np.concatenate(parts)
    assert len(flat) == len(set(flat.tolist()))
    assert all(len(p) == 15 for p in parts)
    # with alpha=0.1 most parties miss at least one class entirely
    missing = [sum(v == 0 for v in class_counts(LABELS, p, range(5, 10)).values()) for p in parts]
    assert sum(m > 0 for m in missing) >= 4


def test_noniid_refills_when_a_class_runs_out():
    labels = np.repeat([0, 1], [100, 4]).astype(np.int64)
    parts = dirichlet_partition(np.random.default_rng(3), labels, n_parties=5, per_class=4, alpha=0.5)
    flat = np.concatenate(parts)
    assert len(flat) == len(set(flat.tolist())) == 5 * 8


def test_stratified_sample_matches_class_mix():
    labels = np.repeat([0, 1, 2], [500, 300, 200]).astype(np.int64)
    idx = stratified_sample(np.random.default_rng(0), labels, 100)
    assert len(idx) == len(np.unique(idx)) == 100
    assert np.bincount(labels[idx]).tolist() == [50, 30, 20]
    assert np.all(np.diff(idx) > 0)


def test_alignment_subsets_are_redrawn_and_reproducible():
    labels = np.repeat([0, 1], [60, 40]).astype(np.int64)
    r1 = sample_alignment(np.random.default_rng([7, 1]), labels, 10)
    r1_again = sample_alignment(np.random.default_rng([7, 1]), labels, 10)
    r2 = sample_alignment(np.random.default_rng([7, 2]), labels, 10)
    assert np.array_equal(r1, r1_again) and not np.array_equal(r1, r2)


def test_sample_size_out_of_range():
    with pytest.raises(ValueError):
        stratified_sample(np.random.default_rng(0), LABELS, len(LABELS) + 1)
