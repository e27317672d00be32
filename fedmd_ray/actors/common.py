"""What the runner, the driver, the pools and the party hosts pass each other, free of torch.

The driver actor only routes these (indices, scores, serialized states); keeping
torch out of its imports (tested) spares ~1.2 s of CPU on the cores the party hosts
are starting on, and memory: on `offline`, startup went from 3.8-4.4 s to 3.2-3.3 s
and the driver actor's peak RSS from 607 to 131 MiB.
"""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from fedmd_ray.config import FedMDConfig
    from fedmd_ray.model_names import ModelPlugin
    from fedmd_ray.strategy import Strategy

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
