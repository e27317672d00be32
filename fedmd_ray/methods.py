"""The FedMD family as strategies: methods that share FedMD's shape (parties score a public set, a
consensus comes back, parties distil), each on the same `Strategy` API a user's method uses.

Registered names (`strategy=...`) and the config fields that parameterise them:

| name | method | shares | targets | digest loss | fields |
|---|---|---|---|---|---|
| `fedmd` | Li & Wang 2019 (`strategy.FedMD`) | logits | one: `aggregator` of logits | `digest_loss` | aggregator, digest_loss, temperature, trim_fraction |
| `cronus` | Chang et al. 2019 | logits | one: trimmed mean | L1 | trim_fraction |
| `fedmd-cw` | class-weighted FedMD (here; skewed splits) | logits | one: per class, mean of those who hold it | `digest_loss` | digest_loss, temperature |
| `ds-fl` | Itahara et al. 2020 | probabilities | one: entropy-reduced mean | cross-entropy | era_temperature |
| `fedmd-kl` | FedDF (Lin et al. 2020), heterogeneous | probabilities at T | one: mean (`party_weights`, `private_shares`) | KL x T^2 | temperature, party_weights, private_shares |
| `kt-pfl` | Zhang et al. 2021 | probabilities at T | one per party: sum_j c_ij P_j | KL x T^2 | temperature, kt_rho, kt_lr |
| `local` | no collaboration (the control) | nothing | none | none | |

Aggregation is numpy (`fedmd_ray.aggregation`), losses torch (`fedmd_ray.training`,
imported where a party calls them), so the driver stays free of torch.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Sequence

import numpy as np
import numpy.typing as npt

from fedmd_ray.aggregation import (
    Consensus,
    Scores,
    class_weighted_consensus,
    equal_private_shares,
    era_consensus,
    information_weights,
    knowledge_coefficient_step,
    mean_consensus,
    weighted_mean_consensus,
)
from fedmd_ray.config.fields import TEMPERATURE, Bounds, setting
from fedmd_ray.errors import ConfigError
from fedmd_ray.strategy import STRATEGIES, FedMD, RoundInfo, Strategy, StrategyState, Targets

if TYPE_CHECKING:
    import torch


PartyWeights = Literal["equal", "information"]
PrivateShares = Literal["free", "equal"]


@dataclass(frozen=True)
class FamilyFields:
    """The config fields of the FedMD family's methods, declared with them and part of every `FedMDConfig`
    (`--set`, `--grid` reach them); `temperature` is `strategy.FedMDFields`'."""

    party_weights: PartyWeights = setting("equal", role="result", group="strategy")
    """fedmd-kl's vote per party: equal, or information (by what its predictions tell apart).
    (docs/config.md#party_weights)"""
    private_shares: PrivateShares = setting("free", role="result", group="strategy")
    """fedmd-kl's consensus: free (FedDF), or equal: every private class rescaled to the same share of it.
    (docs/config.md#private_shares)"""
    era_temperature: float = setting(0.1, role="result", bounds=TEMPERATURE, group="strategy")
    """`ds-fl`'s entropy-reduction temperature: the mean probabilities sharpened by softmax(p / T) (paper 0.1)."""
    kt_rho: float = setting(0.7, role="result", bounds=Bounds(0, 1e3), group="strategy")
    """`kt-pfl`'s penalty rho on ||c_i - 1/n||^2, pulling each party's coefficients toward equal weights."""
    kt_lr: float = setting(0.05, role="result", bounds=Bounds(0, 1e3, low_open=True), group="strategy")
    """`kt-pfl`'s step size for the knowledge-coefficient matrix (one projected gradient step per round)."""


class Cronus(FedMD):
    """Robust consensus (Chang et al. 2019, "Cronus: Robust and Heterogeneous Collaborative Learning with
    Black-Box Knowledge Transfer", arXiv 1912.11279): FedMD whose consensus is the trimmed mean of the
    parties' logits, dropping the `trim_fraction` highest and lowest per sample and class; L1 digest."""

    def __init__(self, trim_fraction: float = 0.2) -> None:
        super().__init__(aggregator="trimmed_mean", digest_loss="l1", trim_fraction=trim_fraction)


