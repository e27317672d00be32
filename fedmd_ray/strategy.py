"""Federated-distillation methods as plug-ins: the `Strategy` API and the paper's FedMD.

A strategy says, for one round of FedMD's shape (arXiv 1910.03581, Algorithm 1):

- `share(logits)`: what a party sends for the alignment subset (runs on every party):
  its logits as they are (FedMD), or probabilities at a temperature (DS-FL, FedDF);
- `aggregate(scores, info)`: how the shared scores `(parties, n_align, classes)` become
  the targets (runs on the driver, numpy): one consensus `(n_align, classes)` for every
  party, or one target per party `(parties, n_align, classes)` in `info.parties` order
  (personalised methods such as KT-pFL);
- `digest_loss(student_logits, target)`: the loss a party minimises toward its target
  (runs on every party, torch);
- `state_dict()` / `load_state_dict()`: what persists across rounds (e.g. a learned
  coefficient matrix), numpy arrays only; saved in every checkpoint, restored on resume.

Why one abstraction and not two small protocols (aggregation, loss): what a party shares,
how it is combined and what the loss compares must agree (probabilities shared at T
need a loss on probabilities at T), and the parameters are shared (T): one object keeps
them together. The paper's rule is `FedMD`, a subclass like any user's; it is
registered under "fedmd" through the same registry as user strategies.

Which process runs what: `aggregate` and the state live on the driver; `share` and
`digest_loss` run on the parties, on copies of the strategy made when the run starts
(they must not depend on state that `aggregate` updates). The driver process need not
import torch: keep torch imports inside `share`/`digest_loss` when you can.
"""

from __future__ import annotations

import copy
import inspect
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt

from fedmd_ray.aggregation import (
    AGGREGATOR_NAMES,
    AGGREGATORS,
    AggregatorName,
    Consensus,
    Scores,
    trim_count,
    trimmed_mean_consensus,
)
from fedmd_ray.config.fields import TEMPERATURE, Bounds, setting
from fedmd_ray.errors import ConfigError
from fedmd_ray.plugins import Registry, describe, is_import_path, load_object, object_identity, plugin_code

if TYPE_CHECKING:
    import torch

    from fedmd_ray.config import FedMDConfig

Targets = npt.NDArray[np.float32]  # (n_align, classes) shared, or (parties, n_align, classes) personalised
StrategyState = dict[str, npt.NDArray[Any]]


@dataclass(frozen=True)
class RoundInfo:
    """What `Strategy.aggregate` knows about the round besides the scores."""

    round: int  # 1..R
    parties: tuple[int, ...]  # ids of the parties whose scores are stacked, in that order
    n_parties: int  # parties of the run (ids 0..n_parties-1), including absent or dropped ones
    # with `Strategy.uses_label_counts`: how many private images of each class each of `parties` holds,
    # (len(parties), classes) in that order; what each party shares once, before round 1
    label_counts: npt.NDArray[np.int64] | None = None


