"""Naming models without torch: the built-in specs, the model registry, resolving config entries.

A `models` entry is a registered name, a built-in spec (`cnn2-8-16`, `mlp-128-64`,
`paper-cnn3-64-128-256-d0.3`; see `fedmd_ray.models`), an import path
`"package.module:factory"`, or (Python API) the factory itself. Every one resolves to a
`ModelPlugin` whose factory `(input_shape, n_classes) -> nn.Module` builds the model,
the built-ins included. The config, the CLI and the driver actor name models without
building them; keeping torch out of their imports saves each such process ~1.2 s and
~450 MiB.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Union

from fedmd_ray.errors import ConfigError
from fedmd_ray.plugins import (
    Registry,
    check_users_code,
    describe,
    is_import_path,
    load_object,
    object_identity,
    takes_arguments,
)

if TYPE_CHECKING:
    from torch import nn

ModelFactory = Callable[[tuple[int, int, int], int], "nn.Module"]
"""`factory(input_shape, n_classes)` -> a module mapping `(N, C, H, W)` floats to `(N, n_classes)` logits."""
ModelEntry = Union[str, ModelFactory]

PAPER_MODELS: tuple[str, ...] = (
    # conf/EMNIST_balance_conf.json of the reference, in its order.
    "paper-cnn2-128-256",
    "paper-cnn2-128-384",
    "paper-cnn2-128-512",
    "paper-cnn2-256-256-d0.3",
    "paper-cnn2-256-512-d0.4",
    "paper-cnn3-64-128-256",
    "paper-cnn3-64-128-192",
    "paper-cnn3-128-192-256",
    "paper-cnn3-128-128-128-d0.3",
    "paper-cnn3-128-128-192-d0.3",
)

SMALL_MODELS: tuple[str, ...] = (
    # Varied depth (conv 1-4 stages, MLP 1-3 layers), width and dropout; each
    # trains an epoch of 30k 28x28 images in under ~6 s on one CPU thread (see `models`).
    "cnn1-8",
    "cnn2-4-8",
    "cnn2-8-16",
    "cnn2-8-8-d0.3",
    "cnn3-4-8-16",
    "cnn3-6-12-24",
    "cnn4-4-8-16-32",
    "mlp-128",
    "mlp-256-128",
    "mlp-512-256-128",
)

DEFAULT_DROPOUT = 0.2
_SPEC = re.compile(
    r"(?P<family>paper-cnn|cnn|mlp)(?P<depth>\d*)"
    r"-(?P<widths>\d+(?:-\d+)*)(?:-d(?P<rate>\d*\.?\d+))?"
)
SPEC_HELP = "a spec like cnn2-16-32 / mlp-128-64 / paper-cnn3-64-128-256-d0.3 (see fedmd_ray.models)"


def model_names() -> list[str]:
    """The named sets of built-in specs, for ``fedmd-ray presets`` and error messages."""
    return [*PAPER_MODELS, *SMALL_MODELS]


@dataclass(frozen=True)
class ModelSpec:
    """A parsed built-in spec: ``family`` is "paper-cnn", "cnn" or "mlp"."""

    family: str
    widths: tuple[int, ...]
    dropout: float


def parse_model_name(name: str) -> ModelSpec:
    """Parse a built-in spec or raise a ConfigError that says what is wrong and what is allowed."""
    match = _SPEC.fullmatch(name)
    if match is None:
        raise unknown_model(name, "")
    family, depth = match["family"], match["depth"]
    widths = tuple(int(w) for w in match["widths"].split("-"))
    dropout = DEFAULT_DROPOUT if match["rate"] is None else float(match["rate"])
    depths = {"paper-cnn": (2, 3), "cnn": (1, 2, 3, 4), "mlp": ()}[family]
    if family == "mlp" and depth:
        raise unknown_model(name, "mlp specs have no depth, e.g. mlp-128-64")
    if family != "mlp" and (not depth or int(depth) not in depths):
        raise unknown_model(name, f"{family} depth must be one of {depths}")
    if depth and len(widths) != int(depth):
        raise unknown_model(name, f"{family}{depth} needs {depth} widths, got {len(widths)}")
    if min(widths) < 1:
        raise unknown_model(name, "every width must be at least 1")
    if not 0.0 <= dropout < 1.0:
        raise unknown_model(name, f"dropout rate {dropout} must be in [0, 1)")
    return ModelSpec(family, widths, dropout)


def unknown_model(name: str, reason: str) -> ConfigError:
    why = f" ({reason})" if reason else ""
    return ConfigError(
        f"model {name!r} is not known{why}{MODELS.close_match(name)}; use one of: {', '.join(MODELS.names())}; "
        f"or {SPEC_HELP}; an import path 'package.module:factory'; or (Python) a factory(input_shape, n_classes) "
        "-> nn.Module"
    )


@dataclass(frozen=True)
class BuiltinModel:
    """The factory of a built-in spec (builds with `fedmd_ray.models.build_model`)."""

    spec: str

    def __call__(self, input_shape: tuple[int, int, int], n_classes: int) -> nn.Module:
        from fedmd_ray.models import build_model

        return build_model(self.spec, input_shape, n_classes)


@dataclass(frozen=True)
class ImportedFactory:
    """A factory named by an import path, imported where it is first called (each party process)."""

    path: str

    def __call__(self, input_shape: tuple[int, int, int], n_classes: int) -> nn.Module:
        factory = load_factory(self.path)
        module: nn.Module = factory(input_shape, n_classes)
        return module


@dataclass(frozen=True, eq=False)
class ModelPlugin:
    """A resolved `models` entry: the name in the results, the factory, the identity in fingerprints."""

    name: str
    factory: ModelFactory
    identity: str

    def build(self, input_shape: tuple[int, int, int], n_classes: int) -> nn.Module:
        return self.factory(input_shape, n_classes)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModelPlugin) and other.identity == self.identity

    def __hash__(self) -> int:
        return hash(self.identity)


MODELS: Registry[ModelFactory] = Registry("model")
for _name in model_names():  # the named built-ins, registered like a user's models
    MODELS.register(_name, BuiltinModel(_name), builtin=True)


def register_model(name: str, factory: ModelFactory) -> None:
    """Make `factory(input_shape, n_classes) -> nn.Module` available as `models=(name, ...)` in this
    process (and in the trials of sweeps started from it); party processes receive the factory itself."""
    if not callable(factory):
        raise ConfigError(f"register_model({name!r}, ...) needs a callable factory, got {type(factory).__name__}")
    MODELS.register(name, factory)


def check_model_entry(entry: Any) -> None:
    """Static check (nothing imported or built): a name, a spec, an import path or a callable."""
    if isinstance(entry, str):
        if MODELS.get(entry) is None and not is_import_path(entry):
            parse_model_name(entry)
    elif not callable(entry):
        raise ConfigError(f"models entry {entry!r} is not allowed: must be a name, an import path or a factory")


def resolve_model(entry: ModelEntry) -> ModelPlugin:
    """The `ModelPlugin` of one `models` entry (an import path is imported here, to identify it)."""
    check_model_entry(entry)
    if not isinstance(entry, str):
        return ModelPlugin(describe(entry), entry, object_identity(entry))
    registered = MODELS.get(entry)
    if isinstance(registered, BuiltinModel):
        return ModelPlugin(entry, registered, entry)
    if registered is not None:
        return ModelPlugin(entry, registered, f"{entry}={object_identity(registered)}")
    if is_import_path(entry):
        factory = load_factory(entry)
        return ModelPlugin(entry, ImportedFactory(entry), f"{entry}@{object_identity(factory).partition('@')[2]}")
    parse_model_name(entry)
    return ModelPlugin(entry, BuiltinModel(entry), entry)


def load_factory(path: str) -> ModelFactory:
    """The factory an import path names, checked for what it is before anyone calls it: an `nn.Module`
    subclass, or the user's own function (or callable object) that takes `(input_shape, n_classes)`."""
    what = f"model {path!r}"

    def check(obj: Any) -> None:
        if not callable(obj):
            raise ConfigError(f"{what} is a {type(obj).__name__}, not a factory(input_shape, n_classes)")
        if inspect.isclass(obj):
            if not any(c.__name__ == "Module" and c.__module__.startswith("torch.nn") for c in obj.__mro__):
                raise ConfigError(
                    f"{what} is the class {obj.__qualname__}, not a torch.nn.Module subclass or a "
                    "factory(input_shape, n_classes)"
                )
        else:
            check_users_code(obj, what)
        if not takes_arguments(obj, 2):
            raise ConfigError(
                f"{what} is not a factory(input_shape, n_classes): it cannot be called with those two arguments"
            )

    factory: ModelFactory = load_object(path, what, check)
    return factory


def as_plugin(model: ModelPlugin | ModelEntry) -> ModelPlugin:
    """`model` itself when resolved already, else its resolution."""
    return model if isinstance(model, ModelPlugin) else resolve_model(model)
