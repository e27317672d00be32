"""FedMD (heterogeneous federated learning via model distillation) on Ray.

    >>> import fedmd_ray
    >>> table = fedmd_ray.run(fedmd_ray.preset("quick", rounds=1))  # doctest: +SKIP
"""

from fedmd_ray.analysis.io import load_results
from fedmd_ray.config import FedMDConfig, preset, preset_names
from fedmd_ray.runner import run

__version__ = "0.1.0"

__all__ = ["FedMDConfig", "preset", "preset_names", "run", "load_results", "__version__"]