class Strategy:
    """Base class of federated-distillation methods (see the module docstring).

    Subclasses override `aggregate` and `digest_loss`, and `share`, `state_dict`,
    `load_state_dict` when they need to. Constructor parameters named like config
    fields (e.g. `temperature`) are filled from the config by `from_config`.
    """

    # False: a round shares nothing and digests nothing, parties only revisit their private data
    # (the no-collaboration control, `methods.Local`); `share`, `aggregate` and `digest_loss` are
    # never called. A run with `digest_epochs=0` rounds the same way.
    collaborates: ClassVar[bool] = True
    # True: `aggregate` gets `RoundInfo.label_counts`, each party's private label counts, which each party
    # shares once, before round 1 (their bytes count in round 1's `bytes_sent`)
    uses_label_counts: ClassVar[bool] = False

    def share(self, logits: torch.Tensor) -> torch.Tensor:
        """What a party sends for its alignment subset: `(n_align, classes)`; default its logits."""
        return logits

    def aggregate(self, scores: Scores, info: RoundInfo) -> Targets:
        """`(parties, n_align, classes)` float32 -> `(n_align, classes)` or `(parties, n_align, classes)`."""
        raise NotImplementedError(f"{type(self).__name__}.aggregate")

    def digest_loss(self, student_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss of a batch: the student's logits `(batch, classes)` against its target rows."""
        raise NotImplementedError(f"{type(self).__name__}.digest_loss")

    def state_dict(self) -> StrategyState:
        """State kept across rounds, as named numpy arrays (saved in checkpoints); default none."""
        return {}

    def load_state_dict(self, state: StrategyState) -> None:
        """Restore what `state_dict` returned."""
        if state:
            raise ConfigError(
                f"{type(self).__name__} was given state {sorted(state)} but does not override load_state_dict: a "
                "strategy whose state_dict returns state must restore it there (a resume does)"
            )

    @classmethod
    def from_config(cls, config: FedMDConfig) -> Strategy:
        """An instance whose constructor parameters named like config fields take the config's values."""
        fields = config.to_dict()
        parameters = inspect.signature(cls).parameters
        return cls(**{name: fields[name] for name in parameters if name in fields})


DigestLoss = Literal["l1", "mse", "kl"]  # `FedMD`'s distances to the consensus (`training.consensus_distance`)


@dataclass(frozen=True)
class FedMDFields:
    """The config fields of the paper's method and its variants (`FedMD`, `cronus`): declared here, with
    the strategy that takes them, and part of every `FedMDConfig` (`--set`, `--grid` reach them)."""

    aggregator: AggregatorName = setting("mean", role="result", group="strategy")
    """`fedmd`'s consensus: mean (paper), standardized_mean, median, trimmed_mean (`trim_fraction`)."""
    digest_loss: DigestLoss = setting("l1", role="result", group="strategy")
    """`fedmd`'s loss toward the consensus: l1 on logits (paper), mse on logits, kl at `temperature`."""
    temperature: float = setting(1.0, role="result", bounds=TEMPERATURE, group="strategy")
    """Softmax temperature T of `fedmd`'s kl loss, `fedmd-kl` and `kt-pfl` (parties share softmax(z / T))."""
    trim_fraction: float = setting(0.2, role="result", bounds=Bounds(0, 0.5, high_open=True), group="strategy")
    """Share of highest and of lowest scores dropped per sample and class (cronus, trimmed_mean).
    (docs/config.md#trim_fraction)"""


class FedMD(Strategy):
    """The paper's method (Li & Wang, arXiv 1910.03581): parties share logits, the consensus is
    their mean, each party digests it with an L1 loss on logits.

    `aggregator` and `digest_loss` offer variants: `standardized_mean` (per-party standardised
    logits: every party one vote whatever its logit scale), `median`, or `trimmed_mean`
    (dropping the `trim_fraction` highest and lowest, Cronus-style); `mse` on logits, or
    `kl` between the student's and the consensus' softmax at `temperature` (scaled by T^2).
    """

    def __init__(
        self, aggregator: str = "mean", digest_loss: str = "l1", temperature: float = 1.0, trim_fraction: float = 0.2
    ) -> None:
        if aggregator not in AGGREGATOR_NAMES:  # a FedMD built in Python: the config checks its own fields
            raise ConfigError(f"aggregator={aggregator!r} is not allowed: must be one of {list(AGGREGATOR_NAMES)}")
        if digest_loss not in typing.get_args(DigestLoss):
            raise ConfigError(
                f"digest_loss={digest_loss!r} is not allowed: must be one of {typing.get_args(DigestLoss)}"
            )
        self.aggregator = aggregator
        self.loss = digest_loss
        self.temperature = temperature
        self.trim_fraction = trim_fraction

    def aggregate(self, scores: Scores, info: RoundInfo) -> Consensus:
        if self.aggregator == "trimmed_mean":
            return trimmed_mean_consensus(scores, self.trim_fraction)
        return AGGREGATORS[self.aggregator](scores)

    def digest_loss(self, student_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from fedmd_ray.training import consensus_distance

        return consensus_distance(self.loss, student_logits, target, self.temperature)


STRATEGIES: Registry[Any] = Registry("strategy")
STRATEGIES.register("fedmd", FedMD, builtin=True)


def register_strategy(name: str, strategy: type[Strategy] | Strategy) -> None:
    """Make `strategy` (a `Strategy` subclass, built with `from_config`, or an instance) available
    as `strategy=name` in this process (and in the trials of sweeps started from it)."""
    STRATEGIES.register(name, strategy)


def check_strategy_entry(entry: Any) -> None:
    """Static check (no import): a known name, an import path, or a Strategy object."""
    if isinstance(entry, str):
        if STRATEGIES.get(entry) is None and not is_import_path(entry):
            raise ConfigError(
                f"strategy {entry!r} is not known{STRATEGIES.close_match(entry)}; use one of: "
                f"{', '.join(STRATEGIES.names())}, an import path 'package.module:MyStrategy', or (Python) an instance"
            )
    elif not (isinstance(entry, Strategy) or (inspect.isclass(entry) and issubclass(entry, Strategy))):
        raise ConfigError(
            f"strategy={entry!r} is not allowed: must be a name, an import path, a Strategy subclass or instance"
        )


def strategy_identity(entry: Any) -> str:
    """The entry's identity in fingerprints (`fedmd_ray.plugins.object_identity`); a built-in's name.
    Parameters that come from config fields are fingerprinted as those fields."""
    target = _target(entry)
    if not isinstance(entry, str):
        return object_identity(entry)
    if STRATEGIES.get(entry) is not None:
        return entry if STRATEGIES.is_builtin(entry) else f"{entry}={object_identity(target)}"
    return f"{entry}@{object_identity(target).partition('@')[2]}"  # the import path stands for the name


def _target(entry: Any) -> Any:
    """What a strategy entry names: a registered or imported object, or the entry itself."""
    check_strategy_entry(entry)
    if not isinstance(entry, str):
        return entry
    registered = STRATEGIES.get(entry)
    return registered if registered is not None else load_object(entry, f"strategy {entry!r}", _check_imported)


def _check_imported(obj: Any) -> None:
    """An import path names a Strategy subclass or instance (`from_config` builds the class): checked
    before anything of it runs."""
    if not (isinstance(obj, Strategy) or (inspect.isclass(obj) and issubclass(obj, Strategy))):
        raise ConfigError(f"strategy {describe(obj)!r} is not a Strategy subclass or instance (see docs/extending.md)")


def fields_taken(entry: Any, config: FedMDConfig) -> frozenset[str]:
    """The config fields a strategy entry is built from (`from_config`); none for an instance."""
    target = _target(entry)
    if not (inspect.isclass(target) and issubclass(target, Strategy)):
        return frozenset()
    return frozenset(inspect.signature(target).parameters) & frozenset(config.to_dict())


def strategy_notes(config: FedMDConfig, strategy: Strategy) -> list[str]:
    """Warnings a run gives before it starts: a field set for another strategy (it changes the run
    id, not the run), and a trimmed mean that trims no party at this number of parties."""
    from fedmd_ray.config import FedMDConfig

    taken, defaults, values = fields_taken(config.strategy, config), FedMDConfig().to_dict(), config.to_dict()
    notes = []
    for field, takers in strategy_fields(config).items():
        if field not in taken and values[field] != defaults[field]:
            notes.append(
                f"{field}={values[field]!r} has no effect: strategy {describe(config.strategy)} does not take "
                f"it ({who_takes(takers)})"
            )
    n = config.n_parties
    if (
        isinstance(strategy, FedMD)
        and strategy.aggregator == "trimmed_mean"
        and trim_count(strategy.trim_fraction, n) == 0
    ):
        hint = f"; trim_fraction >= {1 / n:.3g} trims one at each end" if n >= 3 else ""
        notes.append(
            f"trim_fraction={strategy.trim_fraction:g} of {n} parties trims none (it rounds down): the "
            f"consensus is their plain mean{hint}"
        )
    return notes


def who_takes(strategies: list[str]) -> str:
    """`kt-pfl does`, `fedmd, fedmd-kl do`."""
    return f"{', '.join(strategies)} {'does' if len(strategies) == 1 else 'do'}"


def strategy_fields(config: FedMDConfig) -> dict[str, list[str]]:
    """The strategies' own config fields (those a built-in strategy is built from: a user's strategy
    may also take `seed` or `rounds`, which every run uses) -> the registered strategies that take them."""
    taken = {name: fields_taken(name, config) for name in STRATEGIES.names()}
    own = set().union(*(fields for name, fields in taken.items() if STRATEGIES.is_builtin(name)))
    return {field: [name for name, fields in taken.items() if field in fields] for field in sorted(own)}


def resolve_strategy(entry: Any, config: FedMDConfig) -> Strategy:
    """The run's own Strategy instance for a config entry (an instance entry is copied, so a run
    never changes the caller's object and two runs never share state)."""
    what = f"strategy {describe(entry)!r}"
    target = _target(entry)
    if isinstance(target, Strategy):
        return copied(target)
    if inspect.isclass(target) and issubclass(target, Strategy):
        try:
            with plugin_code():
                return target.from_config(config)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(f"{what}: building it from the config raised {type(exc).__name__}: {exc}") from exc
    raise ConfigError(f"{what} is {type(target).__name__}, not a Strategy subclass or instance")


def copied(strategy: Strategy) -> Strategy:
    """A deep copy of a strategy instance, or ConfigError naming it (a run copies the instance, so
    it never changes the caller's object; an attribute such as a lock or an open file cannot be copied)."""
    try:
        with plugin_code():
            return copy.deepcopy(strategy)
    except Exception as exc:
        raise ConfigError(
            f"strategy {describe(strategy)!r} cannot be copied ({type(exc).__name__}: {exc}): a run works on its own "
            "copy of the instance; keep objects such as locks, open files or clients out of its attributes"
        ) from exc


def check_targets(targets: Any, n_parties: int, shape: tuple[int, int], strategy: Strategy) -> Targets:
    """The output of `aggregate` as float32, or ConfigError saying what shape was expected."""
    array = np.asarray(targets)
    shared, personal = shape, (n_parties, *shape)
    if array.shape not in (shared, personal) or array.dtype.kind != "f":
        raise ConfigError(
            f"strategy {type(strategy).__name__}.aggregate returned {array.dtype} {array.shape}; expected float "
            f"{shared} (one consensus) or {personal} (one target per party)"
        )
    if not np.isfinite(array).all():
        raise ConfigError(
            f"strategy {describe(strategy)}.aggregate returned non-finite values (nan or inf) from "
            "finite scores: check its parameters"
        )
    with np.errstate(over="ignore"):
        single = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(single).all():  # parties train in float32: a float64 target beyond it is inf there
        raise ConfigError(
            f"strategy {describe(strategy)}.aggregate returned values beyond float32's range (largest "
            f"{np.abs(array).max():.3g}); parties train on float32 targets: check its parameters"
        )
    return single


def check_state(state: Any, strategy: Strategy) -> StrategyState:
    """`state_dict()`'s output, or ConfigError: a dict of str -> numeric numpy arrays (what checkpoints
    and `strategy_state.parquet` can hold)."""
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, np.ndarray) and v.dtype.kind in "biuf" for k, v in state.items()
    ):
        raise ConfigError(
            f"strategy {type(strategy).__name__}.state_dict must return a dict of str -> numeric numpy "
            "arrays (bool, int or float: they are saved in checkpoints and in strategy_state.parquet)"
        )
    return state


