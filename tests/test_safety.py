"""Safe defaults: Ray's token authentication stays on, no dashboard, no pickled code is ever loaded."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fedmd_ray"

PROBE = """
import socket
import fedmd_ray
from fedmd_ray.experiment import prepare
from fedmd_ray.runner import iterate_phases
from ray._private.authentication.authentication_utils import is_token_auth_enabled

seen = {}
def check(hosts):
    seen["token"] = is_token_auth_enabled()
    seen["dashboard_port_open"] = socket.socket().connect_ex(("127.0.0.1", 8265)) == 0
config = fedmd_ray.preset("quick", rounds=0, upper_bound=False)
for _ in iterate_phases(prepare(config), on_start=check):
    pass
print(seen)
"""


@pytest.mark.timeout(180)
def test_a_cluster_started_by_fedmd_ray_has_token_auth_and_no_dashboard():
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=170, env=env, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "{'token': True, 'dashboard_port_open': False}" in done.stdout


def _calls(name: str) -> list[tuple[Path, ast.Call]]:
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith(name):
                found.append((path, node))
    return found


def test_every_torch_load_refuses_pickled_code():
    loads = _calls("torch.load")
    assert loads
    for path, call in loads:
        assert any(k.arg == "weights_only" and ast.unparse(k.value) == "True" for k in call.keywords), path


def test_no_plain_unpickling_and_no_auth_switch_in_the_package():
    """Files are never unpickled. The one `pickle.loads` unpacks plug-ins that this job's own processes
    packed and Ray carried (`actors/portable.py`): the trust of every Ray argument, never a file's."""
    assert not _calls("pickle.load")
    assert [path.name for path, _ in _calls("pickle.loads")] == ["portable.py"]
    for path in PACKAGE.rglob("*.py"):
        assert "RAY_AUTH_MODE" not in path.read_text(), path
