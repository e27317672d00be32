"""One typed config for a FedMD run, its validation, and the named presets.

Every knob of the algorithm is a field of :class:`FedMDConfig`; users set them
in Python (`preset("offline", rounds=5)`) or on the command line
(`--set rounds=5`). Validation is static (no data is loaded, no plug-in is imported,
Ray is never started), so a typo costs milliseconds, not a cluster start-up. Checks
that need the data or the plug-ins (class ids against the source, a model's output
shape, a strategy's trial round) run in `fedmd_ray.experiment.prepare`, still before
Ray starts and before anything is written.

Each field declares its role once, in its `setting(...)`:

- `transfer` (the default): changes the transfer-learned models, hence everything:
  part of the run's fingerprint and of the transfer-cache key;
- `result`: changes the rounds' results but not transfer learning: in the
  fingerprint, not in the cache key (sweeps over it share one transfer phase);
- `execution`: where and how the run executes, not what it computes: in neither,
  and it may change when a run is resumed.

and its allowed range (`Bounds`). The fingerprint, the cache key, the fields a resume
may change and the range checks are all derived from these declarations, so a new field
that changes results is in the fingerprint and the cache key unless it says otherwise.
A new field's default must keep the behaviour from before it existed: runs and sweeps saved
without it then resume with it at its default (`changed_fields`).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import numbers
import sys
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Union

from fedmd_ray.errors import ConfigError
from fedmd_ray.model_names import PAPER_MODELS, SMALL_MODELS, ModelEntry
from fedmd_ray.strategy import Strategy

Backend = Literal["ray", "local"]
Partition = Literal["iid", "noniid", "writer", "superclass"]
DigestLoss = Literal["l1", "mse", "kl"]
PartyWeights = Literal["equal", "information"]
FailurePolicy = Literal["restart", "drop", "fail"]
Role = Literal["transfer", "result", "execution"]
SourceEntry = Union[str, typing.Callable[..., Any]]
StrategyEntry = Union[str, Strategy, type]
PluginKind = Literal["model", "source", "strategy"]


@dataclass(frozen=True)
class Bounds:
    """The numbers a field allows: `low`/`high` (None: unbounded), open or closed; `zero`: 0 too, besides
    the range (a resource share: none at all, or at least what Ray can count).

    Every numeric field declares a `high` that what consumes it handles (a timeout that Ray's waits and
    the socket layer can convert, a seed that numpy and torch accept, a count that sizes arrays of sane
    memory, a temperature whose square and quotients stay finite), so that a value the check accepts
    never fails later, after files were written (tests/test_hostile_inputs.py checks each consumer)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    noun: str | None = None  # "a probability"; default by the field's type
    zero: bool = False

    def allows(self, value: float) -> bool:
        if self.zero and value == 0:
            return True
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self, integer: bool) -> str:
        noun = self.noun or ("an integer" if integer else "a number")
        zero = "0 or " if self.zero else ""
        if self.high is None:
            return f"{zero}{noun} {'>' if self.low_open else '>='} {_number(self.low, integer)}"
        return (f"{zero}{noun} in {'(' if self.low_open else '['}{_number(self.low, integer)}, "
                f"{_number(self.high, integer)}{')' if self.high_open else ']'}")


def _number(value: float | None, integer: bool) -> str:
    """A bound as a message shows it: whole numbers in full (4294967295, 100000), others as %g (1e+07)."""
    if value is None:
        return "-inf"
    if value == int(value) and (integer or abs(value) < 1e6):
        return str(int(value))
    return f"{value:g}"


PROBABILITY = Bounds(0, 1, high_open=True, noun="a probability")
# Upper bounds, each one what its consumers handle (and far beyond any sensible value):
MAX_PARTIES = 100_000  # a party is an object, a share of the data and a model: 1000 are measured on 2 cores
MAX_IMAGES = 10**9  # counts of images (subsets, sizes): a billion images would not fit in memory as floats
MAX_COUNT = 10**6  # epochs, rounds, patience, samples per class, batch sizes, shifts: Python loops and slices
MAX_TIMEOUT_S = 1e7  # 116 days; Ray's waits take milliseconds in int64, sockets and threads ~9.2e9 s
MAX_SEED = 2**32 - 1  # numpy's and most libraries' seed range; numpy's SeedSequence derives every stream
MAX_SHARE = 4096.0  # CPUs or GPUs of one party or actor (Ray counts them in 1/10000 units of int64)
MIN_SHARE = 0.0001  # Ray refuses fractions below 1/10000 of a CPU or GPU
COUNT = Bounds(0, MAX_COUNT)
POSITIVE_COUNT = Bounds(1, MAX_COUNT)
IMAGES = Bounds(1, MAX_IMAGES)
TIMEOUT = Bounds(0, MAX_TIMEOUT_S, low_open=True)
LEARNING_RATE = Bounds(0, 10, low_open=True)  # Adam's steps are ~lr per weight: 10 already diverges
TEMPERATURE = Bounds(1e-3, 1e3)  # z / T and T**2 stay finite in float32 for any logit a model gives


