"""What the driver asks of parties, as typed messages: one class per step of a FedMD run.

A task is a small frozen dataclass that a party host applies to each of its parties
(`task.run(participant)`); the pool sends the same task to every host (local or a Ray
actor) and collects the answers by party id. So the driver's calls are plain
constructors that mypy checks (`Communicate(align_idx)`), go-to-definition leads from a
step to the participant's method, and there is one dispatch path for every step, which
is also where failures are caught and retried. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Sequence, TypeVar

import numpy as np
import numpy.typing as npt

from fedmd_ray.actors.common import Distributed, Evaluation, PartyProgress, PartyState, RoundResult

if TYPE_CHECKING:
    from fedmd_ray.actors.participant import Participant
    from fedmd_ray.actors.party_group import PartyGroup

R = TypeVar("R", covariant=True)
Indices = npt.NDArray[np.int64]


class PartyTask(Generic[R]):
    """One step, applied to each party of a host. `phase` names it in messages; `restores_state`
    tasks rebuild a party's state themselves, so a failed host can be restarted fresh for them."""

    phase: ClassVar[str]
    restores_state: ClassVar[bool] = False
    is_state_transfer: ClassVar[bool] = False  # counted apart from party work (benchmarks)

    def run(self, participant: Participant) -> R:
        raise NotImplementedError

    def run_group(self, group: PartyGroup) -> dict[int, R]:
        """The task for same-architecture parties as one computation (`actors.party_group`); tasks that
        have no batched form run each member alone."""
        return {member.party: self.run(member) for member in group.members}

    def for_parties(self, parties: Sequence[int]) -> PartyTask[R]:
        """The part of this task for a host holding `parties` (tasks with per-party payloads trim it)."""
        return self

    def progress(self, party: int, result: Any) -> PartyProgress | None:
        """What a long task reports when one party is done (progress lines); None: nothing."""
        return None


@dataclass(frozen=True)
class TransferLearn(PartyTask[dict[str, Evaluation]]):
    """Round 0: public pretraining, the upper bound, private training (see `Participant.transfer_learn`)."""

    phase: ClassVar[str] = "transfer learning"
    restores_state: ClassVar[bool] = True

    def run(self, participant: Participant) -> dict[str, Evaluation]:
        return participant.transfer_learn()

    def run_group(self, group: PartyGroup) -> dict[int, dict[str, Evaluation]]:
        return group.transfer_learn()

    def progress(self, party: int, result: Any) -> PartyProgress | None:
        done = result["transfer"]
        upper = result.get("upper_bound")
        return PartyProgress(party, done.accuracy, done.pretrain_epochs, done.seconds + (upper.seconds if upper else 0))


@dataclass(frozen=True)
class Communicate(PartyTask[npt.NDArray[np.float32]]):
    """Each party's shared scores on the alignment subset: `(n_align, classes)`."""

    align_idx: Indices
    phase: ClassVar[str] = "communicate"

    def run(self, participant: Participant) -> npt.NDArray[np.float32]:
        return participant.communicate(self.align_idx)

    def run_group(self, group: PartyGroup) -> dict[int, npt.NDArray[np.float32]]:
        return group.communicate(self.align_idx)


@dataclass(frozen=True)
class DigestRevisitEvaluate(PartyTask[RoundResult]):
    """The party's half of a round: digest its target, revisit its private data, evaluate; with
    `next_align_idx`, the parties in `scores_ahead` (default: all; the driver names those present
    next round) also score the next round's subset (pipelining). Without targets (a round without
    collaboration) the party only revisits and is evaluated."""

    round: int
    align_idx: Indices | None
    targets: Distributed | None
    next_align_idx: Indices | None
    scores_ahead: frozenset[int] | None = None
    phase: ClassVar[str] = "digest/revisit/evaluate"

    def for_parties(self, parties: Sequence[int]) -> DigestRevisitEvaluate:
        """A host none of whose parties scores ahead is not sent the next subset."""
        if self.scores_ahead is None or self.scores_ahead & set(parties):
            return self
        return replace(self, next_align_idx=None)

    def run(self, participant: Participant) -> RoundResult:
        target = None if self.targets is None else self.targets.for_party(participant.party)
        ahead = self.scores_ahead is None or participant.party in self.scores_ahead
        return participant.collaborate(self.round, self.align_idx, target, self.next_align_idx if ahead else None)

    def run_group(self, group: PartyGroup) -> dict[int, RoundResult]:
        targets = None if self.targets is None else {m.party: self.targets.for_party(m.party) for m in group.members}
        return group.collaborate(self.round, self.align_idx, targets, self.next_align_idx, self.scores_ahead)


@dataclass(frozen=True)
class ExportState(PartyTask[PartyState]):
    """Model, optimizers (unless `include_optimizers=False`) and RNG stream, serialized."""

    include_optimizers: bool = True
    phase: ClassVar[str] = "saving state"
    is_state_transfer: ClassVar[bool] = True

    def run(self, participant: Participant) -> PartyState:
        return participant.export_state(self.include_optimizers)


@dataclass(frozen=True)
class ImportState(PartyTask[None]):
    """Restore each party's serialized state (a checkpoint, the transfer cache, a restart)."""

    states: dict[int, PartyState]
    phase: ClassVar[str] = "restoring state"
    restores_state: ClassVar[bool] = True
    is_state_transfer: ClassVar[bool] = True

    def run(self, participant: Participant) -> None:
        participant.import_state(self.states[participant.party])

    def for_parties(self, parties: Sequence[int]) -> ImportState:
        return replace(self, states={p: self.states[p] for p in parties if p in self.states})
