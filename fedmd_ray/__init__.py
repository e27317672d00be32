"""FedMD (heterogeneous federated learning via model distillation) on Ray.

    >>> import fedmd_ray
    >>> table = fedmd_ray.run(fedmd_ray.preset("quick", rounds=1), out_dir="runs/q")  # doctest: +SKIP
    >>> model = fedmd_ray.load_party_model("runs/q", party=0)  # doctest: +SKIP

Plug-in points (see docs/extending.md): `register_model` / a factory / "pkg.mod:factory"
for models, `register_source` / `LabeledImages` / .npz / image folders for data, and
`Strategy` subclasses for distillation methods.
"""

from typing import TYPE_CHECKING

from fedmd_ray.plugins import current_directory_last, in_ray_worker

if in_ray_worker():  # before anything else is imported: see `current_directory_last`
    current_directory_last()

from fedmd_ray.config import FedMDConfig, preset, preset_names
from fedmd_ray.data.images import LabeledImages, Split
from fedmd_ray.data.resolve import register_source
from fedmd_ray.errors import (
    ConfigError,
    DataError,
    FedMDError,
    NoPartyLeft,
    PartyFailure,
    PluginError,
    ResourceError,
    TrialsFailed,
)
from fedmd_ray.model_registry import register_model
from fedmd_ray.strategy import FedMD, RoundInfo, Strategy, register_strategy

if TYPE_CHECKING:
    from fedmd_ray.analysis.io import load_results
    from fedmd_ray.data.task import load_task
    from fedmd_ray.experiment import check
    from fedmd_ray.party_models import load_party_model
    from fedmd_ray.runner import run
    from fedmd_ray.sweeps import sweep

__version__ = "0.2.0"

__all__ = [
    "FedMDConfig",
    "preset",
    "preset_names",
    "run",
    "sweep",
    "check",
    "load_results",
    "load_party_model",
    "load_task",
    "register_model",
    "register_source",
    "register_strategy",
    "Strategy",
    "FedMD",
    "RoundInfo",
    "LabeledImages",
    "Split",
    "__version__",
    "FedMDError",
    "ConfigError",
    "DataError",
    "ResourceError",
    "PartyFailure",
    "NoPartyLeft",
    "PluginError",
    "TrialsFailed",
]


def __getattr__(name: str) -> object:
    """`run`, `sweep`, `check` and `load_results` import torch, Ray Tune and pyarrow on first use, so
    that processes importing a submodule (the driver actor, the CLI's `--help`) stay light."""
    if name == "run":
        from fedmd_ray.runner import run

        return run
    if name == "sweep":
        from fedmd_ray.sweeps import sweep

        return sweep
    if name == "check":
        from fedmd_ray.experiment import check

        return check
    if name == "load_results":
        from fedmd_ray.analysis.io import load_results

        return load_results
    if name == "load_party_model":
        from fedmd_ray.party_models import load_party_model

        return load_party_model
    if name == "load_task":
        from fedmd_ray.data.task import load_task

        return load_task
    raise AttributeError(f"module 'fedmd_ray' has no attribute {name!r}")
