"""How the parties' class scores become one consensus (pure numpy).

Every rule has the signature ``(scores: Scores) -> Consensus`` with scores
shaped ``(parties, n_align, classes)`` in party order. Sums run over parties in
that order, so the consensus does not depend on which party answered first.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import numpy.typing as npt

Scores = npt.NDArray[np.float32]  # (parties, n_align, classes)
Consensus = npt.NDArray[np.float32]  # (n_align, classes)
Aggregator = Callable[[Scores], Consensus]


def mean_consensus(scores: Scores) -> Consensus:
    """The paper's rule: the plain mean of the parties' logits."""
    _check(scores)
    total = np.zeros(scores.shape[1:], dtype=np.float64)
    for party_scores in scores:  # fixed party order => bit-identical sums
        total += party_scores
    consensus: Consensus = (total / scores.shape[0]).astype(np.float32)
    return consensus


def standardized_mean_consensus(scores: Scores) -> Consensus:
    """Mean of per-party standardised logits, rescaled to the parties' mean scale.

    The paper's CNNs produce logits whose scale differs 10-30x; a plain mean then
    follows the loudest models. Standardising each party's scores (zero mean,
    unit std over its whole score matrix) gives every party one vote; the result
    is scaled back by the mean of the parties' stds so an L1 digest still sees
    logits of a familiar size.
    """
    _check(scores)
    scores64 = scores.astype(np.float64)
    mean = scores64.mean(axis=(1, 2), keepdims=True)  # (parties, 1, 1)
    std = scores64.std(axis=(1, 2), keepdims=True) + 1e-12  # (parties, 1, 1)
    standardized = (scores64 - mean) / std
    consensus: Consensus = (mean_consensus(standardized) * std.mean()).astype(np.float32)
    return consensus


def median_consensus(scores: Scores) -> Consensus:
    """Element-wise median: robust to a minority of outlying parties."""
    _check(scores)
    consensus: Consensus = np.median(scores, axis=0).astype(np.float32)
    return consensus


AGGREGATORS: dict[str, Aggregator] = {
    "mean": mean_consensus,
    "standardized_mean": standardized_mean_consensus,
    "median": median_consensus,
}


def aggregate(name: str, scores: Scores) -> Consensus:
    """Apply the aggregator registered under `name`."""
    return AGGREGATORS[name](scores)


def _check(scores: Scores) -> None:
    if scores.ndim != 3 or scores.shape[0] == 0:
        raise ValueError(f"scores must be shaped (parties >= 1, n_align, classes), got {scores.shape}")
