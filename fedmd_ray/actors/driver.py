"""The FedMD round loop (arXiv 1910.03581, Algorithm 1), plain Python.

The driver owns the alignment RNG, the aggregation and the result rows; parties
are reached only through a `PartyPool`, so the same loop runs in-process
(`backend="local"`) and as a Ray actor over participant actors
(`backend="ray"`). It never touches images: rounds send indices, and the
consensus is shared once per round.

Failures are handled here, inside the round loop: a host that raises, dies or
does not answer within `round_timeout_s` is restarted from the parties' state
after the last finished phase and redoes its part of the call (`restart`), is
left out from then on (`drop`), or stops the run (`fail`). The consensus is
the mean over the parties that answered. Every party gets a row every round;
its `status` says what happened: ok, restarted, absent (`party_dropout`),
dropped.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import numpy.typing as npt

from fedmd_ray.actors.common import Evaluation, PartyState, peak_rss_mib
from fedmd_ray.actors.pool import HostFailure, PartiesFailed, PartyPool, PerParty, SavedStates
from fedmd_ray.aggregation import Consensus, aggregate
from fedmd_ray.config import FedMDConfig
from fedmd_ray.data.sampling import sample_alignment
from fedmd_ray.errors import FedMDError, PartyFailure
from fedmd_ray.seeding import rng
from fedmd_ray.transfer_cache import TransferCache

Row = dict[str, Any]
log = logging.getLogger("fedmd_ray")


class Driver:
    def __init__(
        self, config: FedMDConfig, public_y: npt.NDArray[np.int64], pool: PartyPool, run_id: str,
        save_states: bool = True,
    ) -> None:
        """`save_states`: hosts save their parties' states with every phase (for checkpoints);
        `on_party_failure=restart` saves them in any case, to restart from."""
        self.config = config
        self._save = save_states or config.on_party_failure == "restart"
        self.public_y = public_y
        self.pool = pool
        self.run_id = run_id
        self.models = dict(enumerate(config.party_models))
        self.dropped: dict[int, str] = {}  # party -> what happened
        self.restarts = {p: 0 for p in self.models}
        self._restarted: set[int] = set()  # in the current phase
        self._next_scores: dict[int, npt.NDArray[np.float32]] = {}  # sent ahead for round `_next_round`
        self._next_round = 0

    def transfer_learn(self, cache_root: str | None = None) -> list[Row]:
        """Round 0: every party pretrains on public data, then trains on its own.

        With `cache_root`, parties whose transfer phase was already computed under
        the same `transfer_fingerprint` load it instead (see `transfer_cache`).
        """
        self._restarted = set()
        cache = None
        if cache_root is not None:
            threads = tuple(host["torch_threads"] for host in self.pool.describe())
            cache = TransferCache(cache_root, self.config, threads)
        hit = None if cache is None else cache.load()
        if hit is not None:
            states, results = hit
            self._call("import_state", 0, self._active(), {p: (states[p],) for p in states}, save=self._save)
        else:
            results = self._call("transfer_learn", 0, self._active(), save=self._save)
            if cache is not None and not self.dropped:
                cache.store(self._call("export_state", 0, self._active(), None, False), results)
        rows = []
        names = ("transfer", "upper_bound") if self.config.upper_bound else ("transfer",)
        for party in self.models:
            phases: dict[str, Evaluation | None] = {n: None for n in names}  # dropped: rows without metrics
            phases.update(results.get(party, {}))
            for phase in sorted(phases, key=lambda p: p != "transfer"):  # transfer rows first
                rows.append(self._row(party, phase, 0, phases[phase]))
        return rows

    def run_round(self, round_: int) -> list[Row]:
        """Communicate, aggregate, distribute, digest, revisit, evaluate.

        Parties compute the next round's scores at the end of this one (same model,
        same subset), so a round is one call to every party, not two.
        """
        self._restarted = set()
        absent = self.absent(round_)
        present = [p for p in self._active() if p not in absent]
        align_idx = self.sample_alignment(round_)
        scores = self._next_scores if self._next_round == round_ else {}
        scores = {p: s for p, s in scores.items() if p in present}
        missing = [p for p in present if p not in scores]
        if missing:
            scores.update(self._call("communicate", round_, missing, None, align_idx))
        self._next_scores = {}
        results: dict[int, Any] = {}
        if scores:
            consensus = self.aggregate(_stack(scores))
            shared = self.pool.share(consensus)  # put once, read by every party
            next_idx = self.sample_alignment(round_ + 1) if round_ < self.config.rounds else None
            results = self._call(
                "collaborate", round_, sorted(scores), None, align_idx, shared, next_idx, save=self._save
            )
            if next_idx is not None:
                self._next_scores, self._next_round = {p: r[1] for p, r in results.items()}, round_ + 1
        return [
            self._row(p, "collaborate", round_, results[p][0] if p in results else None,
                      "absent" if p in absent and p not in self.dropped else None)
            for p in self.models
        ]

    def absent(self, round_: int) -> set[int]:
        """Parties that sit out `round_` (`party_dropout`), drawn from (seed, round): resumable."""
        if self.config.party_dropout <= 0:
            return set()
        draws = rng(self.config.seed, "dropout", round_).random(len(self.models))
        return {p for p in self.models if draws[p] < self.config.party_dropout}

    def sample_alignment(self, round_: int) -> npt.NDArray[np.int64]:
        """A fresh stratified subset per round, seeded by (seed, round): resumable, order-free."""
        return sample_alignment(rng(self.config.seed, "alignment", round_), self.public_y, self.config.subset_size)

    def aggregate(self, scores: npt.NDArray[np.float32]) -> Consensus:
        return aggregate(self.config.aggregator, scores)

    def describe(self) -> list[dict[str, Any]]:
        return self.pool.describe()

    def usage(self) -> dict[str, Any]:
        """The hosts' `usage()` and the driver process's peak memory (MiB)."""
        return {"hosts": self.pool.usage(), "driver_peak_rss_mib": peak_rss_mib()}

    def export_states(self) -> SavedStates:
        """Every active party's model, optimizers and RNG stream after the last finished phase
        (for checkpoints); under Ray, refs the caller fetches itself, not via this actor."""
        if self._save:
            return self.pool.saved()
        active = self._active()
        return SavedStates(((tuple(active), self._call("export_state", -1, active)),))

    def import_states(self, states: dict[int, PartyState]) -> None:
        """Restore what `export_states` returned; parties without a state were dropped before."""
        for party in self.models:
            if party not in states:
                self.dropped.setdefault(party, "dropped before the checkpoint")
        self._call("import_state", -1, self._active(), {p: (s,) for p, s in states.items()}, save=self._save)
        self._next_scores = {}

    def close(self) -> None:
        self.pool.close()

    # --- failures -------------------------------------------------------------------
    def _active(self) -> list[int]:
        return [p for p in self.models if p not in self.dropped]

    def _call(
        self, method: str, round_: int, parties: list[int], own: PerParty | None = None, *shared: Any,
        save: bool = False,
    ) -> dict[int, Any]:
        """`method` on `parties` (with their `own` arguments before `shared`), under the failure policy.
        `save` for calls that finish a phase: hosts keep their states after it (restarts, checkpoints)."""
        per_party = {p: (own or {}).get(p, ()) for p in parties}
        try:
            return self.pool.call(method, *shared, per_party=per_party, timeout=self.config.round_timeout_s,
                                  save=save)
        except PartiesFailed as failed:
            results = dict(failed.results)
            for failure in failed.failures:
                results.update(self._recover(failure, method, round_, per_party, shared, save))
            return dict(sorted(results.items()))

    def _recover(
        self, failure: HostFailure, method: str, round_: int, per_party: PerParty, shared: tuple[Any, ...],
        save: bool,
    ) -> dict[int, Any]:
        """Apply `on_party_failure` to a failed host; the results of its redone call, if any."""
        who = ", ".join(f"party {p} ({self.models[p]})" for p in failure.parties)
        where = f"in {method}" + (f" of round {round_}" if round_ >= 0 else "")
        log.warning("%s failed %s: %s\n%s", who, where, failure.reason, failure.detail)
        policy = self.config.on_party_failure
        if policy == "fail":
            raise PartyFailure(
                f"{who} failed {where}: {failure.reason}. The run stopped (on_party_failure=fail); its checkpoint "
                "holds the last finished round: fedmd-ray run --resume DIR"
            )
        # The failed host's saved states are still those after the last finished phase: its failed
        # call (and the save that goes with it) is redone from them.
        while policy == "restart" and all(self.restarts[p] < self.config.max_party_restarts for p in failure.parties):
            states = self.pool.saved().resolve(failure.parties) or None
            if states is None and method not in ("transfer_learn", "import_state"):
                break  # nothing to restart from (those two rebuild the parties' state themselves)
            for p in failure.parties:
                self.restarts[p] += 1
            try:
                self.pool.restart(failure.host, states)
                redo = {p: per_party[p] for p in failure.parties if p in per_party}
                results = self.pool.call(method, *shared, per_party=redo, timeout=self.config.round_timeout_s,
                                         save=save)
            except PartiesFailed as again:
                failure = again.failures[0]
                log.warning("%s failed again after a restart: %s\n%s", who, failure.reason, failure.detail)
                continue
            except FedMDError as exc:  # e.g. the cluster has no room for a new actor any more
                log.warning("could not restart %s: %s", who, exc)
                break
            log.warning("%s restarted %s", who, where)
            self._restarted.update(failure.parties)
            return results
        for p in failure.parties:
            self.dropped[p] = f"{failure.reason} {where}"
        self.pool.remove(failure.host)
        log.warning("%s dropped for the rest of the run", who)
        return {}

    def _row(self, party: int, phase: str, round_: int, ev: Evaluation | None, status: str | None = None) -> Row:
        if status is None:
            status = "dropped" if party in self.dropped else "restarted" if party in self._restarted else "ok"
        return {
            "run_id": self.run_id,
            "party": party,
            "model": self.models[party],
            "phase": phase,
            "round": round_,
            "status": status,
            "test_accuracy": None if ev is None else ev.accuracy,
            "test_loss": None if ev is None else ev.loss,
            "seconds": None if ev is None else ev.seconds,
        }


def _stack(scores: dict[int, npt.NDArray[np.float32]]) -> npt.NDArray[np.float32]:
    """(parties, n_align, classes) in party order: the consensus sums in a fixed order."""
    return np.stack([scores[p] for p in sorted(scores)])
