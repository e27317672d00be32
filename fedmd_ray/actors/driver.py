"""The FedMD round loop (arXiv 1910.03581, Algorithm 1), plain Python.

The driver owns the alignment RNG, the aggregation and the result rows; parties
are reached only through a `PartyPool`, so the same loop runs in-process
(`backend="local"`) and as a Ray actor over participant actors
(`backend="ray"`). It never touches images: rounds send indices, and the
consensus is shared once per round.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from fedmd_ray.actors.participant import Evaluation, peak_rss_mib
from fedmd_ray.actors.pool import PartyPool
from fedmd_ray.aggregation import Consensus, aggregate
from fedmd_ray.config import FedMDConfig
from fedmd_ray.data.sampling import sample_alignment
from fedmd_ray.seeding import rng
from fedmd_ray.transfer_cache import TransferCache

Row = dict[str, Any]


class Driver:
    def __init__(
        self, config: FedMDConfig, public_y: npt.NDArray[np.int64], pool: PartyPool, run_id: str
    ) -> None:
        self.config = config
        self.public_y = public_y
        self.pool = pool
        self.run_id = run_id
        self.models = dict(enumerate(config.party_models))
        self._next_scores: tuple[int, npt.NDArray[np.float32]] | None = None  # (round, scores) sent ahead

    def transfer_learn(self, cache_root: str | None = None) -> list[Row]:
        """Round 0: every party pretrains on public data, then trains on its own.

        With `cache_root`, parties whose transfer phase was already computed under
        the same `transfer_fingerprint` load it instead (see `transfer_cache`).
        """
        cache = None if cache_root is None else TransferCache(cache_root, self.config)
        hit = None if cache is None else cache.load()
        if hit is not None:
            states, results = hit
            self.pool.call("import_state", per_party={p: (states[p],) for p in states})
        else:
            results = self.pool.call("transfer_learn")
            if cache is not None:
                cache.store(self.pool.call("export_state", False), results)
        rows = []
        for party, phases in results.items():
            for phase in sorted(phases, key=lambda p: p != "transfer"):  # transfer rows first
                rows.append(self._row(party, phase, 0, phases[phase]))
        return rows

    def run_round(self, round_: int) -> list[Row]:
        """Communicate, aggregate, distribute, digest, revisit, evaluate.

        Parties compute the next round's scores at the end of this one (same model,
        same subset), so a round is one call to every party, not two.
        """
        align_idx = self.sample_alignment(round_)
        if self._next_scores is not None and self._next_scores[0] == round_:
            scores = self._next_scores[1]
        else:
            scores = self.communicate(align_idx)
        self._next_scores = None
        consensus = self.aggregate(scores)
        shared = self.pool.share(consensus)  # put once, read by every party
        next_idx = self.sample_alignment(round_ + 1) if round_ < self.config.rounds else None
        results = self.pool.call("collaborate", align_idx, shared, next_idx)
        if next_idx is not None:
            self._next_scores = (round_ + 1, _stack({p: r[1] for p, r in results.items()}))
        return [self._row(party, "collaborate", round_, ev) for party, (ev, _) in results.items()]

    def sample_alignment(self, round_: int) -> npt.NDArray[np.int64]:
        """A fresh stratified subset per round, seeded by (seed, round): resumable, order-free."""
        return sample_alignment(rng(self.config.seed, "alignment", round_), self.public_y, self.config.subset_size)

    def communicate(self, align_idx: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """Gather every party's scores, stacked in party order: (parties, n_align, classes)."""
        return _stack(self.pool.call("communicate", align_idx))

    def aggregate(self, scores: npt.NDArray[np.float32]) -> Consensus:
        return aggregate(self.config.aggregator, scores)

    def describe(self) -> list[dict[str, Any]]:
        return self.pool.describe()

    def usage(self) -> dict[str, Any]:
        """The hosts' `usage()` and the driver process's peak memory (MiB)."""
        return {"hosts": self.pool.usage(), "driver_peak_rss_mib": peak_rss_mib()}

    def close(self) -> None:
        self.pool.close()

    def _row(self, party: int, phase: str, round_: int, ev: Evaluation) -> Row:
        return {
            "run_id": self.run_id,
            "party": party,
            "model": self.models[party],
            "phase": phase,
            "round": round_,
            "test_accuracy": ev.accuracy,
            "test_loss": ev.loss,
            "seconds": ev.seconds,
        }


def _stack(scores: dict[int, npt.NDArray[np.float32]]) -> npt.NDArray[np.float32]:
    """(parties, n_align, classes) in party order: the consensus sums in a fixed order."""
    return np.stack([scores[p] for p in sorted(scores)])
