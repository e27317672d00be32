"""The command line: exit codes, messages, no tracebacks on bad input."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fedmd_ray.cli import main


def test_run_quick_local_prints_progress_and_summary(tmp_path, capsys):
    code = main(["run", "--preset", "quick", "--set", "rounds=1", "--set", "backend=local", "--out", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 0
    assert "round 0 (transfer)" in captured.err and "round 1/1" in captured.err
    assert "mean test accuracy: baseline (round 0)" in captured.err
    assert (tmp_path / "results.parquet").exists() and (tmp_path / "config.json").exists()


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--preset", "nope"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_presets_lists_names_sources_and_models(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ("quick", "offline", "offline-fashion", "mnist", "fashion-mnist", "digits", "paper-cnn2-128-256"):
        assert name in out


def test_console_entry_point_on_bad_input_has_no_traceback(tmp_path):
    env = {**os.environ, "FEDMD_RAY_DATA_ROOT": str(tmp_path / "empty")}
    proc = subprocess.run(
        [sys.executable, "-m", "fedmd_ray.cli", "run", "--preset", "offline"],
        capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2
    assert "MNIST not found" in proc.stderr and "fedmd-ray data fetch mnist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_help_everywhere():
    for argv in (["--help"], ["run", "--help"], ["presets", "--help"], ["data", "fetch", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0
