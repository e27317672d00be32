"""Bring your own distillation method: a trimmed-mean consensus and a stateful personalised one.

A strategy subclasses `fedmd_ray.Strategy` and says what a party shares (`share`), how
the shared scores `(parties, n_align, classes)` become targets (`aggregate`: one
consensus `(n_align, classes)` for all, or one per party `(parties, n_align, classes)`),
the digest loss, and the state it keeps across rounds (`state_dict`: numpy arrays,
saved in every checkpoint and restored on resume). The paper's FedMD is such a
subclass too (`fedmd_ray.FedMD`). From the command line, name one by import path:

    fedmd-ray run --preset quick --set strategy=custom_strategy:TrimmedMean   # from examples/

Constructor parameters named like config fields (`temperature`) take the config's value.

Run:  python examples/custom_strategy.py [--rounds 5]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

import fedmd_ray
from fedmd_ray import RoundInfo, Strategy


class TrimmedMean(Strategy):
    """Robust consensus: per sample and class, drop the `trim` fraction of highest and of lowest
    logits before averaging (a minority of wild parties cannot pull it); L1 digest as in FedMD."""

    def __init__(self, trim: float = 0.2) -> None:
        if not 0 <= trim < 0.5:
            raise ValueError(f"trim={trim} must lie in [0, 0.5)")
        self.trim = trim

    def aggregate(self, scores: np.ndarray, info: RoundInfo) -> np.ndarray:
        k = int(self.trim * len(scores))
        ordered = np.sort(scores, axis=0)  # (parties, n_align, classes), sorted over parties
        return ordered[k : len(scores) - k].mean(axis=0, dtype=np.float64).astype(np.float32)

    def digest_loss(self, student_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(student_logits, target)


class AgreementWeighted(Strategy):
    """Personalised consensus with memory: each party learns most from the parties that agree with it.

    Parties share softmax probabilities at `temperature`. The driver keeps, across rounds, an
    exponential moving average of how often two parties predict the same class on the subset
    (state: an `(n_parties, n_parties)` matrix), and gives party i the mean of everyone's
    probabilities weighted by row i of it. Each party digests its own target with a KL loss.
    """

    def __init__(self, temperature: float = 1.0, momentum: float = 0.5) -> None:
        self.temperature = temperature
        self.momentum = momentum
        self.agreement: np.ndarray | None = None  # (n_parties, n_parties), made in round 1

    def share(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits / self.temperature, dim=1)

    def aggregate(self, scores: np.ndarray, info: RoundInfo) -> np.ndarray:
        if self.agreement is None:
            self.agreement = np.ones((info.n_parties, info.n_parties))
        labels = scores.argmax(axis=2)  # (parties, n_align)
        agree = (labels[:, None, :] == labels[None, :, :]).mean(axis=2)  # (parties, parties)
        present = np.ix_(info.parties, info.parties)
        self.agreement[present] = self.momentum * self.agreement[present] + (1 - self.momentum) * agree
        weights = self.agreement[present] / self.agreement[present].sum(axis=1, keepdims=True)
        targets = np.einsum("ij,jnc->inc", weights, scores)  # (parties, n_align, classes): one per party
        return targets.astype(np.float32)

    def digest_loss(self, student_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(student_logits / self.temperature, dim=1)
        return F.kl_div(log_p, target, reduction="batchmean") * self.temperature**2

    def state_dict(self) -> dict[str, np.ndarray]:
        return {} if self.agreement is None else {"agreement": self.agreement.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.agreement = state["agreement"].copy() if "agreement" in state else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for strategy in (TrimmedMean(trim=0.25), AgreementWeighted(temperature=2.0)):
        print(f"--- {type(strategy).__name__}")
        config = fedmd_ray.preset(
            "quick",
            n_parties=4,
            models=("cnn2-8-16", "mlp-64", "cnn1-16", "mlp-128"),
            rounds=args.rounds,
            strategy=strategy,
        )
        fedmd_ray.run(config, verbose=True)  # progress on stderr


if __name__ == "__main__":
    main()