_NO_VALUE = object()


def setting(default: Any, *, role: Role = "transfer", bounds: Bounds | None = None,
            plugin: PluginKind | None = None, absent: Any = _NO_VALUE) -> Any:
    """A config field with its role (see the module docstring), range and plug-in kind. `absent`: the
    value that reproduces what runs did before the field existed, when that is not its default (a
    saved config without the field means it)."""
    metadata = {"role": role, "bounds": bounds, "plugin": plugin}
    if absent is not _NO_VALUE:
        metadata["absent"] = absent
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class FedMDConfig:
    """Everything that determines a FedMD run (arXiv 1910.03581).

    Label space: public classes first (0..C0-1), private classes appended after
    them, so models have `C0 + C1` outputs (paper: 10 digits + 6 letters = 16).
    Images of the private source are resized to the public source's shape when
    they differ.
    """

    # --- data ---------------------------------------------------------------
    public_data: SourceEntry = setting("mnist", plugin="source")
    """Source of the public set D0: a registered name (`fedmd-ray data list`), an import path
    'pkg.mod:loader', an .npz file, an image folder, or (Python) a loader (see docs/extending.md)."""
    public_classes: tuple[int, ...] | None = setting((0, 1, 2, 3, 4))
    """Class ids of `public_data` that form D0; None = all classes."""
    private_data: SourceEntry = setting("mnist", plugin="source")
    """Source of the private task (party data and test set), in any form `public_data` takes."""
    private_classes: tuple[int, ...] = setting((5, 6, 7, 8, 9))
    """Class ids of `private_data` that form the private task."""
    public_size: int | None = setting(None, bounds=IMAGES)
    """Use at most this many public training images (stratified); None = all."""
    eval_size: int | None = setting(None, bounds=IMAGES)
    """Evaluate on at most this many images (stratified) of each held-out set: the public
    one that early stopping watches and the private test set; None = all. Evaluations
    dominate small runs of large models (every party, every round)."""
    data_root: str | None = setting(None)
    """Directory with the built-in sources' files; None = $FEDMD_RAY_DATA_ROOT or ~/.cache/fedmd_ray/data."""

    # --- parties ------------------------------------------------------------
    n_parties: int = setting(10, bounds=Bounds(1, MAX_PARTIES))
    """Number of participants."""
    models: tuple[ModelEntry, ...] = setting((), plugin="model")
    """Model per party (cycled when shorter than n_parties): a built-in spec (cnn2-8-16), a registered
    name, an import path 'pkg.mod:factory', or (Python) a factory; () = the 10 small CPU models."""
    samples_per_class: int = setting(3, bounds=POSITIVE_COUNT)
    """Private training samples per class per party (paper, iid: 3)."""
    partition: Partition = setting("iid")
    """`iid`: disjoint class-balanced shares. `noniid`: each party's class mix ~ Dirichlet(noniid_alpha).
    `writer`: each party holds one writer's samples (needs writer ids: emnist-letters from its .mat file).
    `superclass`: `private_classes` are superclass ids and each party sees other subclasses (cifar100)."""
    noniid_alpha: float = setting(0.5, bounds=Bounds(0, 1e6, low_open=True))
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
    """Epochs that train the output layer alone (features frozen) before `private_epochs` train the whole
    model, in private training and the upper bound: linear probing, then fine-tuning (Kumar et al. 2022).
    Public pretraining only ever pushed the private classes' logits down; fitting them through the whole
    model at once can kill an MLP's ReLU units and leave it at chance (docs/methods.md). 0: the paper."""
    refit_head_epochs: int = setting(10, bounds=COUNT)
    """A party's private fit that misses any of its own images (a few per class, which every model can
    fit: one that does not is held where pretraining left its output layer), or an upper-bound fit that
    ends stuck (fitting the pooled data less than 1.5x as well as always answering its most common class
    would), is redone from the same start with this many epochs of the output layer alone first, and the
    better of the two fits (on that data) is kept. Perfect fits are untouched, so the paper's numbers
    are too; 0: never refit. Models without a findable output layer (`models.output_layer`) are not
    refitted."""
    lr: float = setting(1e-3, bounds=LEARNING_RATE)
    """Adam learning rate for transfer learning and the upper bound."""
    precise_bn: bool = setting(False)
    """Re-estimate every batch-norm layer's statistics on the data each training phase used (one forward
    pass, cumulative average) after the phase. Off by default: the paper's algorithm, and the presets'
    numbers; turn it on for short schedules or slow batch-norm momentum (the paper CNNs' Keras 0.99), which
    the transfer health check reports (docs/methods.md)."""

    # --- collaboration (rounds 1..R) --------------------------------------------
    rounds: int = setting(20, role="result", bounds=COUNT)
    """Collaboration rounds R (0 = transfer learning only; reference: 20)."""
    subset_size: int = setting(5000, role="result", bounds=IMAGES)
    """Alignment subset size, redrawn from the public set every round (stratified)."""
    strategy: StrategyEntry = setting("fedmd", role="result", plugin="strategy")
    """The distillation method: `fedmd` (the paper; uses `aggregator`, `digest_loss`, `temperature`), a
    registered name (`fedmd_ray/methods.py`; `local`: the no-collaboration control), an import path
    'pkg.mod:MyStrategy', or (Python) a Strategy (see docs/extending.md)."""
    aggregator: str = setting("mean", role="result")
    """`fedmd`'s consensus: mean (paper), standardized_mean, median, trimmed_mean (`trim_fraction`)."""
    digest_loss: DigestLoss = setting("l1", role="result")
    """`fedmd`'s loss toward the consensus: l1 on logits (paper), mse on logits, kl at `temperature`."""
    temperature: float = setting(1.0, role="result", bounds=TEMPERATURE)
    """Softmax temperature T of `fedmd`'s `kl` loss, `fedmd-kl` and `kt-pfl` (parties share softmax(z / T))."""
    party_weights: PartyWeights = setting("equal", role="result")
    """`fedmd-kl`'s vote per party in the consensus: `equal` (FedDF's mean), or `information`: by the mutual
    information between the alignment images and the party's predictions, so that a party that answers
    the same for every image (one private class) has no say (`aggregation.information_weights`)."""
    trim_fraction: float = setting(0.2, role="result", bounds=Bounds(0, 0.5, high_open=True))
    """Share of highest and of lowest scores dropped per sample and class (`cronus`, `aggregator=trimmed_mean`);
    the count rounds down: 0.2 of 4 parties drops none."""
    era_temperature: float = setting(0.1, role="result", bounds=TEMPERATURE)
    """`ds-fl`'s entropy-reduction temperature: the mean probabilities are sharpened by softmax(p / T) (paper 0.1)."""
    kt_rho: float = setting(0.7, role="result", bounds=Bounds(0, 1e3))
    """`kt-pfl`'s penalty rho on ||c_i - 1/n||^2, pulling each party's coefficients toward equal weights."""
    kt_lr: float = setting(0.05, role="result", bounds=Bounds(0, 1e3, low_open=True))
    """`kt-pfl`'s step size for the knowledge-coefficient matrix (one projected gradient step per round)."""
    digest_epochs: int = setting(1, role="result", bounds=COUNT)
    """Epochs on the alignment subset per round (0: no collaboration, like `strategy=local`)."""
    digest_batch_size: int = setting(256, role="result", bounds=POSITIVE_COUNT)
    """Batch size of the digest step (paper: 256)."""
    revisit_epochs: int = setting(2, role="result", bounds=COUNT)
    """Epochs on the private data per round."""
    revisit_batch_size: int = setting(5, role="result", bounds=POSITIVE_COUNT)
    """Batch size of the revisit step."""
    revisit_shift: int = setting(0, role="result", bounds=COUNT)
    """Revisit each private image moved by a random offset of up to this many pixels in each direction
    (drawn per image and batch, border pixels repeated; `training.random_shift`). A party fits its few
    private images perfectly, so revisiting them unchanged barely pulls it back to its task after a
    digest; shifted copies of them do. 0: off (the paper); the recipe of docs/methods.md uses 2 (28x28
    images). Must be less than half the images' height and width (the public set's, which private
    images are resized to); only the rounds' revisit is augmented, not transfer learning."""
    collab_lr: float | None = setting(None, role="result", bounds=LEARNING_RATE)
    """Adam learning rate for digest and revisit; None = `lr`."""
    swa: bool = setting(False, role="result")
    """Stochastic weight averaging over the last half of the rounds (tail averaging; Izmailov et al.
    2018, arXiv 1803.05407): from round `rounds // 2 + 1` on, each party's reported model is the
    running average of its weights after each of those rounds (batch-norm statistics averaged
    alike), kept in its state (checkpoints, restarts); the party keeps training, scoring and
    collaborating with its own weights. Where a party's accuracy swings from round to round, the
    run ends at the average of the swings instead of the last one. Off by default: the paper's
    algorithm (docs/methods.md measures it). Rounds before the window report the party's own weights,
    so a round's value depends on `rounds`."""
    wise_ft: float = setting(1.0, role="result", bounds=Bounds(0, 1))
    """Weight-space ensembling with the round-0 model (WiSE-FT; Wortsman et al. 2022, arXiv
    2109.01903): every round, each party reports the model `(1 - a) * theta_0 + a * theta`, with
    `theta_0` its weights after transfer learning and `theta` the model it would report otherwise
    (its own weights, or with `swa` their average); every floating-point tensor is blended, batch-norm
    statistics included. `theta_0` is kept in the party's state (checkpoints, restarts); the party keeps
    training, scoring and collaborating with its own weights. 1: off (the paper). Less than 1 trades some
    of what collaboration adds for a floor under what a party had at round 0 (docs/methods.md)."""

    # --- references ---------------------------------------------------------
    upper_bound: bool = setting(True)
    """Also train each model on the union of all parties' private data."""
    upper_bound_epochs: int = setting(20, bounds=COUNT)
    """Epochs of the upper-bound training (batch `private_batch_size`)."""
    eval_batch_size: int | None = setting(None, bounds=POSITIVE_COUNT)
    """Batch size for scoring and testing (memory and speed; it can change the last bits of scores);
    None = per model: 1024 on a GPU; on a CPU the largest batch whose activations fit ~32 MiB (small
    CNNs 256-512, MLPs 1024, the paper's CNNs 64; see `models.eval_batch`)."""
    batch_parties: bool = setting(True, absent=False)
    """Train, score and evaluate the parties of a model that several parties use (`models` cycles) as one
    batched computation on each host, each keeping its own weights, optimizer, data and RNG stream
    (`fedmd_ray.batched`); steps where batching does not pay, and models it cannot batch (one log line
    says why), run per party. Numbers agree with `false` to float rounding, not bit for bit
    (docs/performance.md). Runs saved before this field existed resume with it off."""

    # --- execution ----------------------------------------------------------
    seed: int = setting(0, bounds=Bounds(0, MAX_SEED))
    """Seeds everything: partitions, model init, shuffling, alignment subsets."""
    backend: Backend = setting("ray", role="execution")
    """`ray`: parties are Ray actors; `local`: the same classes in this process, one after another."""
    cpus_per_party: float | None = setting(None, role="execution", bounds=Bounds(MIN_SHARE, MAX_SHARE))
    """CPUs reserved per party (fractions allowed); None = share the cluster's CPUs evenly."""
    gpus_per_party: float = setting(0.0, bounds=Bounds(MIN_SHARE, MAX_SHARE, zero=True))
    """GPUs per party (0.1 = ten parties share a GPU); needs a GPU in the cluster. Only GPU or CPU
    enters the fingerprint (numerics differ), not the share."""
    parties_per_actor: int | None = setting(None, role="execution", bounds=Bounds(1, MAX_PARTIES))
    """Parties hosted by one actor (each keeps its own model, optimizers, data and RNG stream);
    None = one actor per whole CPU the parties may use, parties balanced by estimated work."""
    driver_cpus: float = setting(0.05, role="execution", bounds=Bounds(MIN_SHARE, MAX_SHARE, zero=True))
    """CPUs reserved for the driver actor (it mostly waits)."""
    torch_threads: int | None = setting(None, bounds=Bounds(1, 4096))
    """Torch threads per actor (they change the last bits of results); None = its CPU share rounded
    down (min 1), all cores for `local`."""
    address: str | None = setting(None, role="execution")
    """Ray cluster to attach to (also $RAY_ADDRESS; `auto`: the one `ray start` set up on this machine);
    None = start a local one for the run, even where a `ray start` cluster runs."""
    connect_timeout_s: float = setting(30.0, role="execution", bounds=TIMEOUT)
    """Seconds to wait for the cluster at `address` to accept the connection before failing."""
    actor_start_timeout_s: float = setting(120.0, role="execution", bounds=TIMEOUT)
    """Seconds to wait for actors to be scheduled before failing (Ray would wait forever)."""
    out_dir: str | None = setting(None, role="execution")
    """Where `run` writes results.parquet, config.json and checkpoint.pt; None = nowhere."""

    # --- failures -------------------------------------------------------------
    on_party_failure: FailurePolicy = setting("restart", role="execution")
    """When a party's actor dies, raises or hangs: `restart` it from its last round's state and
    redo its part (dropped after `max_party_restarts`), `drop` it from then on, or `fail` the run
    (resumable). A failure takes down every party of that actor. Under `restart`, a party whose
    loss, outputs or scores went non-finite is dropped at once: a restart would redo the same
    arithmetic from the same state."""
    max_party_restarts: int = setting(2, role="execution", bounds=Bounds(0, 1000))
    """Restarts allowed per party over the run before it is dropped."""
    round_timeout_s: float | None = setting(3600.0, role="execution", bounds=TIMEOUT)
    """Seconds a phase may wait for a party's answer before the party counts as failed (transfer
    learning included: raise it for long CPU runs); None = wait forever."""
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
    def digest_lr(self) -> float:
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
        from fedmd_ray.model_names import resolve_model
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
        from fedmd_ray.aggregation import AGGREGATOR_NAMES

        types_ = _field_types(type(self))
        for f in dataclasses.fields(self):
            bounds: Bounds | None = f.metadata.get("bounds")
            value = getattr(self, f.name)
            if bounds is not None and value is not None and not bounds.allows(value):
                optional, inner = _is_optional(types_[f.name])
                _require(False, f.name, value, bounds.describe(inner is int) + (" or None" if optional else ""))
        for name in ("cpus_per_party", "gpus_per_party"):
            share = getattr(self, name)
            if share is not None and share > 1 and share != int(share):
                raise ConfigError(
                    f"{name}={share} is not allowed: Ray accepts fractions below 1 or whole numbers"
                )
        _require(
            self.aggregator in AGGREGATOR_NAMES, "aggregator", self.aggregator, f"one of {sorted(AGGREGATOR_NAMES)}"
        )
        _check_class_list("public_classes", self.public_classes, allow_none=True)
        _check_class_list("private_classes", self.private_classes, allow_none=False)


