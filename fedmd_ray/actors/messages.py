"""What the runner, the driver, the pools and the party hosts pass each other: the message types.

Data and setup going out (`SharedData`, `PartySpec`, `HostSetup`), the tasks the driver asks
of parties (`TransferLearn`, `Communicate`, `DigestRevisitEvaluate`, `ExportState`,
`ImportState`: one frozen dataclass per step) and what comes back (`Evaluation`,
`RoundResult`, `PartyState`, `PartyProgress`). A task names the method of a party
(`Participant`, or `PartyGroup` for the tasks it batches) that does it, and the arguments
it is called with: a host calls `getattr(party, task.step)(*task.arguments())`, one
dispatch path for every step, where failures are caught and retried. Nothing here imports
torch: the driver actor only routes these (indices, scores, serialized states), and keeping
torch out of its imports spares ~1.2 s of CPU and ~470 MiB per driver.
"""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Sequence, TypeVar

import numpy as np
import numpy.typing as npt

from fedmd_ray.phases import COLLABORATE, TRANSFER, UPPER_BOUND

if TYPE_CHECKING:
    from fedmd_ray.config import FedMDConfig
    from fedmd_ray.faults import Faults
    from fedmd_ray.model_registry import ModelPlugin
    from fedmd_ray.strategy import Strategy

R = TypeVar("R", covariant=True)
Indices = npt.NDArray[np.int64]

PartyState = npt.NDArray[np.uint8]
"""A party's serialized state (`Participant.export_state`): a byte array, which Ray moves
through its object store without pickling it and reads back without a copy."""


@dataclass(frozen=True)
class SharedData:
    """Arrays every party reads and nobody writes (object-store views under Ray)."""

    public_x: npt.NDArray[np.float32]
    public_y: npt.NDArray[np.int64]
    public_val_x: npt.NDArray[np.float32]
    public_val_y: npt.NDArray[np.int64]
    private_x: npt.NDArray[np.float32]
    private_y: npt.NDArray[np.int64]
    test_x: npt.NDArray[np.float32]
    test_y: npt.NDArray[np.int64]
    union_idx: npt.NDArray[np.int64]


@dataclass(frozen=True)
class PartySpec:
    party: int
    model: ModelPlugin
    private_idx: npt.NDArray[np.int64]


@dataclass(frozen=True)
class HostSetup:
    """What every party host needs besides the arrays: the config, the run's strategy (a copy per
    process: parties call its `share` and `digest_loss`) and the size of the label space."""

    config: FedMDConfig
    strategy: Strategy
    n_classes: int
    batched: frozenset[str] = frozenset()  # identities of the models whose parties run batched (`party_group`)
    faults: Faults | None = None  # injected failures, for tests (`fedmd_ray.faults`)


@dataclass(frozen=True)
class Evaluation:
    accuracy: float  # on the private task's test set
    loss: float
    seconds: float
    # after transfer learning only: accuracy on the party's own private training data with the
    # running batch-norm statistics, and with each batch's own (a large gap: the statistics lag)
    train_accuracy: float | None = None
    train_accuracy_batch_stats: float | None = None
    pretrain_epochs: int | None = None  # public epochs run (early stopping)
    refit: bool | None = None  # private training was stuck and its second fit was kept (refit_head_epochs)
    # after transfer learning only: how many private classes the party's own data holds, and the share of
    # its test predictions that name one of them (near 1: it can only name what it saw: a skewed split)
    classes_held: int | None = None
    own_class_predictions: float | None = None


@dataclass(frozen=True)
class PartyProgress:
    """A party that finished its transfer learning: what the progress lines show while the others train."""

    party: int
    accuracy: float
    pretrain_epochs: int | None
    seconds: float


@dataclass(frozen=True)
class RoundResult:
    """A party's answer to a round: its evaluation, and its scores on the next round's subset when
    the driver asked for them ahead (pipelining: one call per party per round, not two)."""

    evaluation: Evaluation
    next_scores: npt.NDArray[np.float32] | None


@dataclass(frozen=True)
class Distributed:
    """The round's targets, put once where every party can read them (distribute): the array itself
    in-process, an object ref under Ray (every host on a node maps the same copy).

    `rows` is None for one consensus shared by all, else the row of each party in a
    personalised `(parties, n_align, classes)` array.
    """

    value: Any  # npt.NDArray[np.float32], or a Ray object ref to it
    rows: dict[int, int] | None = None
    timeout_s: float | None = None  # bound on fetching a ref (it is in the object store already)
    _cache: list[npt.NDArray[np.float32]] = field(default_factory=list, compare=False, repr=False)

    def for_party(self, party: int) -> npt.NDArray[np.float32]:
        """The target of `party`: `(n_align, classes)`, read-only."""
        if not self._cache:
            value = self.value
            if not isinstance(value, np.ndarray):
                import ray  # only a RayPool makes refs

                value = ray.get(value, timeout=self.timeout_s or 600.0)  # in the object store already
            self._cache.append(value)
        targets = self._cache[0]
        if self.rows is None:
            return targets
        row: npt.NDArray[np.float32] = targets[self.rows[party]]
        return row

    def __getstate__(self) -> dict[str, Any]:
        return {"value": self.value, "rows": self.rows, "timeout_s": self.timeout_s, "_cache": []}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)


