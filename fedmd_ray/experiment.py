"""A config made concrete: data loaded, plug-ins resolved and tried, before Ray starts.

`prepare(config)` is the one place where a run (or a sweep trial, or `fedmd_ray.check`)
turns a config into what runs: the task's arrays, each party's `ModelPlugin`, the
run's own `Strategy`, and the fingerprint. Everything that can be wrong with a plug-in
shows here, as a ConfigError/DataError naming the entry, before any file is written
or any Ray process starts: a model entry that does not import, a factory that raises,
returns no `nn.Module` or the wrong output shape (one probe forward pass), a data
source that fails its checks, a strategy that fails a trial round on random scores.
"""

from __future__ import annotations

from dataclasses import dataclass

from fedmd_ray.actors.messages import HostSetup, PartySpec, SharedData
from fedmd_ray.config import FedMDConfig
from fedmd_ray.data.task import FedMDTask, build_task
from fedmd_ray.faults import Faults
from fedmd_ray.model_registry import ModelEntry, ModelPlugin, resolve_model
from fedmd_ray.strategy import Strategy, probe_strategy, resolve_strategy, strategy_notes


@dataclass(frozen=True)
class Experiment:
    """What a run needs, checked: the config, the data, each party's model, the strategy, the run id."""

    config: FedMDConfig
    task: FedMDTask
    models: tuple[ModelPlugin, ...]  # one per party
    strategy: Strategy
    run_id: str
    notes: tuple[str, ...] = ()  # warnings about the config that do not stop it (`strategy_notes`)
    batched: frozenset[str] = frozenset()  # models whose parties run as one computation (`batched_models`)
    faults: Faults | None = None  # injected failures (tests), read from the environment once, here

    @property
    def setup(self) -> HostSetup:
        return HostSetup(self.config, self.strategy, self.task.n_classes, self.batched, self.faults)

    def party_inputs(self) -> tuple[list[PartySpec], SharedData]:
        """What the pools need: each party's model and data indices, and the shared arrays."""
        task = self.task
        specs = [PartySpec(p, m, idx) for p, (m, idx) in enumerate(zip(self.models, task.party_indices))]
        data = SharedData(
            task.public_x,
            task.public_y,
            task.public_val_x,
            task.public_val_y,
            task.private_x,
            task.private_y,
            task.test_x,
            task.test_y,
            task.union_indices,
        )
        return specs, data


def prepare(config: FedMDConfig) -> Experiment:
    """Load and check the data, resolve and try every plug-in; raises ConfigError/DataError."""
    from fedmd_ray.models import check_model

    task = build_task(config)
    models = resolve_models(config.party_models)
    for model in dict.fromkeys(models):  # each distinct model once
        check_model(model, task.image_shape, task.n_classes, head=config.head_epochs > 0)
    strategy = resolve_strategy(config.strategy, config)
    probe_strategy(strategy, config.n_parties, task.n_classes)
    batched, reasons = batched_models(config, models, strategy, task.image_shape, task.n_classes)
    notes = (*strategy_notes(config, strategy), *reasons)
    return Experiment(config, task, models, strategy, config.fingerprint(), notes, batched, Faults.from_environment())


def batched_models(
    config: FedMDConfig, models: tuple[ModelPlugin, ...], strategy: Strategy, shape: tuple[int, int, int], classes: int
) -> tuple[frozenset[str], list[str]]:
    """With `batch_parties`, the models that several parties use and that batch exactly
    (`fedmd_ray.batched`): their identities, and one line for each such model that cannot, saying why.
    A config-level decision: which parties share a host never changes how a party computes."""
    from collections import Counter

    from fedmd_ray.batched import check_loss

    if not config.batch_parties:
        return frozenset(), []
    shared = [m for m, count in Counter(models).items() if count > 1]
    loss_problem = check_loss(strategy.digest_loss, classes) if shared and strategy.collaborates else None
    batched, reasons = set(), []
    for model in shared:
        problem = loss_problem or _unsupported(model, shape, classes)
        if problem is None:
            batched.add(model.identity)
        else:
            reasons.append(
                f"model {model.name}: its {Counter(models)[model]} parties run one at a time (batch_parties): {problem}"
            )
    return frozenset(batched), reasons


def resolve_models(entries: tuple[ModelEntry, ...]) -> tuple[ModelPlugin, ...]:
    """Each party's `ModelPlugin` (each distinct entry resolved, i.e. imported, once)."""
    resolved: dict[int, ModelPlugin] = {}
    for entry in entries:
        if id(entry) not in resolved:
            resolved[id(entry)] = resolve_model(entry)
    return tuple(resolved[id(entry)] for entry in entries)


def _unsupported(model: ModelPlugin, shape: tuple[int, int, int], classes: int) -> str | None:
    """`batched.unsupported` of the model, built on the meta device (no memory, no random numbers drawn)."""
    import torch

    from fedmd_ray.batched import unsupported

    try:
        with torch.device("meta"):
            return unsupported(model.build(shape, classes))
    except Exception as exc:
        return f"it cannot be built on the meta device to be inspected ({type(exc).__name__})"


def check(config: FedMDConfig) -> None:
    """Everything a run checks before it starts Ray or writes a file, without running it: the
    config, the data, every model (one forward pass each) and the strategy (a trial round)."""
    if not isinstance(config, FedMDConfig):
        raise TypeError(f"check() takes a FedMDConfig, got {type(config).__name__}")
    prepare(config)