def role_of(f: dataclasses.Field[Any]) -> Role:
    """A field's declared role (fields declared without `setting` count as `transfer`)."""
    role: Role = f.metadata.get("role", "transfer")
    return role


def absent_values() -> dict[str, Any]:
    """What a config saved before a field existed means by leaving it out, where that is not the field's
    default (`setting(absent=...)`); `{**absent_values(), **saved}` is the saved config as it ran."""
    return {f.name: f.metadata["absent"] for f in dataclasses.fields(FedMDConfig) if "absent" in f.metadata}


def changed_fields(saved: dict[str, Any], given: dict[str, Any], defaults: dict[str, Any]) -> list[str]:
    """The fields of `given` whose value differs from the one `saved` (a run's or a sweep's). A field
    that `saved` lacks was added to fedmd_ray after it was saved and counts as its value in `defaults`:
    the rule for adding a field is that its default keeps the behaviour from before it existed, so
    a run started before an upgrade resumes after it (`absent_values` name the fields whose old behaviour
    is not their default)."""
    defaults = {**defaults, **absent_values()}
    return [name for name, value in given.items() if saved.get(name, defaults.get(name)) != value]


def describe_change(name: str, saved: Any, given: Any) -> str:
    """One changed field for a refusal to resume: both values, or, where they read the same (an import
    path, a data file), that what they name changed (plug-in code and data files are fingerprinted)."""
    if saved == given:
        return f"{name} ({given!r} reads the same, but its code or data changed since it was saved)"
    return f"{name} (saved {saved!r}, given {given!r})"


