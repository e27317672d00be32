"""Split the private pool into the parties' disjoint private data sets.

`iid`: every party gets `per_class` samples of every private class (paper:
3 per class). `noniid`: every party gets the same total
(`per_class * n_classes`), with class proportions drawn from
Dirichlet(alpha); a class that runs out passes its share to the classes that
still have samples. `writer` and `superclass` are the paper's non-iid schemes
(see their functions). All are disjoint across parties and seeded.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fedmd_ray.data.sampling import Indices


def iid_partition(
    rng: np.random.Generator, labels: npt.NDArray[np.int64], n_parties: int, per_class: int
) -> list[Indices]:
    pools = _shuffled_pools(rng, labels)
    shares: list[list[Indices]] = [[] for _ in range(n_parties)]
    for pool in pools:
        for party in range(n_parties):
            shares[party].append(pool[party * per_class : (party + 1) * per_class])
    return [np.sort(np.concatenate(s)) for s in shares]


def dirichlet_partition(
    rng: np.random.Generator, labels: npt.NDArray[np.int64], n_parties: int, per_class: int, alpha: float
) -> list[Indices]:
    pools = _shuffled_pools(rng, labels)
    left = np.array([len(p) for p in pools])
    used = np.zeros(len(pools), dtype=np.int64)
    size = per_class * len(pools)
    parts = []
    for _ in range(n_parties):
        proportions = rng.dirichlet(np.full(len(pools), alpha))
        counts = np.minimum(rng.multinomial(size, proportions), left)
        for c in np.argsort(-proportions, kind="stable"):  # refill from the party's favourite classes
            extra = min(size - int(counts.sum()), int(left[c] - counts[c]))
            counts[c] += max(extra, 0)
        if counts.sum() < size:
            raise ValueError(f"the private pool ran out: {size} samples per party do not fit")
        parts.append(np.sort(np.concatenate([pools[c][used[c] : used[c] + counts[c]] for c in range(len(pools))])))
        used += counts
        left -= counts
    return parts


def writer_partition(
    rng: np.random.Generator, writers: npt.NDArray[np.int64], n_parties: int, min_samples: int
) -> list[Indices]:
    """Each party holds everything one writer wrote (the reference's
    `generate_EMNIST_writer_based_data`): `n_parties` distinct writers drawn among
    those with at least `min_samples` samples of the private classes."""
    ids, counts = np.unique(writers, return_counts=True)
    eligible = ids[counts >= min_samples]
    if len(eligible) < n_parties:
        raise ValueError(f"only {len(eligible)} writers have >= {min_samples} samples; {n_parties} needed")
    chosen = rng.choice(eligible, size=n_parties, replace=False)
    return [np.flatnonzero(writers == w) for w in chosen]


def superclass_partition(
    rng: np.random.Generator,
    labels: npt.NDArray[np.int64],
    subclasses: npt.NDArray[np.int64],
    n_parties: int,
    per_class: int,
) -> list[Indices]:
    """The reference's CIFAR-100 non-iid scheme (`CIFAR_Imbalanced.py`): the task is
    to tell superclasses (`labels`) apart, and party i sees, of every superclass,
    only its (i mod k)-th subclass (ascending fine id), `per_class` samples of it.
    Parties that share a subclass get disjoint samples (the reference drew them
    independently, so they could overlap)."""
    pools = {int(c): list(rng.permutation(np.flatnonzero(subclasses == c))) for c in np.unique(subclasses)}
    parts = []
    for party in range(n_parties):
        taken = []
        for label in np.unique(labels):
            subs = np.unique(subclasses[labels == label])
            pool = pools[int(subs[party % len(subs)])]
            if len(pool) < per_class:
                raise ValueError(f"subclass {int(subs[party % len(subs)])} has too few samples left")
            taken.extend(pool[:per_class])
            del pool[:per_class]
        parts.append(np.sort(np.array(taken, dtype=np.int64)))
    return parts


def class_counts(labels: npt.NDArray[np.int64], indices: Indices, classes: npt.ArrayLike) -> dict[int, int]:
    """How many samples of each class a party holds (for logs and tests)."""
    held = labels[indices]
    return {int(c): int((held == c).sum()) for c in np.asarray(classes)}


def _shuffled_pools(rng: np.random.Generator, labels: npt.NDArray[np.int64]) -> list[Indices]:
    return [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
