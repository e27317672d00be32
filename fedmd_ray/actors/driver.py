"""The FedMD round loop (arXiv 1910.03581, Algorithm 1), plain Python.

`Driver.run_round` is the paper's round, one named call per step. The driver owns the
alignment RNG, the strategy (its `aggregate` and its state) and the result rows;
parties are reached only through a `PartyPool` with typed tasks (`actors.messages`), so
the same loop runs in-process (`backend="local"`) and as a Ray actor over party
actors (`backend="ray"`). It never touches images: rounds send indices, and the
targets are put once per round.

Each step asks the pool and hands its answers to the run's `Recovery`
(`actors.recovery`: restart, drop or fail, per `on_party_failure`); the strategy
aggregates the scores of the parties that answered. Every party gets a row
every round; its `status` says what happened: ok, restarted, absent
(`party_dropout`), dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

import numpy as np
import numpy.typing as npt

from fedmd_ray.actors.messages import (
    Communicate,
    DigestRevisitEvaluate,
    Distributed,
    Evaluation,
    ExportModel,
    ExportState,
    ImportState,
    PartyProgress,
    PartyState,
    PartyTask,
    RoundResult,
    TransferLearn,
    peak_rss_mib,
)
from fedmd_ray.actors.pool import PartyPool, SavedStates
from fedmd_ray.actors.portable import Portable
from fedmd_ray.actors.recovery import Recovery
from fedmd_ray.analysis.schema import result_row
from fedmd_ray.config import FedMDConfig
from fedmd_ray.data.sampling import sample_alignment
from fedmd_ray.errors import FedMDError, PluginError
from fedmd_ray.log import relay_from_here
from fedmd_ray.phases import COLLABORATE, TRANSFER, UPPER_BOUND
from fedmd_ray.plugins import plugin_code
from fedmd_ray.seeding import rng
from fedmd_ray.strategy import RoundInfo, Strategy, StrategyState, Targets, check_state, check_targets
from fedmd_ray.transfer_cache import TransferCache

Row = dict[str, Any]
Scores = dict[int, npt.NDArray[np.float32]]  # party -> (n_align, classes)
R = TypeVar("R")
log = logging.getLogger("fedmd_ray")


@dataclass(frozen=True)
class Snapshot:
    """Everything a checkpoint holds besides the rows: every active party's state after the last
    finished phase (refs under Ray, see `SavedStates`) and the strategy's state."""

    parties: SavedStates
    strategy: StrategyState