def resumable_fields(cls: type[FedMDConfig] = FedMDConfig) -> tuple[str, ...]:
    """Fields that may differ when resuming: the `execution` ones."""
    return tuple(f.name for f in dataclasses.fields(cls) if role_of(f) == "execution")


def _hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


# --- presets ------------------------------------------------------------------

# Measured on `offline` (2 CPU cores, see README): public pretraining converges in a
# few epochs on these small models; 50 private epochs (150 steps at batch 5) are what
# the MLPs need to learn the new output classes at all (20 left them at 2-14%, which
# would flatter the gain); a lower collaboration learning rate keeps the gain growing
# to round 20 where 1e-3 peaks by round 5 and erodes. 8 revisit epochs (the paper's MNIST
# setting uses 2): a digest on public images moves every party away from its private
# task, and 2 epochs on 15-30 private images did not bring it back on pairings the presets
# do not use; strong parties ended up to 15 points below their own round 0 (MNIST ->
# Fashion-MNIST) and single-class parties' logits collapsed a non-iid run. With 8 every
# setting of the methods study gains more, and its worst party loses at most 3.3 points
# instead of 34 (docs/methods.md).
_CPU_SCHEDULE: dict[str, Any] = dict(
    pretrain_epochs=5, pretrain_patience=2, private_epochs=50, collab_lr=5e-4, revisit_epochs=8
)

PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "quick": (
        "smoke test: sklearn 8x8 digits 0-4 public -> 5-9 private, 3 parties, 2 rounds (< 90 s)",
        dict(
            public_data="digits", private_data="digits", n_parties=3,
            models=("cnn2-8-16", "mlp-64", "cnn1-16"), samples_per_class=3, subset_size=300,
            rounds=2, pretrain_epochs=4, pretrain_patience=2, pretrain_batch_size=64,
            private_epochs=40, upper_bound_epochs=20, digest_epochs=1, revisit_epochs=1,
        ),
    ),
    "offline": (
        "default: MNIST digits 0-4 public -> 5-9 private, 10 small CNNs/MLPs, 3 per class per party",
        dict(public_data="mnist", private_data="mnist", n_parties=10, **_CPU_SCHEDULE),
    ),
    "offline-fashion": (
        "MNIST digits 0-9 public -> 6 Fashion-MNIST classes private, 10 small CNNs/MLPs",
        dict(
            public_data="mnist", public_classes=None, private_data="fashion-mnist",
            private_classes=(0, 1, 2, 3, 4, 5), n_parties=10, **_CPU_SCHEDULE,
        ),
    ),
}


# The paper's settings, every number from the reference implementation
# (diogenes0319/FedMD_clean): models and hyperparameters from conf/EMNIST_balance_conf.json,
# conf/EMNIST_imbalance_conf.json, conf/CIFAR_balance_conf.json, conf/CIFAR_imbalance_conf.json;
# private training before the rounds (25 epochs, batch 32) and the upper bound (50 epochs,
# batch 32) from FedMD.py; Adam 1e-3 and L1 on logits from Neural_Networks.py
# (remove_last_layer). Deviations: the reference early-stops the private and upper-bound
# training on the private *test* set (we train the fixed epochs), standardises images
# (x/255 - mean image; we use x/255), and lets parties that share a CIFAR subclass draw
# overlapping samples (ours are disjoint).
_PAPER_COMMON: dict[str, Any] = dict(
    n_parties=10, models=PAPER_MODELS, subset_size=5000, digest_epochs=1, lr=1e-3, digest_loss="l1",
    aggregator="mean", pretrain_epochs=20, pretrain_patience=3, pretrain_batch_size=128,
    private_epochs=25, private_batch_size=32, upper_bound_epochs=50,
)
_PAPER_MNIST: dict[str, Any] = dict(
    _PAPER_COMMON, public_data="mnist", public_classes=None, private_data="emnist-letters",
    private_classes=(0, 1, 2, 3, 4, 5), samples_per_class=3, pretrain_min_delta=0.001, rounds=20,
    digest_batch_size=256, revisit_batch_size=5,
)
_PAPER_CIFAR: dict[str, Any] = dict(
    _PAPER_COMMON, public_data="cifar10", public_classes=None, private_data="cifar100",
    pretrain_min_delta=0.005,
)
PRESETS.update({
    "paper-mnist-iid": (
        "paper setting 1, iid: MNIST public -> EMNIST letters a-f, 3 per class per party, 10 paper CNNs",
        dict(_PAPER_MNIST, partition="iid", revisit_epochs=2),
    ),
    "paper-mnist-noniid": (
        "paper setting 1, non-iid: each party holds one EMNIST writer's letters a-f (needs emnist-letters.mat)",
        dict(_PAPER_MNIST, partition="writer", revisit_epochs=4),
    ),
    "paper-cifar-iid": (
        "paper setting 2, iid: CIFAR-10 public -> CIFAR-100 fine classes 0,2,20,63,71,82, 3 per class per party",
        dict(_PAPER_CIFAR, partition="iid", private_classes=(0, 2, 20, 63, 71, 82), samples_per_class=3,
             rounds=20, digest_batch_size=256, revisit_epochs=4, revisit_batch_size=5),
    ),
    "paper-cifar-noniid": (
        "paper setting 2, non-iid: CIFAR-100 superclasses 0,1,7,9,12,18, parties see other subclasses",
        dict(_PAPER_CIFAR, partition="superclass", private_classes=(0, 1, 7, 9, 12, 18), samples_per_class=20,
             rounds=13, digest_batch_size=128, revisit_epochs=10, revisit_batch_size=10),
    ),
})




