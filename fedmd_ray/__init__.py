"""FedMD (heterogeneous federated learning via model distillation) on Ray.

    >>> import fedmd_ray
    >>> table = fedmd_ray.run(fedmd_ray.preset("quick", rounds=1))  # doctest: +SKIP
"""

from typing import TYPE_CHECKING

from fedmd_ray.config import FedMDConfig, preset, preset_names

if TYPE_CHECKING:
    from fedmd_ray.analysis.io import load_results
    from fedmd_ray.runner import run
    from fedmd_ray.sweeps import sweep

__version__ = "0.1.0"

__all__ = ["FedMDConfig", "preset", "preset_names", "run", "sweep", "load_results", "__version__"]


def __getattr__(name: str) -> object:
    """`run`, `sweep` and `load_results` import torch, Ray Tune and pyarrow on first use, so
    that processes importing a submodule (the driver actor, the CLI's `--help`) stay light."""
    if name == "run":
        from fedmd_ray.runner import run

        return run
    if name == "sweep":
        from fedmd_ray.sweeps import sweep

        return sweep
    if name == "load_results":
        from fedmd_ray.analysis.io import load_results

        return load_results
    raise AttributeError(f"module 'fedmd_ray' has no attribute {name!r}")
