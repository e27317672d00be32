"""Stratified index sampling: alignment subsets and public-set caps."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Indices = npt.NDArray[np.int64]


def stratified_sample(rng: np.random.Generator, labels: npt.NDArray[np.int64], size: int) -> Indices:
    """`size` distinct indices whose class mix matches `labels` (largest remainder).

    Returned sorted, so gathering the images reads memory in order.
    """
    if not 0 < size <= len(labels):
        raise ValueError(f"size must be in 1..{len(labels)}, got {size}")
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * (size / len(labels))
    take = np.floor(exact).astype(np.int64)
    short = size - int(take.sum())
    take[np.argsort(-(exact - take), kind="stable")[:short]] += 1
    picked = [
        rng.choice(np.flatnonzero(labels == c), size=int(k), replace=False) for c, k in zip(classes, take) if k > 0
    ]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def sample_alignment(rng: np.random.Generator, public_labels: npt.NDArray[np.int64], size: int) -> Indices:
    """The round's alignment subset of the public set: stratified, without replacement."""
    return stratified_sample(rng, public_labels, size)