class ClassWeighted(FedMD):
    """FedMD whose consensus listens, for each class, to the parties that know it: the parties' logits
    averaged per class with weights proportional to how many private images of that class each holds
    (`aggregation.class_weighted_consensus`; the label counts are shared once, before round 1). Argued
    from first principles: a party that never saw class c has no knowledge of c to pass on, and on a
    skewed split (most parties hold one or two classes) the paper's mean drowns the few that do in
    those that do not. Distillation can then teach a party classes it never saw, as Hinton et al. 2015
    (arXiv 1503.02531, section 3) showed for a digit left out of the transfer set. The digest is
    FedMD's (`digest_loss`, `temperature`); on an iid split every party holds every class in about
    equal numbers and the consensus is close to the paper's mean."""

    uses_label_counts = True

    def __init__(self, digest_loss: str = "l1", temperature: float = 1.0) -> None:
        super().__init__(aggregator="mean", digest_loss=digest_loss, temperature=temperature)

    def aggregate(self, scores: Scores, info: RoundInfo) -> Consensus:
        if info.label_counts is None:
            raise ConfigError("fedmd-cw needs each party's private label counts (RoundInfo.label_counts)")
        return class_weighted_consensus(scores, info.label_counts)


class DSFL(Strategy):
    """Distillation-based semi-supervised FL (Itahara et al. 2020, arXiv 2008.06180): parties share
    softmax probabilities; the consensus is their mean sharpened by entropy reduction aggregation
    (a softmax at `era_temperature`, paper 0.1); each party minimises the cross-entropy to it."""

    def __init__(self, era_temperature: float = 0.1) -> None:
        self.era_temperature = era_temperature

    def share(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.softmax(dim=1)

    def aggregate(self, scores: Scores, info: RoundInfo) -> Consensus:
        return era_consensus(scores, self.era_temperature)

    def digest_loss(self, student_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from fedmd_ray.training import soft_cross_entropy

        return soft_cross_entropy(student_logits, target)


class FedMDKL(Strategy):
    """Ensemble distillation as in FedDF (Lin et al. 2020, arXiv 2006.07242), for heterogeneous parties:
    parties share probabilities at `temperature`, the consensus is their mean, each party minimises
    KL(consensus || its softmax at T), scaled by T^2. Probabilities make the consensus immune to the
    10-30x differences in logit scale between architectures that a mean of logits follows.

    `party_weights=information` weighs each party's vote by what its answers tell apart;
    `private_shares=equal` rescales the consensus so that every private class (the last
    `len(private_classes)` outputs) holds the same share of it (`aggregation.equal_private_shares`)."""

    def __init__(
        self,
        temperature: float = 1.0,
        party_weights: str = "equal",
        private_shares: str = "free",
        private_classes: Sequence[int] = (),
    ) -> None:
        for name, value, allowed in (
            ("party_weights", party_weights, PartyWeights),
            ("private_shares", private_shares, PrivateShares),
        ):  # built in Python: the config checks its own fields
            if value not in typing.get_args(allowed):
                raise ConfigError(f"{name}={value!r} is not allowed: must be one of {typing.get_args(allowed)}")
        if private_shares == "equal" and not private_classes:
            raise ConfigError(
                "private_shares='equal' needs the task's private classes: FedMDKL(..., private_classes=...), "
                "or FedMDKL.from_config(config)"
            )
        self.temperature = temperature
        self.party_weights = party_weights
        self.private_shares = private_shares
        self.n_private = len(private_classes)
        self.weights: npt.NDArray[np.float64] | None = None  # the last round's, by party id (absent: 0)

    def share(self, logits: torch.Tensor) -> torch.Tensor:
        return (logits / self.temperature).softmax(dim=1)

    def aggregate(self, scores: Scores, info: RoundInfo) -> Consensus:
        if self.party_weights == "information":
            weights = information_weights(scores)
            self.weights = np.zeros(info.n_parties)
            self.weights[list(info.parties)] = weights
            consensus = weighted_mean_consensus(scores, weights)
        else:
            consensus = mean_consensus(scores)
        return equal_private_shares(consensus, self.n_private) if self.private_shares == "equal" else consensus

    def state_dict(self) -> StrategyState:
        """With `party_weights=information`, each round's weights (`strategy_state.parquet`: who had a
        say); they are recomputed every round, so a resume needs them only to report them."""
        return {} if self.weights is None else {"party_weights": self.weights.copy()}

    def load_state_dict(self, state: StrategyState) -> None:
        self.weights = state["party_weights"].astype(np.float64) if "party_weights" in state else None

    def digest_loss(self, student_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from fedmd_ray.training import kl_to_probabilities

        return kl_to_probabilities(student_logits, target, self.temperature)


class KTpFL(FedMDKL):
    """Parameterized knowledge transfer (Zhang et al. 2021, "Parameterized Knowledge Transfer for
    Personalized Federated Learning", arXiv 2111.02862): a personalised target per party,
    `target_i = sum_j c_ij softmax(z_j / T)`, with the knowledge-coefficient matrix C learned on the
    driver: each round one projected gradient step (`kt_lr`) on the distillation objective with the
    penalty `kt_rho * ||c_i - 1/n||^2`, rows kept on the simplex (see
    `aggregation.knowledge_coefficient_step`), then the targets. C starts uniform; it is the
    strategy's state (checkpointed, restored on resume, written per round to
    `strategy_state.parquet`): who learns from whom. With parties absent in a round
    (`party_dropout`, failures) the step and the targets use each present row renormalised over
    the present parties; the saved rows stay on the simplex, the share on an absent party held
    for its return."""

    def __init__(self, temperature: float = 1.0, kt_rho: float = 0.7, kt_lr: float = 0.05) -> None:
        super().__init__(temperature)
        self.kt_rho = kt_rho
        self.kt_lr = kt_lr
        self.coefficients: npt.NDArray[np.float64] | None = None  # (n_parties, n_parties)

    def aggregate(self, scores: Scores, info: RoundInfo) -> Targets:
        if self.coefficients is None:
            self.coefficients = np.full((info.n_parties, info.n_parties), 1.0 / info.n_parties)
        parties = list(info.parties)
        present = np.ix_(parties, parties)
        held = self.coefficients[present].sum(axis=1, keepdims=True)  # each row's share on the present parties
        block = np.where(held > 0, self.coefficients[present] / np.where(held > 0, held, 1.0), 1.0 / len(parties))
        block = knowledge_coefficient_step(block, scores, self.kt_rho, self.kt_lr)
        # Rows stay on the simplex: the share on absent parties is held for their return; a row
        # whose whole share was on absent parties gives it up to the present ones.
        absent = [p for p in range(info.n_parties) if p not in info.parties]
        self.coefficients[np.ix_(parties, absent)] *= held > 0
        self.coefficients[present] = np.where(held > 0, block * held, block)
        targets: Targets = np.einsum("ij,jnc->inc", block, scores.astype(np.float64)).astype(np.float32)
        return targets  # (parties, n_align, classes): one per party

    def state_dict(self) -> StrategyState:
        return {} if self.coefficients is None else {"coefficients": self.coefficients.copy()}

    def load_state_dict(self, state: StrategyState) -> None:
        self.coefficients = state["coefficients"].astype(np.float64) if "coefficients" in state else None


class Local(Strategy):
    """The no-collaboration control ("local training" in FL benchmarks, e.g. FL-bench's Local-Only):
    every round each party only revisits its private data (`revisit_epochs`) and is evaluated;
    nothing is shared or digested, no bytes cross. Beside a method in one sweep
    (`--grid strategy=fedmd,local`) it separates what collaboration adds from what the rounds'
    extra private training adds on its own: the method's gain over round 0 holds both."""

    collaborates = False


for _name, _method in (
    ("cronus", Cronus),
    ("fedmd-cw", ClassWeighted),
    ("ds-fl", DSFL),
    ("fedmd-kl", FedMDKL),
    ("kt-pfl", KTpFL),
    ("local", Local),
):  # registered as a user's would be
    STRATEGIES.register(_name, _method, builtin=True)
