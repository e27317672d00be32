"""One typed config for a FedMD run, its validation, and the named presets.

Every knob of the algorithm is a field of :class:`FedMDConfig`; users set them
in Python (`preset("offline", rounds=5)`) or on the command line
(`--set rounds=5`). Validation is static (no data is loaded, Ray is never
started), so a typo costs milliseconds, not a cluster start-up. Checks that need
the data (e.g. `subset_size` against the size of the public set) run in
`fedmd_ray.data.task.build_task`, still before Ray starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import json
import math
import numbers
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Union

from fedmd_ray.errors import ConfigError
from fedmd_ray.model_names import PAPER_MODELS

Backend = Literal["ray", "local"]
Partition = Literal["iid", "noniid", "writer", "superclass"]
DigestLoss = Literal["l1", "mse", "kl"]
FailurePolicy = Literal["restart", "drop", "fail"]


@dataclass(frozen=True)
class FedMDConfig:
    """Everything that determines a FedMD run (arXiv 1910.03581).

    Label space: public classes first (0..C0-1), private classes appended after
    them, so models have `n_classes = C0 + C1` outputs (paper: 10 digits + 6
    letters = 16). Images of the private source are resized to the public
    source's shape when they differ.
    """

    # --- data ---------------------------------------------------------------
    public_data: str = "mnist"
    """Registered source of the public set D0 (`fedmd-ray presets` lists them)."""
    public_classes: tuple[int, ...] | None = (0, 1, 2, 3, 4)
    """Class ids of `public_data` that form D0; None = all classes."""
    private_data: str = "mnist"
    """Registered source of the private task (party data and test set)."""
    private_classes: tuple[int, ...] = (5, 6, 7, 8, 9)
    """Class ids of `private_data` that form the private task."""
    public_size: int | None = None
    """Use at most this many public training images (stratified); None = all."""
    eval_size: int | None = None
    """Evaluate on at most this many images (stratified) of each held-out set: the public
    one that early stopping watches and the private test set; None = all. Evaluations
    dominate small runs of large models (every party, every round)."""
    data_root: str | None = None
    """Directory with the data files; None = $FEDMD_RAY_DATA_ROOT or ~/.cache/fedmd_ray/data."""

    # --- parties ------------------------------------------------------------
    n_parties: int = 10
    """Number of participants."""
    models: tuple[str, ...] = ()
    """Model name per party (cycled when shorter than n_parties); () = the 10 small CPU models."""
    samples_per_class: int = 3
    """Private training samples per class per party (paper, iid: 3)."""
    partition: Partition = "iid"
    """`iid`: disjoint class-balanced shares. `noniid`: each party's class mix ~ Dirichlet(noniid_alpha).
    `writer`: each party holds one writer's samples (needs writer ids: emnist-letters from its .mat file).
    `superclass`: `private_classes` are superclass ids and each party sees other subclasses (cifar100)."""
    noniid_alpha: float = 0.5
    """Concentration of the Dirichlet class mix for `partition=noniid` (smaller = more skewed)."""

    # --- transfer learning (round 0) ------------------------------------------
    pretrain_epochs: int = 20
    """Maximum epochs on the public set (early stopping ends it sooner)."""
    pretrain_patience: int = 3
    """Epochs without `pretrain_min_delta` gain in held-out accuracy before stopping."""
    pretrain_min_delta: float = 0.001
    """Smallest held-out accuracy gain that counts as progress."""
    pretrain_batch_size: int = 128
    """Batch size on the public set."""
    private_epochs: int = 20
    """Epochs on the party's private data after public pretraining."""
    private_batch_size: int = 5
    """Batch size for private training (transfer step and upper bound)."""
    lr: float = 1e-3
    """Adam learning rate for transfer learning and the upper bound."""

    # --- collaboration (rounds 1..R) --------------------------------------------
    rounds: int = 20
    """Collaboration rounds R (0 = transfer learning only; reference: 20)."""
    subset_size: int = 5000
    """Alignment subset size, redrawn from the public set every round (stratified)."""
    aggregator: str = "mean"
    """How scores become the consensus: mean (paper), standardized_mean, median."""
    digest_loss: DigestLoss = "l1"
    """Loss toward the consensus: l1 on logits (paper), mse on logits, kl at `temperature`."""
    temperature: float = 1.0
    """Softmax temperature of the `kl` digest loss."""
    digest_epochs: int = 1
    """Epochs on the alignment subset per round."""
    digest_batch_size: int = 256
    """Batch size of the digest step (paper: 256)."""
    revisit_epochs: int = 2
    """Epochs on the private data per round."""
    revisit_batch_size: int = 5
    """Batch size of the revisit step."""
    collab_lr: float | None = None
    """Adam learning rate for digest and revisit; None = `lr`."""

    # --- references ---------------------------------------------------------
    upper_bound: bool = True
    """Also train each model on the union of all parties' private data."""
    upper_bound_epochs: int = 20
    """Epochs of the upper-bound training (batch `private_batch_size`)."""
    eval_batch_size: int | None = None
    """Batch size for scoring and testing (memory and speed, not results); None = per model:
    1024 on a GPU; on a CPU the largest batch whose activations fit ~32 MiB (small CNNs
    256-512, MLPs 1024, the paper's CNNs 64; see `models.eval_batch`)."""

    # --- execution ----------------------------------------------------------
    seed: int = 0
    """Seeds everything: partitions, model init, shuffling, alignment subsets."""
    backend: Backend = "ray"
    """`ray`: parties are Ray actors; `local`: the same classes in this process, one after another."""
    cpus_per_party: float | None = None
    """CPUs reserved per party (fractions allowed); None = share the cluster's CPUs evenly."""
    gpus_per_party: float = 0.0
    """GPUs per party (0.1 = ten parties share a GPU); needs a GPU in the cluster."""
    parties_per_actor: int | None = None
    """Parties hosted by one actor (each keeps its own model, optimizers, data and RNG stream);
    None = one actor per whole CPU the parties may use, parties balanced by estimated work."""
    driver_cpus: float = 0.05
    """CPUs reserved for the driver actor (it mostly waits)."""
    torch_threads: int | None = None
    """Torch threads per actor; None = its CPU share rounded down (min 1), all cores for `local`."""
    address: str | None = None
    """Ray cluster to attach to (also $RAY_ADDRESS); None = start a local one for the run."""
    actor_start_timeout_s: float = 120.0
    """Seconds to wait for actors to be scheduled before failing (Ray would wait forever)."""
    out_dir: str | None = None
    """Where `run` writes results.parquet, config.json and checkpoint.pt; None = nowhere."""

    # --- failures -------------------------------------------------------------
    on_party_failure: FailurePolicy = "restart"
    """When a party's actor dies, raises or hangs: `restart` it from its last round's state and
    redo its part (dropped after `max_party_restarts`), `drop` it from then on, or `fail` the run
    (resumable). A failure takes down every party of that actor."""
    max_party_restarts: int = 2
    """Restarts allowed per party over the run before it is dropped."""
    round_timeout_s: float | None = 3600.0
    """Seconds a phase may wait for a party's answer before the party counts as failed (transfer
    learning included: raise it for long CPU runs); None = wait forever."""
    party_dropout: float = 0.0
    """Probability that a party sits out a round (seeded): simulates absent parties and stragglers."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _coerce(f.name, getattr(self, f.name), _field_types()[f.name]))
        self._validate()

    # --- derived values -------------------------------------------------------
    @property
    def party_models(self) -> tuple[str, ...]:
        """The model of each party, cycling `models`."""
        from fedmd_ray.model_names import SMALL_MODELS

        names = self.models or SMALL_MODELS
        return tuple(names[i % len(names)] for i in range(self.n_parties))

    @property
    def digest_lr(self) -> float:
        return self.lr if self.collab_lr is None else self.collab_lr

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FedMDConfig:
        unknown = [k for k in values if k not in _field_types()]
        if unknown:
            raise ConfigError(_unknown_key_message(unknown[0]))
        return cls(**values)

    def replace(self, **overrides: Any) -> FedMDConfig:
        """A copy with some fields changed; unknown names raise ConfigError."""
        return FedMDConfig.from_dict({**self.to_dict(), **overrides})

    def transfer_fingerprint(self, threads: tuple[int, ...] = ()) -> str:
        """Hash of what determines the transfer-learned models (round 0 and the upper bound).

        Collaboration knobs (rounds, subset_size, digest_*, revisit_*, aggregator,
        collab_lr) are left out, so sweep trials over them share one cached
        transfer phase. GPU or CPU and the torch thread counts the hosts run with (`threads`;
        `torch_threads=None` resolves per cluster) are in: they change numerics. So is
        the resolved data root, but not the files' contents: clear the cache after changing
        the files in place.
        """
        from fedmd_ray.data.sources import resolve_data_root

        fields = (
            "public_data", "public_classes", "private_data", "private_classes", "public_size", "eval_size",
            "n_parties",
            "samples_per_class", "partition", "noniid_alpha", "pretrain_epochs", "pretrain_patience",
            "pretrain_min_delta", "pretrain_batch_size", "private_epochs", "private_batch_size", "lr",
            "upper_bound", "upper_bound_epochs", "seed", "torch_threads",
        )
        payload = {k: _jsonable(getattr(self, k)) for k in fields}
        payload["party_models"] = list(self.party_models)
        payload["gpu"] = self.gpus_per_party > 0
        payload["data_root"] = str(resolve_data_root(self.data_root))
        payload["threads"] = sorted(set(threads))
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def fingerprint(self, exclude: tuple[str, ...] = ("out_dir", "address", "backend")) -> str:
        """Stable hash of the fields that determine results."""
        payload = {k: v for k, v in self.to_dict().items() if k not in exclude}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    # --- validation -----------------------------------------------------------
    def _validate(self) -> None:
        from fedmd_ray.aggregation import AGGREGATORS
        from fedmd_ray.data.sources import source_info
        from fedmd_ray.models import check_model

        positive = [
            "n_parties", "samples_per_class", "subset_size", "pretrain_batch_size",
            "private_batch_size", "digest_batch_size", "revisit_batch_size",
        ]
        for name in positive:
            _require(getattr(self, name) >= 1, name, getattr(self, name), "an integer >= 1")
        non_negative = [
            "rounds", "pretrain_epochs", "pretrain_patience", "private_epochs", "digest_epochs",
            "revisit_epochs", "upper_bound_epochs", "seed",
        ]
        for name in non_negative:
            _require(getattr(self, name) >= 0, name, getattr(self, name), "an integer >= 0")
        for name in ("lr", "temperature", "noniid_alpha", "actor_start_timeout_s"):
            _require(getattr(self, name) > 0, name, getattr(self, name), "a number > 0")
        _require(self.pretrain_min_delta >= 0, "pretrain_min_delta", self.pretrain_min_delta, "a number >= 0")
        if self.collab_lr is not None:
            _require(self.collab_lr > 0, "collab_lr", self.collab_lr, "a number > 0 or None")
        for name in ("public_size", "eval_size", "eval_batch_size"):
            value = getattr(self, name)
            if value is not None:
                _require(value >= 1, name, value, "an integer >= 1 or None")
        if self.parties_per_actor is not None:
            _require(
                self.parties_per_actor >= 1, "parties_per_actor", self.parties_per_actor, "an integer >= 1 or None (auto)"
            )
        _require(self.max_party_restarts >= 0, "max_party_restarts", self.max_party_restarts, "an integer >= 0")
        if self.round_timeout_s is not None:
            _require(self.round_timeout_s > 0, "round_timeout_s", self.round_timeout_s, "a number > 0 or None")
        _require(0 <= self.party_dropout < 1, "party_dropout", self.party_dropout, "a probability in [0, 1)")
        if self.torch_threads is not None:
            _require(self.torch_threads >= 1, "torch_threads", self.torch_threads, "an integer >= 1 or None")
        if self.cpus_per_party is not None:
            _require(self.cpus_per_party > 0, "cpus_per_party", self.cpus_per_party, "a number > 0 or None (auto)")
        _require(self.gpus_per_party >= 0, "gpus_per_party", self.gpus_per_party, "a number >= 0")
        _require(self.driver_cpus >= 0, "driver_cpus", self.driver_cpus, "a number >= 0")
        for name in ("cpus_per_party", "gpus_per_party"):
            share = getattr(self, name)
            if share is not None and share > 1 and share != int(share):
                raise ConfigError(
                    f"{name}={share} is not allowed: Ray accepts fractions below 1 or whole numbers"
                )
        _require(
            self.aggregator in AGGREGATORS, "aggregator", self.aggregator, f"one of {sorted(AGGREGATORS)}"
        )

        public = source_info(self.public_data)
        private = source_info(self.private_data)
        if self.partition in ("writer", "superclass") and private.groups != self.partition:
            kinds = {"writer": "writer ids (emnist-letters)", "superclass": "superclass labels (cifar100)"}
            raise ConfigError(
                f"partition='{self.partition}' needs {kinds[self.partition]}, which private_data="
                f"'{self.private_data}' does not have; use partition='iid' or 'noniid', or such a source"
            )
        by_superclass = self.partition == "superclass"
        _check_classes("public_classes", self.public_classes, len(public.class_names), allow_none=True)
        _check_classes(
            "private_classes", self.private_classes,
            len(private.superclass_names if by_superclass else private.class_names), allow_none=False,
            unit="superclasses" if by_superclass else "classes",
        )
        if public.images == private.images and not by_superclass:  # superclasses: checked on the data (build_task)
            public_ids = set(range(len(public.class_names))) if self.public_classes is None else set(self.public_classes)
            shared = sorted(public_ids & set(self.private_classes))
            if shared:
                raise ConfigError(
                    f"public_classes and private_classes share classes {shared} of the same images "
                    f"('{self.public_data}', '{self.private_data}'); the private task must use classes the "
                    "public set does not hold"
                )
        for name in self.models:
            check_model(name, public.image_shape, self.n_classes)

    @property
    def n_public_classes(self) -> int:
        from fedmd_ray.data.sources import source_info

        if self.public_classes is None:
            return len(source_info(self.public_data).class_names)
        return len(self.public_classes)

    @property
    def n_classes(self) -> int:
        """Model outputs: public classes, then private classes."""
        return self.n_public_classes + len(self.private_classes)


# --- presets ------------------------------------------------------------------

# Measured on `offline` (2 CPU cores, see README): public pretraining converges in a
# few epochs on these small models; 50 private epochs (150 steps at batch 5) are what
# the MLPs need to learn the new output classes at all (20 left them at 2-14%, which
# would flatter the gain); a lower collaboration learning rate keeps the gain growing
# to round 20 where 1e-3 peaks by round 5 and erodes.
_CPU_SCHEDULE: dict[str, Any] = dict(pretrain_epochs=5, pretrain_patience=2, private_epochs=50, collab_lr=5e-4)

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
    the field named, before anything starts.
    """
    types_ = _field_types()
    result: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects field=value, got '{item}'")
        if key not in types_:
            raise ConfigError(_unknown_key_message(key))
        result[key] = _parse_text(key, raw.strip(), types_[key])
    return result


