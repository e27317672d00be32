"""Shared fixtures: one small Ray cluster per session, small configs."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.pop("RAY_ADDRESS", None)  # every test uses a Ray of its own, never another job's cluster


@pytest.fixture(scope="session", autouse=True)
def _no_user_data(tmp_path_factory):
    """Point the default data root at an empty directory for the whole session: a test that
    reads data builds it itself, so the suite gives the same result on a fresh machine as on
    one where `fedmd-ray data fetch` has filled ~/.cache (subprocesses and Ray workers inherit it)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FEDMD_RAY_DATA_ROOT", str(tmp_path_factory.mktemp("no-user-data")))
        yield


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


@pytest.fixture
def stopped_and_resumed(tmp_path, monkeypatch):
    """`(config) -> (straight, resumed)`: the run uninterrupted, and the same run stopped by a party
    failure in its last round (`on_party_failure=fail`, checkpoint of the round before), then resumed;
    written to `tmp_path / "straight"` and `tmp_path / "resumed"`, where a test may read their checkpoints."""
    import fedmd_ray
    from fedmd_ray.checkpoint import load_checkpoint
    from fedmd_ray.errors import PartyFailure
    from fedmd_ray.faults import VARIABLE

    def run(config):
        config = config.replace(on_party_failure="fail")
        straight = fedmd_ray.run(config, out_dir=tmp_path / "straight", verbose=False)
        monkeypatch.setenv(VARIABLE, f"party=1,round={config.rounds},method=digest,action=raise")
        with pytest.raises(PartyFailure):
            fedmd_ray.run(config, out_dir=tmp_path / "resumed", verbose=False)
        assert load_checkpoint(tmp_path / "resumed").round == config.rounds - 1
        monkeypatch.delenv(VARIABLE)
        return straight, fedmd_ray.run(config, out_dir=tmp_path / "resumed", resume=True, verbose=False)

    return run
