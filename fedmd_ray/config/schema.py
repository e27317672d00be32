"""The schema of a FedMD run: `FedMDConfig`, one typed field per knob, checked when built.

Every knob of the algorithm is a field; users set them in Python (`preset("offline", rounds=5)`)
or on the command line (`--set rounds=5`). Validation is static (no data is loaded, no plug-in is
imported, Ray is never started), so a typo costs milliseconds, not a cluster start-up. Checks
that need the data or the plug-ins (class ids against the source, a model's output shape, a
strategy's trial round) run in `fedmd_ray.experiment.prepare`, still before Ray starts and before
anything is written. How a field declares its role and range: `config.fields`; the strategies'
own fields are declared beside them (`strategy.FedMDFields`, `methods.FamilyFields`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass
from typing import Any, Literal, Union

from fedmd_ray.config.fields import (
    COUNT,
    IMAGES,
    LEARNING_RATE,
    MAX_PARTIES,
    MAX_SEED,
    MAX_SHARE,
    MIN_SHARE,
    POSITIVE_COUNT,
    PROBABILITY,
    TIMEOUT,
    Bounds,
    Role,
    setting,
)
from fedmd_ray.config.parsing import (
    _check_class_list,
    _coerce,
    _coerce_plugin,
    _field_types,
    _is_optional,
    _json_entry,
    _jsonable,
    _or_words,
    _require,
    _unknown_key_message,
    _without_words,
)
from fedmd_ray.errors import ConfigError
from fedmd_ray.methods import FamilyFields
from fedmd_ray.model_registry import SMALL_MODELS, ModelEntry
from fedmd_ray.strategy import FedMDFields, Strategy

Backend = Literal["ray", "local"]
Partition = Literal["iid", "noniid", "writer", "superclass"]
RevisitClasses = Literal["all", "own"]
FailurePolicy = Literal["restart", "drop", "fail"]
SourceEntry = Union[str, typing.Callable[..., Any]]
StrategyEntry = Union[str, Strategy, type]


@dataclass(frozen=True)
class FedMDConfig(FamilyFields, FedMDFields):
    """Everything that determines a FedMD run (arXiv 1910.03581).

    Label space: public classes first (0..C0-1), private classes appended after
    them, so models have `C0 + C1` outputs (paper: 10 digits + 6 letters = 16).
    Images of the private source are resized to the public source's shape when
    they differ.
    """

    # --- data ---------------------------------------------------------------
    public_data: SourceEntry = setting("mnist", plugin="source", group="data")
    """Source of the public set D0: a registered name, an import path, an .npz file, an image folder or a loader.
    (docs/config.md#public_data)"""
    public_classes: tuple[int, ...] | None = setting((0, 1, 2, 3, 4), group="data")
    """Class ids of `public_data` that form D0; None = all classes."""
    private_data: SourceEntry = setting("mnist", plugin="source", group="data")
    """Source of the private task (party data and test set), in any form `public_data` takes."""
    private_classes: tuple[int, ...] = setting((5, 6, 7, 8, 9), group="data")
    """Class ids of `private_data` that form the private task."""
    public_size: int | None = setting(None, bounds=IMAGES, group="data")
    """Use at most this many public training images (stratified); None = all."""
    eval_size: int | None = setting(None, bounds=IMAGES, group="data")
    """Evaluate on at most this many (stratified) images of each held-out set; None = all. (docs/config.md#eval_size)"""
    data_root: str | None = setting(None, group="data")
    """Directory with the built-in sources' files; None = $FEDMD_RAY_DATA_ROOT or ~/.cache/fedmd_ray/data."""

    # --- parties ------------------------------------------------------------
    n_parties: int = setting(10, bounds=Bounds(1, MAX_PARTIES), group="data")
    """Number of participants."""
    models: tuple[ModelEntry, ...] = setting((), plugin="model", group="data")
    """Model per party, cycled: a spec (cnn2-8-16), a registered name, an import path or a factory; () = the 10
    small CPU models. (docs/config.md#models)"""
    samples_per_class: int = setting(3, bounds=POSITIVE_COUNT, group="data")
    """Private training samples per class per party (paper, iid: 3)."""
    partition: Partition = setting("iid", group="data")
    """How private data is split: iid, noniid (Dirichlet noniid_alpha), writer, or superclass.
    (docs/config.md#partition)"""
    noniid_alpha: float = setting(0.5, bounds=Bounds(0, 1e6, low_open=True), group="data")
    """Concentration of the Dirichlet class mix for `partition=noniid` (smaller = more skewed)."""

    # --- transfer learning (round 0) ------------------------------------------
    pretrain_epochs: int = setting(20, bounds=COUNT)
    """Maximum epochs on the public set (early stopping ends it sooner)."""
    pretrain_patience: int = setting(3, bounds=COUNT)
    """Epochs without `pretrain_min_delta` gain in held-out accuracy before stopping."""
    pretrain_min_delta: float = setting(0.001, bounds=Bounds(0, 1))
    """Smallest held-out accuracy gain that counts as progress."""
    pretrain_batch_size: int = setting(128, bounds=POSITIVE_COUNT)
    """Batch size on the public set."""
    private_epochs: int = setting(20, bounds=COUNT)
    """Epochs on the party's private data after public pretraining."""
    private_batch_size: int = setting(5, bounds=POSITIVE_COUNT)
    """Batch size for private training (transfer step and upper bound)."""
    head_epochs: int = setting(0, bounds=COUNT)
    """Epochs of the output layer alone before the private training (linear probing first; 0 = the paper).
    (docs/config.md#head_epochs)"""
    refit_head_epochs: int = setting(10, bounds=COUNT)
    """A private fit that misses its own images is redone with this many head-only epochs first (0 = never).
    (docs/config.md#refit_head_epochs)"""
    lr: float = setting(1e-3, bounds=LEARNING_RATE)
    """Adam learning rate for transfer learning and the upper bound."""
    precise_bn: bool = setting(False)
    """Re-estimate batch-norm statistics on each phase's training data after it (off: the paper).
    (docs/config.md#precise_bn)"""

    # --- collaboration (rounds 1..R) --------------------------------------------
    rounds: int = setting(20, role="result", bounds=COUNT)
    """Collaboration rounds R (0 = transfer learning only; reference: 20)."""
    subset_size: int = setting(5000, role="result", bounds=IMAGES)
    """Alignment subset size, redrawn from the public set every round (stratified)."""
    strategy: StrategyEntry = setting("fedmd", role="result", plugin="strategy", group="strategy")
    """The distillation method: fedmd (the paper), a registered name, an import path or a Strategy.
    (docs/config.md#strategy)"""
    digest_epochs: int = setting(1, role="result", bounds=COUNT)
    """Epochs on the alignment subset per round (0: no collaboration, like `strategy=local`)."""
    digest_batch_size: int = setting(256, role="result", bounds=POSITIVE_COUNT)
    """Batch size of the digest step (paper: 256)."""
    revisit_epochs: int = setting(2, role="result", bounds=COUNT)
    """Epochs on the private data per round."""
    revisit_batch_size: int = setting(5, role="result", bounds=POSITIVE_COUNT)
    """Batch size of the revisit step."""
    revisit_shift: int | Literal["auto"] = setting(0, role="result", bounds=COUNT)
    """Revisit private images shifted by up to this many pixels (0 = off: the paper; `auto`: 2 pixels per 28 of
    the images' side, at least 1). (docs/config.md#revisit_shift)"""
    revisit_classes: RevisitClasses = setting("all", role="result")
    """The revisit's cross-entropy over all classes (the paper) or `own`: the logits of the private classes the
    party holds no image of zeroed (FedRS's restricted softmax), for skewed splits. (docs/config.md#revisit_classes)"""
    collab_lr: float | None = setting(None, role="result", bounds=LEARNING_RATE)
    """Adam learning rate for digest and revisit; None = `lr`."""
    swa: bool = setting(False, role="result")
    """Report each party's weights averaged over the last half of the rounds (SWA; off: the paper).
    (docs/config.md#swa)"""
    wise_ft: float = setting(1.0, role="result", bounds=Bounds(0, 1))
    """Report (1 - a) x round-0 weights + a x current weights (WiSE-FT; 1 = off: the paper). (docs/config.md#wise_ft)"""

    # --- references ---------------------------------------------------------
    upper_bound: bool = setting(True)
    """Also train each model on the union of all parties' private data."""
    upper_bound_epochs: int = setting(20, bounds=COUNT)
    """Epochs of the upper-bound training (batch `private_batch_size`)."""
    eval_batch_size: int | None = setting(None, bounds=POSITIVE_COUNT, group="execution")
    """Batch size of scoring and testing; None = per model (a cache-sized batch on a CPU, 1024 on a GPU).
    (docs/config.md#eval_batch_size)"""
    batch_parties: bool = setting(True, absent=False, group="execution")
    """Train, score and evaluate a model's parties on one host as one batched computation where it pays.
    (docs/config.md#batch_parties)"""

    # --- execution ----------------------------------------------------------
    seed: int = setting(0, bounds=Bounds(0, MAX_SEED), group="execution")
    """Seeds everything: partitions, model init, shuffling, alignment subsets."""
    backend: Backend = setting("ray", role="execution")
    """`ray`: parties are Ray actors; `local`: the same classes in this process, one after another."""
    cpus_per_party: float | None = setting(None, role="execution", bounds=Bounds(MIN_SHARE, MAX_SHARE))
    """CPUs reserved per party (fractions allowed); None = share the cluster's CPUs evenly."""
    gpus_per_party: float = setting(0.0, bounds=Bounds(MIN_SHARE, MAX_SHARE, zero=True), group="execution")
    """GPUs per party (0.1 = ten parties share a GPU); needs a GPU in the cluster. (docs/config.md#gpus_per_party)"""
    parties_per_actor: int | None = setting(None, role="execution", bounds=Bounds(1, MAX_PARTIES))
    """Parties hosted by one actor; None = one actor per whole CPU, parties balanced by work.
    (docs/config.md#parties_per_actor)"""
    driver_cpus: float = setting(0.05, role="execution", bounds=Bounds(MIN_SHARE, MAX_SHARE, zero=True))
    """CPUs reserved for the driver actor (it mostly waits)."""
    torch_threads: int | None = setting(None, bounds=Bounds(1, 4096), group="execution")
    """Torch threads per actor; None = its CPU share rounded down (min 1), all cores for local.
    (docs/config.md#torch_threads)"""
    address: str | None = setting(None, role="execution")
    """Ray cluster to attach to (also $RAY_ADDRESS; auto = the local `ray start` one); None = start one.
    (docs/config.md#address)"""
    connect_timeout_s: float = setting(30.0, role="execution", bounds=TIMEOUT)
    """Seconds to wait for the cluster at `address` to accept the connection before failing."""
    actor_start_timeout_s: float = setting(120.0, role="execution", bounds=TIMEOUT)
    """Seconds to wait for actors to be scheduled before failing (Ray would wait forever)."""
    save_models: Literal["end", "every_round", "never"] | None = setting(None, role="execution")
    """Keep each party's model in out_dir/models/: at the end, after every round, or never; None = end for a run,
    never for a sweep's trials (docs/config.md#save_models)."""
    out_dir: str | None = setting(None, role="execution")
    """Where `run` writes results.parquet, config.json and checkpoint.pt; None = nowhere."""

    # --- failures -------------------------------------------------------------
    on_party_failure: FailurePolicy = setting("restart", role="execution")
    """When a party fails: restart it from its last state, drop it, or fail the run (resumable).
    (docs/config.md#on_party_failure)"""
    max_party_restarts: int = setting(2, role="execution", bounds=Bounds(0, 1000))
    """Restarts allowed per party over the run before it is dropped."""
    round_timeout_s: float | None = setting(3600.0, role="execution", bounds=TIMEOUT)
    """Seconds a phase waits for a party before it counts as failed; None = forever. (docs/config.md#round_timeout_s)"""
    party_dropout: float = setting(0.0, role="result", bounds=PROBABILITY)
    """Probability that a party sits out a round (seeded): simulates absent parties and stragglers."""

    def __post_init__(self) -> None:
        types_ = _field_types(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            plugin = f.metadata.get("plugin")
            coerced = _coerce_plugin(f.name, value, plugin) if plugin else _coerce(f.name, value, types_[f.name])
            object.__setattr__(self, f.name, coerced)
        self._validate()

    # --- derived values -------------------------------------------------------
    @property
    def party_models(self) -> tuple[ModelEntry, ...]:
        """The model entry of each party, cycling `models`."""
        names = self.models or SMALL_MODELS
        return tuple(names[i % len(names)] for i in range(self.n_parties))

    @property
    def round_lr(self) -> float:
        """The Adam learning rate of the rounds' digest and revisit steps: `collab_lr`, else `lr`."""
        return self.lr if self.collab_lr is None else self.collab_lr

    def to_dict(self) -> dict[str, Any]:
        """Every field (tuples as lists); plug-in objects stay objects (see `to_json`)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_json(self) -> dict[str, Any]:
        """`to_dict` with plug-in objects as their import paths, or as a marker that `from_dict`
        refuses with an explanation when they have none (defined in a script or a function)."""
        return {k: _json_entry(v) for k, v in self.to_dict().items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FedMDConfig:
        if not isinstance(values, dict):
            raise ConfigError(f"a config must be a mapping of field names to values, got {type(values).__name__}")
        unknown = [k for k in values if k not in _field_types(cls)]
        if unknown:
            raise ConfigError(_unknown_key_message(unknown[0], cls))
        return cls(**values)

    def replace(self, **overrides: Any) -> FedMDConfig:
        """A copy with some fields changed; unknown names raise ConfigError."""
        return type(self).from_dict({**self.to_dict(), **overrides})

    # --- identity -------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        """What each field contributes to the fingerprints, by name (execution fields left out):
        plug-ins by their identity (`fedmd_ray.plugins`), which imports import paths and hashes
        data files; raises ConfigError when a plug-in cannot be resolved."""
        cached: dict[str, Any] | None = self.__dict__.get("_identity")
        if cached is None:
            cached = {f.name: self._identify(f.name) for f in dataclasses.fields(self) if role_of(f) != "execution"}
            object.__setattr__(self, "_identity", cached)
        return dict(cached)

    def fingerprint(self) -> str:
        """Stable hash of the fields that determine results (roles `transfer` and `result`)."""
        return _hash(self.identity())

    def transfer_fingerprint(self, threads: tuple[int, ...] = ()) -> str:
        """Hash of what determines the transfer-learned models (round 0 and the upper bound): the
        `transfer` fields, and the torch thread counts the hosts run with (`torch_threads=None`
        resolves per cluster; they change numerics). Sweep trials that differ only in `result`
        fields share one cached transfer phase."""
        transfer = {f.name for f in dataclasses.fields(self) if role_of(f) == "transfer"}
        payload = {k: v for k, v in self.identity().items() if k in transfer}
        payload["threads"] = sorted(set(threads))
        return _hash(payload)

    def _identify(self, name: str) -> Any:
        from fedmd_ray.data.resolve import resolve_source
        from fedmd_ray.data.sources import resolve_data_root
        from fedmd_ray.model_registry import resolve_model
        from fedmd_ray.strategy import strategy_identity

        value = getattr(self, name)
        if name == "models":
            return [resolve_model(m).identity for m in self.party_models]
        if name in ("public_data", "private_data"):
            return resolve_source(name, value).identity
        if name == "strategy":
            return strategy_identity(value)
        if name == "data_root":
            return str(resolve_data_root(value))
        if name == "gpus_per_party":
            return value > 0
        return _jsonable(value)

    # --- validation -----------------------------------------------------------
    def _validate(self) -> None:
        types_ = _field_types(type(self))
        for f in dataclasses.fields(self):
            bounds: Bounds | None = f.metadata.get("bounds")
            value = getattr(self, f.name)
            if bounds is not None and value is not None and not isinstance(value, str) and not bounds.allows(value):
                optional, inner = _is_optional(types_[f.name])
                alternatives = (" or None" if optional else "") + _or_words(inner)
                _require(False, f.name, value, bounds.describe(_without_words(inner) is int) + alternatives)
        for name in ("cpus_per_party", "gpus_per_party"):
            share = getattr(self, name)
            if share is not None and share > 1 and share != int(share):
                raise ConfigError(f"{name}={share} is not allowed: Ray accepts fractions below 1 or whole numbers")
        _check_class_list("public_classes", self.public_classes, allow_none=True)
        _check_class_list("private_classes", self.private_classes, allow_none=False)


def role_of(f: dataclasses.Field[Any]) -> Role:
    """A field's declared role (fields declared without `setting` count as `transfer`)."""
    role: Role = f.metadata.get("role", "transfer")
    return role


def _hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
