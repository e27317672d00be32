"""The scripts in examples/ are product: each runs end to end, small, with parties on Ray actors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("script, expected", [
    ("custom_model.py", "resnet8"),
    ("custom_data.py", "noisy_digits.npz[5,6,7,8,9]"),
    ("custom_strategy.py", "strategy AgreementWeighted"),
])
def test_example_runs_on_ray_actors(script, expected, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)  # its own local Ray, whatever else runs on the machine
    done = subprocess.run([sys.executable, str(EXAMPLES / script), "--rounds", "1"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=280, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    output = done.stdout + done.stderr
    assert expected in output
    assert "workers ready" in output and "backend ray" in output  # parties in Ray actor processes
    assert "mean test accuracy: baseline (round 0)" in output
