"""The scripts in examples/ are product: each runs end to end, small, with parties on Ray actors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "script, expected",
    [
        ("custom_model.py", "resnet8"),
        ("custom_data.py", "noisy_digits.npz[5,6,7,8,9]"),
        ("custom_strategy.py", "strategy AgreementWeighted"),
    ],
)
def test_example_runs_on_ray_actors(script, expected, tmp_path):
    done = _example(script, tmp_path, "--rounds", "1")
    output = done.stdout + done.stderr
    assert expected in output
    assert "workers ready" in output and "backend ray" in output  # parties in Ray actor processes
    assert "mean test accuracy: " in output and "after transfer learning (round 0)" in output


def _example(script, tmp_path, *arguments):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)  # its own local Ray, whatever else runs on the machine
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *arguments],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_party_models_example_classifies_with_each_partys_model_as_the_run_measured(tmp_path):
    done = _example("party_models.py", tmp_path, "--rounds", "1", "--out", str(tmp_path / "run"))
    lines = [line for line in done.stdout.splitlines() if "test accuracy" in line]
    assert len(lines) == 3  # the quick preset's three parties, each loaded and tried on the test images
    for line in lines:  # the loaded model scores what the run's table says it scored
        mine, table = re.findall(r"(\d+\.\d)%", line)[:2]
        assert mine == table, line
    assert sorted(p.name for p in (tmp_path / "run" / "models").iterdir()) == [
        "party-000.pt",
        "party-001.pt",
        "party-002.pt",
    ]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_watch_example_hears_every_round_and_writes_tensorboard_scalars(tmp_path):
    done = _example("watch_a_run.py", tmp_path, "--rounds", "2", "--tensorboard", str(tmp_path / "tb"))
    gains = re.search(r"mean gain by round \(points\): (.*)", done.stdout).group(1).split()
    assert len(gains) == 3 and gains[0] == "+0.0"  # round 0, then rounds 1 and 2; round 0 against itself
    assert "best round:" in done.stdout
    assert "round 2/2" in done.stderr and "workers ready" in done.stderr  # progress shown by default
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
