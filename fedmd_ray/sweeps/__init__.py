"""Hyperparameter sweeps of FedMD on Ray Tune: one trial = one run."""

from fedmd_ray.sweeps.tuner import sweep

__all__ = ["sweep"]
