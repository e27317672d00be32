import numpy as np
import pytest

from fedmd_ray.aggregation import (
    AGGREGATOR_NAMES,
    AGGREGATORS,
    mean_consensus,
    median_consensus,
    standardized_mean_consensus,
)


@pytest.fixture
def scores():
    # 2 parties x 3 alignment samples x 4 classes
    a = np.array([[1, 2, 3, 4], [0, 0, 0, 0], [4, 3, 2, 1]], dtype=np.float32)
    b = np.array([[3, 2, 1, 0], [2, 2, 2, 2], [0, 1, 2, 3]], dtype=np.float32)
    return np.stack([a, b])


def test_mean_is_elementwise_average(scores):
    expected = np.array([[2, 2, 2, 2], [1, 1, 1, 1], [2, 2, 2, 2]], dtype=np.float32)
    out = mean_consensus(scores)
    assert out.dtype == np.float32 and out.shape == (3, 4)
    np.testing.assert_array_equal(out, expected)


def test_median_of_three_ignores_an_outlier():
    scores = np.array([[[0.0, 1.0]], [[0.2, 1.2]], [[100.0, -100.0]]], dtype=np.float32)
    np.testing.assert_allclose(median_consensus(scores), [[0.2, 1.0]])


def test_standardized_mean_gives_each_party_one_vote():
    quiet = np.array([[[1.0, -1.0]], [[1.0, -1.0]]], dtype=np.float32).reshape(1, 2, 2)
    loud = -100 * quiet  # opposite opinion, 100x the scale
    scores = np.concatenate([quiet, loud])
    assert np.abs(mean_consensus(scores)).max() > 40  # plain mean follows the loud party
    np.testing.assert_allclose(standardized_mean_consensus(scores), 0.0, atol=1e-5)


def test_standardized_mean_keeps_agreeing_parties_at_their_scale():
    one = np.array([[[2.0, -2.0, 0.0]]], dtype=np.float32)
    scores = np.concatenate([one, one])
    np.testing.assert_allclose(standardized_mean_consensus(scores), one[0], rtol=1e-5)


def test_registry_and_bad_shape(scores):
    assert set(AGGREGATORS) == {"mean", "standardized_mean", "median"}
    assert set(AGGREGATOR_NAMES) == {*AGGREGATORS, "trimmed_mean"}  # the one list of names covers every rule
    np.testing.assert_array_equal(AGGREGATORS["mean"](scores), mean_consensus(scores))
    with pytest.raises(ValueError, match="parties"):
        mean_consensus(np.zeros((3, 4), dtype=np.float32))