def preset_names() -> list[str]:
    return list(PRESETS)


def preset(name: str = "offline", **overrides: Any) -> FedMDConfig:
    """The named preset's config, with `overrides` applied (validated once)."""
    if name not in PRESETS:
        raise ConfigError(f"preset '{name}' is not known; use one of: {', '.join(PRESETS)}")
    return FedMDConfig.from_dict({**PRESETS[name][1], **overrides})


def parse_overrides(assignments: list[str]) -> dict[str, Any]:
    """Turn `["rounds=5", "models=cnn2-8-16,mlp-64"]` into typed values.

    Strings are parsed by the field's type, so `rounds=five` fails here, with
    the field named, before anything starts. A field given twice is refused:
    which value wins is not obvious.
    """
    types_ = _field_types(FedMDConfig)
    result: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects field=value, got '{item}'")
        if key not in types_:
            raise ConfigError(_unknown_key_message(key, FedMDConfig))
        if key in result:
            raise ConfigError(f"--set {key} is given twice; give each field once")
        result[key] = _parse_text(key, raw.strip(), types_[key])
    return result


# --- helpers --------------------------------------------------------------------

_FIELD_TYPES: dict[type[FedMDConfig], dict[str, Any]] = {}


def _field_types(cls: type[FedMDConfig]) -> dict[str, Any]:
    """Each field's type, evaluated (plug-in fields: `str`, their text form; their objects are
    checked by `_coerce_plugin`, and their annotations name torch types only for type checkers)."""
    if cls in _FIELD_TYPES:
        return _FIELD_TYPES[cls]
    types_: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.metadata.get("plugin"):
            types_[f.name] = tuple[str, ...] if f.metadata["plugin"] == "model" else str
        else:
            owner = next(c for c in cls.__mro__ if f.name in c.__dict__.get("__annotations__", {}))
            annotation: Any = f.type  # a string under `from __future__ import annotations`
            types_[f.name] = eval(annotation, vars(sys.modules[owner.__module__])) if isinstance(annotation, str) else annotation
    _FIELD_TYPES[cls] = types_
    return types_


