"""FedMD (heterogeneous federated learning via model distillation) on Ray.

    >>> import fedmd_ray
    >>> table = fedmd_ray.run(fedmd_ray.preset("quick", rounds=1))  # doctest: +SKIP
"""

from fedmd_ray.analysis.io import load_results
from fedmd_ray.config import FedMDConfig, preset, preset_names
from fedmd_ray.runner import run

__version__ = "0.1.0"

__all__ = ["FedMDConfig", "preset", "preset_names", "run", "sweep", "load_results", "__version__"]


def __getattr__(name: str) -> object:
    """`fedmd_ray.sweep` imports Ray Tune only when first used."""
    if name == "sweep":
        from fedmd_ray.sweeps import sweep

        return sweep
    raise AttributeError(f"module 'fedmd_ray' has no attribute {name!r}")
