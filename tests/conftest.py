"""Shared fixtures: one small Ray cluster per session, small configs."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.pop("RAY_ADDRESS", None)  # every test uses a Ray of its own, never another job's cluster


@pytest.fixture(scope="session")
def ray_cluster():
    """A local 2-CPU Ray for the session (~3 s once), shut down at the end."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        yield ray
        return
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=True)  # ours, not another job's
    try:
        yield ray
    finally:
        ray.shutdown()