# --- helpers --------------------------------------------------------------------

@functools.cache
def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(FedMDConfig)


def _unknown_key_message(key: str) -> str:
    names = list(_field_types())
    close = difflib.get_close_matches(key, names, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown config field '{key}'{hint}; known fields: {', '.join(names)}"


def _require(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{name}={value!r} is not allowed: must be {allowed}")


def _check_classes(
    name: str, classes: tuple[int, ...] | None, n_available: int, *, allow_none: bool, unit: str = "classes"
) -> None:
    if classes is None:
        _require(allow_none, name, classes, "a non-empty list of class ids")
        return
    _require(len(classes) > 0, name, classes, "a non-empty list of class ids")
    _require(len(set(classes)) == len(classes), name, classes, "a list without repeated class ids")
    bad = [c for c in classes if not 0 <= c < n_available]
    _require(not bad, name, classes, f"class ids in 0..{n_available - 1} (the source has {n_available} {unit})")


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
        if not math.isfinite(value):  # inf/nan pass every bound check, then break training or JSON
            raise ConfigError(f"{name}={value!r} is not allowed: must be a finite number")
        return float(value)
    if not isinstance(value, inner) or (inner is not bool and isinstance(value, bool)):
        raise ConfigError(f"{name}={value!r} is not allowed: must be {_type_name(tp)}")
    return value


def _parse_text(name: str, raw: str, tp: Any) -> Any:
    """Parse command-line text by the field's type."""
    optional, inner = _is_optional(tp)
    if optional and raw.lower() in ("none", "null", ""):
        return None
    try:
        if typing.get_origin(inner) is tuple:
            item_type = typing.get_args(inner)[0]
            return tuple(_parse_text(name, part.strip(), item_type) for part in raw.split(",") if part.strip())
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


__all__ = ["FedMDConfig", "PRESETS", "preset", "preset_names", "parse_overrides"]