class Driver:
    def __init__(
        self,
        config: FedMDConfig,
        strategy: Strategy,
        models: Sequence[str],
        public_y: npt.NDArray[np.int64],
        pool: PartyPool,
        run_id: str,
        save_states: bool = True,
        label_counts: npt.NDArray[np.int64] | None = None,
    ) -> None:
        """`models`: each party's model name (for rows). `save_states`: hosts save their parties'
        states with every phase (for checkpoints); `on_party_failure=restart` saves them in any
        case, to restart from. `label_counts`: (parties, classes) private label counts, for a strategy
        that `uses_label_counts`."""
        self.config = config
        self.strategy = strategy
        self._save = save_states or config.on_party_failure == "restart"
        self.public_y = public_y
        self.pool = pool
        self.run_id = run_id
        self.models = dict(enumerate(models))
        self.recovery = Recovery(config, pool, self.models)  # on_party_failure, and what it did
        self._prefetched: tuple[int, Scores] = (0, {})  # (round, scores sent ahead for it)
        self._model_bytes: dict[int, int] = {}  # party -> parameter bytes, from the hosts
        self._asked: set[int] = set()  # parties asked to communicate this round (not sent ahead)
        self._counts = label_counts if strategy.uses_label_counts else None

    # --- round 0 --------------------------------------------------------------------
    def transfer_learn(
        self, cache_root: str | None = None, on_progress: Callable[[list[PartyProgress]], None] | None = None
    ) -> list[Row]:
        """Round 0: every party pretrains on public data, then trains on its own.

        With `cache_root`, parties whose transfer phase was already computed under
        the same `transfer_fingerprint` load it instead (see `transfer_cache`).
        `on_progress` hears of parties as they finish (hosts in this process).
        """
        self.pool.listen(on_progress)
        try:
            return self._transfer_learn(cache_root)
        finally:
            self.pool.listen(None)

    def _transfer_learn(self, cache_root: str | None) -> list[Row]:
        self.recovery.new_phase()
        cache = None
        if cache_root is not None:
            threads = tuple(host["torch_threads"] for host in self.pool.describe())
            cache = TransferCache(cache_root, self.config, threads)
        hit = None if cache is None else cache.load()
        if hit is not None:
            states, results = hit
            self._ask(ImportState(states), 0, self._active(), save=self._save)
        else:
            results = self._ask(TransferLearn(), 0, self._active(), save=self._save)
            if cache is not None and not self.recovery.dropped:
                cache.store(self._ask(ExportState(include_optimizers=False), 0, self._active()), results)
        self._model_bytes = {p: b for host in self.pool.describe() for p, b in host["model_bytes"].items()}
        rows = []
        names = (TRANSFER, UPPER_BOUND) if self.config.upper_bound else (TRANSFER,)
        for party in self.models:
            phases: dict[str, Evaluation | None] = {n: None for n in names}  # dropped: rows without metrics
            phases.update(results.get(party, {}))
            for phase in sorted(phases, key=lambda p: p != TRANSFER):  # transfer rows first
                row = self._row(party, phase, 0 if phase == TRANSFER else None, phases[phase])
                if phase == TRANSFER:
                    row["model_bytes"] = self._model_bytes.get(party)
                rows.append(row)
        return rows

    # --- rounds 1..R: the paper's round, one named call per step -------------------------
    def run_round(self, round_: int) -> list[Row]:
        """sample the alignment subset -> communicate -> aggregate -> distribute -> digest ->
        revisit -> evaluate (the last three in one call to each party, which also scores the
        next round's subset: pipelining). Without collaboration (`collaborates`) parties only revisit
        and are evaluated."""
        self.recovery.new_phase()
        absent = self.absent(round_)
        present = [p for p in self._active() if p not in absent]
        if not self.collaborates:
            results = self.revisit_evaluate(round_, present)
            return self._round_rows(round_, absent, results, dict.fromkeys(results, (0, 0)))
        align_idx = self.sample_alignment(round_)
        scores = self.communicate(round_, present, align_idx)
        results = {}
        traffic: dict[int, tuple[int, int]] = {}
        if scores:
            targets = self.aggregate(round_, scores)
            distributed = self.distribute(targets, sorted(scores))
            results = self.digest_revisit_evaluate(round_, sorted(scores), align_idx, distributed)
            traffic = self.traffic(round_, scores, align_idx, targets)
        return self._round_rows(round_, absent, results, traffic)

    @property
    def collaborates(self) -> bool:
        """False for the no-collaboration control (`Strategy.collaborates`, or `digest_epochs=0`): a
        round then samples, shares and aggregates nothing."""
        return self.strategy.collaborates and self.config.digest_epochs > 0

    def revisit_evaluate(self, round_: int, parties: list[int]) -> dict[int, RoundResult]:
        """A round without collaboration: each party revisits its private data and is evaluated."""
        return self._ask(DigestRevisitEvaluate(round_, None, None, None), round_, parties, save=self._save)

    def _round_rows(
        self, round_: int, absent: set[int], results: dict[int, RoundResult], traffic: dict[int, tuple[int, int]]
    ) -> list[Row]:
        """One row per party of the run: the present ones' results and bytes, the others' status."""
        rows = []
        for p in self.models:
            row = self._row(
                p,
                COLLABORATE,
                round_,
                results[p].evaluation if p in results else None,
                "absent" if p in absent and p not in self.recovery.dropped else None,
            )
            if p in results:
                row["bytes_sent"], row["bytes_received"] = traffic[p]
            rows.append(row)
        return rows

    def traffic(
        self, round_: int, scores: Scores, align_idx: npt.NDArray[np.int64], targets: Targets
    ) -> dict[int, tuple[int, int]]:
        """(bytes sent, bytes received) per party this round, from the arrays that crossed: its scores;
        the subset's indices (and the next one's, when pipelined) and its target."""
        ahead = set(self._scores_ahead(round_, list(scores)))  # the next subset travels with this one
        target_bytes = targets.nbytes if targets.ndim == 2 else targets[0].nbytes  # a consensus, or one row
        counts = self._counts[0].nbytes if self._counts is not None and round_ == 1 else 0  # shared once
        return {
            p: (s.nbytes + counts, align_idx.nbytes * (1 + (p in self._asked) + (p in ahead)) + target_bytes)
            for p, s in scores.items()
        }

    def _scores_ahead(self, round_: int, parties: list[int]) -> list[int]:
        """The parties that score the next round's subset with this round's answer: those present in
        it (an absent party's scores would be thrown away); none after the last round."""
        if round_ >= self.config.rounds:
            return []
        absent = self.absent(round_ + 1)
        return [p for p in parties if p not in absent]

    def absent(self, round_: int) -> set[int]:
        """Parties that sit out `round_` (`party_dropout`), drawn from (seed, round): resumable."""
        if self.config.party_dropout <= 0:
            return set()
        draws = rng(self.config.seed, "dropout", round_).random(len(self.models))
        return {p for p in self.models if draws[p] < self.config.party_dropout}

    def sample_alignment(self, round_: int) -> npt.NDArray[np.int64]:
        """A fresh stratified subset per round, seeded by (seed, round): resumable, order-free."""
        return sample_alignment(rng(self.config.seed, "alignment", round_), self.public_y, self.config.subset_size)

    def communicate(self, round_: int, parties: list[int], align_idx: npt.NDArray[np.int64]) -> Scores:
        """Each party's shared scores on the subset: those it sent ahead with last round's answer,
        asked for now from the others (round 1, after a resume, a restart or an absence)."""
        prefetched_round, prefetched = self._prefetched
        scores = {p: s for p, s in prefetched.items() if p in parties} if prefetched_round == round_ else {}
        self._prefetched = (0, {})
        missing = [p for p in parties if p not in scores]
        self._asked = set(missing)  # they received the subset's indices once more (traffic)
        if missing:
            scores.update(self._ask(Communicate(align_idx), round_, missing))
        return dict(sorted(scores.items()))

    def aggregate(self, round_: int, scores: Scores) -> Targets:
        """The strategy's targets from the stacked scores: one consensus or one per party."""
        parties = tuple(scores)
        stacked = np.stack([scores[p] for p in parties])  # (parties, n_align, classes), party order

        def aggregate() -> Targets:
            counts = None if self._counts is None else self._counts[list(parties)]
            targets = self.strategy.aggregate(stacked, RoundInfo(round_, parties, len(self.models), counts))
            check_state(self.strategy.state_dict(), self.strategy)  # what aggregate left: before anything is saved
            return check_targets(targets, len(parties), stacked.shape[1:], self.strategy)

        return self._strategy_step(f"aggregate of round {round_}", aggregate)

    def _strategy_step(self, step: str, call: Callable[[], R]) -> R:
        """`call()`, a step of the strategy's code; any failure (an exception, `sys.exit()`) is a PluginError
        naming it, which stops the run."""
        name = type(self.strategy).__name__
        try:
            with plugin_code():
                return call()
        except FedMDError as exc:
            raise PluginError(f"strategy {name} failed in {step}: {exc}") from exc
        except Exception as exc:
            raise PluginError(
                f"strategy {name} raised in {step}: {type(exc).__name__}: {exc}. The run "
                "stopped. A fixed strategy is a new run (its code is part of the run's identity, so --resume "
                "refuses it): start it again with --overwrite or another --out"
            ) from exc

    def distribute(self, targets: Targets, parties: list[int]) -> Distributed:
        """Put the targets once for every party to read (a personalised array: each its row)."""
        rows = None if targets.ndim == 2 else {p: i for i, p in enumerate(parties)}
        return self.pool.distribute(targets, rows)

    def digest_revisit_evaluate(
        self, round_: int, parties: list[int], align_idx: npt.NDArray[np.int64], targets: Distributed
    ) -> dict[int, RoundResult]:
        """Each party digests its target, revisits its private data and is evaluated; before the last
        round, each party present in the next one also scores its subset, kept for `communicate`."""
        next_idx = self.sample_alignment(round_ + 1) if round_ < self.config.rounds else None
        ahead = frozenset(self._scores_ahead(round_, parties))
        task = DigestRevisitEvaluate(round_, align_idx, targets, next_idx, ahead)
        answers = self.pool.run(task, parties, timeout=self.config.round_timeout_s, save=self._save)
        results = self.recovery.settle(answers, task, round_, parties, self._save)
        if next_idx is not None:
            self._prefetched = (round_ + 1, {p: r.next_scores for p, r in results.items() if r.next_scores is not None})
        return results

    # --- state ---------------------------------------------------------------------
    def describe(self) -> list[dict[str, Any]]:
        return self.pool.describe()

    def usage(self) -> dict[str, Any]:
        """The hosts' `usage()` and the driver process's peak memory (MiB)."""
        return {"hosts": self.pool.usage(), "driver_peak_rss_mib": peak_rss_mib()}

    def export_states(self) -> Snapshot:
        """Every active party's model, optimizers and RNG stream after the last finished phase, and
        the strategy's state (for checkpoints); under Ray, the party states are refs the caller
        fetches itself, not via this actor."""
        if self._save:
            parties = self.pool.saved()
        else:
            active = self._active()
            parties = SavedStates(((tuple(active), self._ask(ExportState(), -1, active)),))
        return Snapshot(parties, self._strategy_step("state_dict", self.strategy.state_dict))

    def export_models(self) -> dict[int, PartyState]:
        """Every active party's reported model's weights, serialized (`Participant.export_model`)."""
        return self._ask(ExportModel(), -1, self._active())

    def import_states(self, states: dict[int, PartyState], strategy_state: StrategyState) -> None:
        """Restore a checkpoint; parties without a state were dropped before it."""
        for party in self.models:
            if party not in states:
                self.recovery.dropped.setdefault(party, "dropped before the checkpoint")
        self._ask(ImportState(states), -1, self._active(), save=self._save)
        self._strategy_step("load_state_dict", lambda: self.strategy.load_state_dict(strategy_state))
        self._prefetched = (0, {})

    def close(self) -> None:
        self.pool.close()

    # --- failures -------------------------------------------------------------------
    def _active(self) -> list[int]:
        return self.recovery.active()

    def _ask(self, task: PartyTask[R], round_: int, parties: list[int], *, save: bool = False) -> dict[int, R]:
        """`task` on `parties`, failed hosts handled by the failure policy (`actors.recovery`). `save` for
        tasks that finish a phase: hosts keep their states after it (restarts, checkpoints)."""
        answers = self.pool.run(task, parties, timeout=self.config.round_timeout_s, save=save)
        return self.recovery.settle(answers, task, round_, parties, save)

    def _row(self, party: int, phase: str, round_: int | None, ev: Evaluation | None, status: str | None = None) -> Row:
        """One result row (`analysis.schema.result_row`); the status from what happened to the party."""
        if status is None:
            status = (
                "dropped"
                if party in self.recovery.dropped
                else "restarted"
                if party in self.recovery.restarted
                else "ok"
            )
        return result_row(self.run_id, party, self.models[party], phase, round_, status, ev)


class DriverActor(Driver):
    """The `Driver` as a Ray actor: its config and strategy arrive packed (see `actors.portable`).
    Defined here, in a module free of torch: Ray imports an actor class's module in its process.

    Its log records (failures, restarts; tracebacks at the caller's `-v`) are kept for the caller,
    which takes them while it waits on a call (`take_log_records`, in a concurrency group of its
    own: see `RemoteDriver`) and emits them in its own process, in order with its progress lines."""

    LOG_GROUP = "log"

    def __init__(self, packed: Portable, log_level: int, *args: Any) -> None:
        config, strategy = packed.unwrap()
        self._relay = relay_from_here(log_level)
        super().__init__(config, strategy, *args)

    def take_log_records(self) -> list[logging.LogRecord]:
        return self._relay.take()