class StepError(Exception):
    """A party's step raised: the message names the step (digest, revisit, ...) and the cause;
    the original exception is chained for the traceback. `repeats`: the step went non-finite
    (`FloatingPointError`); redone from the same state, with the same random draws, it would again,
    so a restart cannot help (kept as an attribute: it survives Ray's pickling, a chained cause does not)."""

    def __init__(self, message: str, repeats: bool = False) -> None:
        super().__init__(message)
        self.repeats = repeats


def repeats_on_restart(exc: BaseException) -> bool:
    """Whether a party's failure would recur if its task were redone from the same saved state."""
    return isinstance(exc, FloatingPointError) or getattr(exc, "repeats", False) is True


def failure_reason(exc: BaseException) -> str:
    """One line for messages and the log: `raised ValueError: ... (in digest)`."""
    return f"raised {exc}" if isinstance(exc, StepError) else f"raised {exc!r}"


def peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


# --- the tasks -----------------------------------------------------------------------------


class PartyTask(Generic[R]):
    """One step, applied to each party of a host: `getattr(party, step)(*arguments())`. `phase` names it
    in messages; `batched` tasks also run on a `PartyGroup` (a model's parties as one computation), whose
    method answers for all its members; `restores_state` tasks rebuild a party's state themselves, so a
    failed host can be restarted fresh for them."""

    phase: ClassVar[str]
    step: ClassVar[str]  # the method of `Participant` (and of `PartyGroup` where `batched`) that does it
    batched: ClassVar[bool] = False
    restores_state: ClassVar[bool] = False
    is_state_transfer: ClassVar[bool] = False  # counted apart from party work (benchmarks)

    def arguments(self) -> tuple[Any, ...]:
        """What the step is called with (each party takes its own part of a per-party payload)."""
        return ()

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
    step: ClassVar[str] = "transfer_learn"
    batched: ClassVar[bool] = True
    restores_state: ClassVar[bool] = True

    def progress(self, party: int, result: Any) -> PartyProgress | None:
        done = result[TRANSFER]
        upper = result.get(UPPER_BOUND)
        return PartyProgress(party, done.accuracy, done.pretrain_epochs, done.seconds + (upper.seconds if upper else 0))


@dataclass(frozen=True)
class Communicate(PartyTask[npt.NDArray[np.float32]]):
    """Each party's shared scores on the alignment subset: `(n_align, classes)`."""

    align_idx: Indices
    phase: ClassVar[str] = "communicate"
    step: ClassVar[str] = "communicate"
    batched: ClassVar[bool] = True

    def arguments(self) -> tuple[Any, ...]:
        return (self.align_idx,)


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
    step: ClassVar[str] = COLLABORATE
    batched: ClassVar[bool] = True

    def arguments(self) -> tuple[Any, ...]:
        return self.round, self.align_idx, self.targets, self.next_align_idx, self.scores_ahead

    def for_parties(self, parties: Sequence[int]) -> DigestRevisitEvaluate:
        """A host none of whose parties scores ahead is not sent the next subset."""
        if self.scores_ahead is None or self.scores_ahead & set(parties):
            return self
        return replace(self, next_align_idx=None)


@dataclass(frozen=True)
class ExportState(PartyTask[PartyState]):
    """Model, optimizers (unless `include_optimizers=False`) and RNG stream, serialized."""

    include_optimizers: bool = True
    phase: ClassVar[str] = "saving state"
    step: ClassVar[str] = "export_state"
    is_state_transfer: ClassVar[bool] = True

    def arguments(self) -> tuple[Any, ...]:
        return (self.include_optimizers,)


@dataclass(frozen=True)
class ExportModel(PartyTask[PartyState]):
    """The weights of the model each party reported last, serialized (`Participant.export_model`)."""

    phase: ClassVar[str] = "saving models"
    step: ClassVar[str] = "export_model"
    is_state_transfer: ClassVar[bool] = True


@dataclass(frozen=True)
class ImportState(PartyTask[None]):
    """Restore each party's serialized state (a checkpoint, the transfer cache, a restart)."""

    states: dict[int, PartyState]
    phase: ClassVar[str] = "restoring state"
    step: ClassVar[str] = "import_state"
    restores_state: ClassVar[bool] = True
    is_state_transfer: ClassVar[bool] = True

    def arguments(self) -> tuple[Any, ...]:
        return (self.states,)

    def for_parties(self, parties: Sequence[int]) -> ImportState:
        return replace(self, states={p: self.states[p] for p in parties if p in self.states})