def probe_strategy(strategy: Strategy, n_parties: int, n_classes: int) -> None:
    """One small round of the strategy on random scores, before Ray starts: a strategy that raises
    or returns the wrong shapes fails here with its name, not in round 1 (run on a copy: the
    probe must not change its state)."""
    import torch

    if not strategy.collaborates:
        return  # nothing of it runs
    trial = copied(strategy)
    name = describe(strategy)  # with its parameters: a temperature that overflows shows in the message
    generator = torch.Generator().manual_seed(0)
    try:
        with (
            plugin_code(),
            np.errstate(all="ignore"),
        ):  # what overflows is reported below, by name, not as numpy's warning
            scores = np.stack(
                [_probe_share(trial, torch.randn(4, n_classes, generator=generator), name) for _ in range(n_parties)]
            )  # parties disagree, as they do in a round
            counts = np.ones((n_parties, n_classes), np.int64) if trial.uses_label_counts else None
            targets = check_targets(
                trial.aggregate(scores, RoundInfo(1, tuple(range(n_parties)), n_parties, counts)),
                n_parties,
                (4, n_classes),
                trial,
            )
        student = torch.randn(4, n_classes, generator=generator, requires_grad=True)
        target = torch.from_numpy(targets if targets.ndim == 2 else targets[0])
        with plugin_code():
            loss = trial.digest_loss(student, target)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or not loss.requires_grad:
            raise ConfigError(f"strategy {name}.digest_loss must return a scalar tensor that depends on the logits")
        loss.backward()  # type: ignore[no-untyped-call]
        if not (torch.isfinite(loss).all() and student.grad is not None and torch.isfinite(student.grad).all()):
            raise ConfigError(
                f"strategy {name}.digest_loss gave a non-finite loss or gradient ({loss.item()}) on "
                "random logits and its own targets: check its parameters"
            )
        with plugin_code():
            check_state(strategy.state_dict(), strategy)  # as the run starts, and after a round
            state = check_state(trial.state_dict(), trial)
            copied(strategy).load_state_dict(state)  # what a resume does with it
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"strategy {name} failed a trial round on random scores: {type(exc).__name__}: {exc}"
        ) from exc


def _probe_share(strategy: Strategy, logits: torch.Tensor, name: str) -> npt.NDArray[np.float32]:
    """One party's `share` in the probe, checked for shape and finite values."""
    import torch

    shared = strategy.share(logits)
    if not isinstance(shared, torch.Tensor) or shared.shape != logits.shape:
        got = tuple(shared.shape) if isinstance(shared, torch.Tensor) else type(shared).__name__
        raise ConfigError(
            f"strategy {name}.share returned {got} for logits {tuple(logits.shape)}; expected the same shape"
        )
    if not torch.isfinite(shared).all():
        raise ConfigError(f"strategy {name}.share returned non-finite values for random logits: check its parameters")
    return shared.detach().numpy().astype(np.float32)


import fedmd_ray.methods  # noqa: E402,F401  the family registers itself (`methods`), as a user's strategies would