def _unknown_key_message(key: str, cls: type[FedMDConfig]) -> str:
    names = list(_field_types(cls))
    close = difflib.get_close_matches(key, names, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown config field '{key}'{hint}; known fields: {', '.join(names)}"


def _require(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{name}={value!r} is not allowed: must be {allowed}")


def _check_class_list(name: str, classes: tuple[int, ...] | None, *, allow_none: bool) -> None:
    """The static part; ids against the source's classes are checked with the data (`data.task`)."""
    if classes is None:
        _require(allow_none, name, classes, "a non-empty list of class ids")
        return
    _require(len(classes) > 0, name, classes, "a non-empty list of class ids")
    _require(len(set(classes)) == len(classes), name, classes, "a list without repeated class ids")
    _require(min(classes) >= 0, name, classes, "a list of class ids >= 0")


def _coerce_plugin(name: str, value: Any, kind: str) -> Any:
    """A plug-in field: names and import paths checked statically (nothing imported), objects as given."""
    from fedmd_ray.data.resolve import check_source_entry
    from fedmd_ray.model_names import check_model_entry
    from fedmd_ray.strategy import check_strategy_entry

    if kind == "model":
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}={value!r} is not allowed: must be a list of model names, import paths or factories")
        entries = tuple(v.strip() if isinstance(v, str) else v for v in value)
        for entry in entries:
            check_model_entry(entry)
        return entries
    entry = value.strip() if isinstance(value, str) else value
    if isinstance(entry, str) and not entry:
        raise ConfigError(f"{name}='' is not allowed: must name a {kind}")
    if isinstance(entry, str) and entry.startswith("<object "):
        raise ConfigError(_object_marker_message(name, entry))
    if kind == "source":
        check_source_entry(name, entry)
    else:
        check_strategy_entry(entry)
    return entry


def _object_marker_message(name: str, marker: str) -> str:
    return (
        f"{name}={marker}: the run used a Python object that a file cannot rebuild (an instance, a "
        "functools.partial, or something defined in a script or inside a function); resume it from Python "
        "with the same object (fedmd_ray.run(config, out_dir=..., resume=True)), or start runs you want to "
        "resume from the CLI with an import path 'package.module:name' (a class or factory, its "
        "parameters from config fields)"
    )


def _json_entry(value: Any) -> Any:
    from fedmd_ray.plugins import describe, import_path_of

    if isinstance(value, list):
        return [_json_entry(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return import_path_of(value) or f"<object {describe(value)}>"


def _is_optional(tp: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return True, args[0]
    return False, tp


def _type_name(tp: Any) -> str:
    optional, inner = _is_optional(tp)
    if optional:
        return f"{_type_name(inner)} or None"
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) is tuple:
        return f"a list of {typing.get_args(tp)[0].__name__}"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def _coerce(name: str, value: Any, tp: Any) -> Any:
    """Check a Python value against the field type (lists become tuples)."""
    optional, inner = _is_optional(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{name}=None is not allowed: must be {_type_name(tp)}")
    origin = typing.get_origin(inner)
    if origin is Literal:
        if value not in typing.get_args(inner):
            raise ConfigError(f"{name}={value!r} is not allowed: must be {_type_name(inner)}")
        return value
    if origin is tuple:
        item_type = typing.get_args(inner)[0]
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}={value!r} is not allowed: must be {_type_name(inner)}")
        return tuple(_coerce(f"{name}[{i}]", v, item_type) for i, v in enumerate(value))
    if isinstance(value, bool) and inner is not bool:
        raise ConfigError(f"{name}={value!r} is not allowed: must be {_type_name(tp)}")
    if inner is int and isinstance(value, numbers.Integral):  # numpy ints from Tune samplers too
        return int(value)
    if inner is float and isinstance(value, numbers.Real):
        try:
            number = float(value)
        except OverflowError:  # an int beyond any float
            number = math.inf
        if not math.isfinite(number):  # inf/nan pass every bound check, then break training or JSON
            raise ConfigError(f"{name}={value!r} is not allowed: must be a finite number")
        return number
    if inner is bool and getattr(getattr(value, "dtype", None), "kind", None) == "b" and getattr(value, "ndim", 1) == 0:
        return bool(value)  # numpy's bool (a mask's element, a Tune sampler's choice)
    if not isinstance(value, inner) or (inner is not bool and isinstance(value, bool)):
        raise ConfigError(f"{name}={value!r} is not allowed: must be {_type_name(tp)}")
    return value


def _parse_text(name: str, raw: str, tp: Any) -> Any:
    """Parse command-line text by the field's type (plug-in fields stay text: names, paths)."""
    optional, inner = _is_optional(tp)
    if not raw:  # `--set public_classes=`: a value went missing; "the default" is spelt out
        hint = " (or none)" if optional else ""
        raise ConfigError(f"{name}= has no value: give one{hint}")
    if optional and raw.lower() in ("none", "null"):
        return None
    if typing.get_origin(inner) is tuple:
        parts = [part.strip() for part in raw.split(",")]
        if not all(parts):  # `--set models=` or `a,,b`: an empty item is a typo, not "the default"
            raise ConfigError(f"{name}={raw!r} is not allowed: a comma-separated list with an empty item")
        return tuple(_parse_text(name, part, typing.get_args(inner)[0]) for part in parts)
    try:
        if inner is bool:
            lowered = raw.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return lowered in ("true", "1", "yes")
        if inner is int:
            return int(raw)
        if inner is float:
            return float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not allowed: must be {_type_name(tp)}") from None
    return raw


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


__all__ = ["FedMDConfig", "PRESETS", "preset", "preset_names", "parse_overrides", "setting", "Bounds"]
