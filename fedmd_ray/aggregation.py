"""How the parties' class scores become one consensus (pure numpy).

Every rule has the signature ``(scores: Scores) -> Consensus`` with scores
shaped ``(parties, n_align, classes)`` in party order. Sums run over parties in
that order, so the consensus does not depend on which party answered first.
"""

from __future__ import annotations

import typing
from typing import Callable, Literal

import numpy as np
import numpy.typing as npt

Scores = npt.NDArray[np.float32]  # (parties, n_align, classes)
Consensus = npt.NDArray[np.float32]  # (n_align, classes)
Aggregator = Callable[[Scores], Consensus]


def _ordered_sum(scores: Scores, weights: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """sum_i weights_i * scores_i in float64, in party order (fixed order => bit-identical sums)."""
    _check(scores)
    total = np.zeros(scores.shape[1:], dtype=np.float64)
    for weight, party_scores in zip(weights, scores):
        total += weight * party_scores
    return total


def mean_consensus(scores: Scores) -> Consensus:
    """The paper's rule: the plain mean of the parties' logits."""
    total = _ordered_sum(scores, np.ones(len(scores)))
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


AggregatorName = Literal["mean", "standardized_mean", "median", "trimmed_mean"]  # the one list of their names
AGGREGATOR_NAMES: tuple[str, ...] = typing.get_args(AggregatorName)  # trimmed_mean takes its fraction: strategy.FedMD


def _check(scores: Scores) -> None:
    if scores.ndim != 3 or scores.shape[0] == 0:
        raise ValueError(f"scores must be shaped (parties >= 1, n_align, classes), got {scores.shape}")


def trim_count(fraction: float, parties: int) -> int:
    """Scores a trimmed mean drops at each end: rounded down, as scipy's `trim_mean` (0.2 of 4 is none)."""
    return int(fraction * parties)


def trimmed_mean_consensus(scores: Scores, fraction: float) -> Consensus:
    """Cronus-style robust mean (Chang et al. 2019, arXiv 1912.11279): per sample and class, drop the
    `fraction` of highest and of lowest scores over parties, average the rest (`fraction=0`: the mean)."""
    _check(scores)
    if not 0 <= fraction < 0.5:
        raise ValueError(f"trim fraction {fraction} must lie in [0, 0.5)")
    k = trim_count(fraction, scores.shape[0])
    ordered = np.sort(scores, axis=0)  # (parties, n_align, classes), sorted over parties
    kept = ordered[k : scores.shape[0] - k]
    return mean_consensus(kept)


def information_weights(probabilities: Scores) -> npt.NDArray[np.float64]:
    """Each party's share of the information its predictions carry about the alignment images:
    I_i = H(mean_x p_i(x)) - mean_x H(p_i(x)), the mutual information between image and predicted
    class (the objective of Krause et al. 2010, "Discriminative clustering by regularized information
    maximization"), normalised to sum to 1; equal weights when no party carries any.

    Why: a party that answers the same for every image (one that saw a single private class) or
    answers at random has I = 0 and no say; parties that tell the images apart share the vote by
    how well they do. Computed from the shared scores alone: nothing else crosses."""
    _check(probabilities)
    p = probabilities.astype(np.float64)  # (parties, n, classes)

    def entropy(q: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        result: npt.NDArray[np.float64] = -(q * np.log(np.clip(q, 1e-12, None))).sum(axis=-1)
        return result

    information = np.clip(entropy(p.mean(axis=1)) - entropy(p).mean(axis=1), 0.0, None)
    total = information.sum()
    if total <= 0:
        return np.full(p.shape[0], 1.0 / p.shape[0])
    weights: npt.NDArray[np.float64] = information / total
    return weights


def weighted_mean_consensus(scores: Scores, weights: npt.NDArray[np.float64]) -> Consensus:
    """sum_i weights_i * scores_i (weights summing to 1), in party order."""
    consensus: Consensus = _ordered_sum(scores, weights).astype(np.float32)
    return consensus


def match_class_shares(
    consensus: Consensus, shares: npt.NDArray[np.float64], *, iterations: int = 100, tolerance: float = 1e-7
) -> Consensus:
    """Probabilities `consensus` (n_align, classes) rescaled per class so that their mean over the samples
    is `shares` (classes,), each row still summing to 1: iterative proportional fitting (Sinkhorn-Knopp),
    float64, until every column mean is within `tolerance` of `shares` (at most `iterations` steps).
    Column and row scalings keep every odds ratio p_ic p_jd / (p_id p_jc) between two samples and two classes:
    how the consensus tells the samples apart is kept, only the classes' overall shares move (a sample's
    top class can change where two classes were close)."""
    if consensus.ndim != 2 or consensus.shape[1] != len(shares):
        raise ValueError(f"consensus must be shaped (n_align, {len(shares)}), got {consensus.shape}")
    p = consensus.astype(np.float64)
    target = np.asarray(shares, dtype=np.float64)
    for _ in range(iterations):
        mean = p.mean(axis=0)
        if np.abs(mean - target).max() <= tolerance:
            break
        p *= np.where(mean > 0, target / np.where(mean > 0, mean, 1.0), 0.0)
        p /= np.maximum(p.sum(axis=1, keepdims=True), np.finfo(np.float64).tiny)
    matched: Consensus = p.astype(np.float32)
    return matched


def equal_private_shares(consensus: Consensus, n_private: int) -> Consensus:
    """Probabilities `consensus` (n_align, classes) rescaled so that each of the private classes (the last
    `n_private` outputs) holds the same share of it on average over the samples: their combined share,
    and each public class's, as they were (`match_class_shares`).

    Why: the alignment subset holds no private image, so no private class has a claim to more of the
    consensus than another; yet the digest pulls every party toward the consensus and the next consensus
    is made of those parties, so a private class whose share grows grows further. On a strongly skewed
    split one private class took over most parties' predictions, their own class's images included
    (docs/methods.md#equal-private-shares). The balancing is the one Asano et al. 2020 (arXiv 1911.05371)
    use to keep self-labels from collapsing onto a few classes."""
    if not 0 < n_private <= consensus.shape[-1]:
        raise ValueError(f"n_private must be in 1..{consensus.shape[-1]} (the consensus's classes), got {n_private}")
    shares = consensus.astype(np.float64).mean(axis=0)
    shares[-n_private:] = shares[-n_private:].mean()
    return match_class_shares(consensus, shares)


def class_weighted_consensus(scores: Scores, label_counts: npt.NDArray[np.int64]) -> Consensus:
    """Per class, the mean of the parties' scores weighted by how many private images of that class each
    holds: `target[:, c] = sum_i n_ic s_ic / sum_i n_ic`, `label_counts` (parties, classes) in the scores'
    party order. A party that never saw class c says nothing about it (its score for c is what it learnt
    of the other classes), so its vote on c is 0; a class no party holds (the public classes, learnt by
    everyone from the public data) keeps every party's equal vote. Sums in party order, float64."""
    _check(scores)
    counts = label_counts.astype(np.float64)
    held = counts.sum(axis=0)  # (classes,)
    weights = np.where(held > 0, counts / np.where(held > 0, held, 1.0), 1.0 / len(scores))  # (parties, classes)
    total = np.zeros(scores.shape[1:], dtype=np.float64)
    for party_weights, party_scores in zip(weights, scores):
        total += party_weights * party_scores  # broadcast over the samples
    return total.astype(np.float32)


def era_consensus(probabilities: Scores, temperature: float) -> Consensus:
    """Entropy reduction aggregation (Itahara et al. 2020, DS-FL, arXiv 2008.06180): the mean of the
    parties' probabilities, sharpened by a softmax at `temperature` (< 1 sharpens; paper: 0.1)."""
    mean = mean_consensus(probabilities).astype(np.float64) / temperature  # (n_align, classes)
    mean -= mean.max(axis=1, keepdims=True)
    sharp = np.exp(mean)
    consensus: Consensus = (sharp / sharp.sum(axis=1, keepdims=True)).astype(np.float32)
    return consensus


def project_rows_to_simplex(matrix: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Euclidean projection of each row onto the probability simplex (Duchi et al. 2008)."""
    n = matrix.shape[1]
    ordered = -np.sort(-matrix, axis=1)  # rows in decreasing order
    cumulative = np.cumsum(ordered, axis=1) - 1.0
    ranks = np.arange(1, n + 1)
    support = ordered - cumulative / ranks > 0  # (rows, n)
    last = n - 1 - np.argmax(support[:, ::-1], axis=1)  # the largest rank still in the support
    theta = cumulative[np.arange(len(matrix)), last] / (last + 1)
    projected: npt.NDArray[np.float64] = np.maximum(matrix - theta[:, None], 0.0)
    return projected


def knowledge_coefficient_step(
    coefficients: npt.NDArray[np.float64], probabilities: Scores, rho: float, lr: float
) -> npt.NDArray[np.float64]:
    """One projected gradient step on KT-pFL's coefficient matrix (Zhang et al. 2021, arXiv 2111.02862).

    Objective, for parties i with probabilities P_i on the alignment subset (n samples):
        sum_i  mean_x KL(P_i(x) || sum_j c_ij P_j(x))  +  rho * ||c_i - 1/parties||^2
    i.e. how well party i's personalised target explains its own predictions, pulled toward
    equal weights; each row is then projected back onto the simplex.
    """
    p = probabilities.astype(np.float64)  # (parties, n, classes)
    parties = p.shape[0]
    mixture = np.einsum("ij,jnc->inc", coefficients, p)  # (parties, n, classes): the targets
    ratio = p / np.maximum(mixture, 1e-12)  # P_i / target_i
    # d/dc_ij mean_x KL(P_i || sum_k c_ik P_k) = -mean_x sum_c P_i P_j / target_i
    grad = -np.einsum("inc,jnc->ij", ratio, p) / p.shape[1]
    grad += 2.0 * rho * (coefficients - 1.0 / parties)
    return project_rows_to_simplex(coefficients - lr * grad)
