"""What a run's numbers depend on beyond its config: library versions and the CPU.

On CPU a run is bit-identical only in the same environment: numpy and torch builds and the
CPU's vector instruction set change the last bits of floating-point sums and exponentials, and
over many rounds of distillation such differences grow to points in a single party's accuracy
(README, Reproducibility). Runs and sweeps save this next to their config so that two runs
that should agree but do not can be told apart.
"""

from __future__ import annotations

import platform


def environment() -> dict[str, str]:
    """Versions of the packages that compute, the host, and the instruction set torch uses on CPU."""
    import numpy
    import pyarrow
    import ray
    import torch

    from fedmd_ray import __version__

    return {
        "fedmd_ray": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "ray": ray.__version__,
        "pyarrow": pyarrow.__version__,
        "host": platform.node(),
        "cpu": f"{platform.machine()} {torch.backends.cpu.get_cpu_capability()}",
    }
