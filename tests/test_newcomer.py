"""A newcomer's first day: output, logging, config files, defaults, the shared arithmetic."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import pytest
from cli_helpers import run_cli

import fedmd_ray
from fedmd_ray.analysis.metrics import gain, mean_accuracy
from fedmd_ray.cli import main

TINY = ["--preset", "quick", "--set", "backend=local", "--set", "rounds=1", "--set", "torch_threads=1"]


def test_under_the_users_logging_configuration_the_library_prints_nothing_unless_asked(capsys, caplog):
    config = fedmd_ray.preset("quick", backend="local", rounds=1, torch_threads=1)
    fedmd_ray.run(config)  # pytest configured the root logger, as a user's logging.basicConfig would
    assert capsys.readouterr().err == ""
    fedmd_ray.run(config, verbose=True)
    err = capsys.readouterr().err
    assert "round 1/1" in err and "mean test accuracy" in err
    with caplog.at_level(logging.INFO, logger="fedmd_ray"):  # a user's own logging configuration
        fedmd_ray.run(config)
    assert "round 1/1" in caplog.text and capsys.readouterr().err == ""


def test_transfer_learning_reports_each_party_as_it_finishes_with_time_left(capsys):
    fedmd_ray.run(fedmd_ray.preset("quick", backend="local", rounds=0, torch_threads=1), verbose=True)
    lines = [line for line in capsys.readouterr().err.splitlines() if "transferred:" in line]
    assert len(lines) == 3
    assert re.search(r"party 0 transferred: test \d+\.\d%", lines[0]) and "public epoch(s)" in lines[0]
    assert lines[0].endswith("s left") and "1/3 parties" in lines[0] and "3/3 parties, ~0 s left" in lines[-1]


@pytest.mark.timeout(300)
def test_the_cli_is_quiet_about_ray_and_prints_progress_and_where_results_went(tmp_path):
    done = run_cli("run", "--preset", "quick", "--set", "rounds=1", "--set", "torch_threads=1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    err = done.stderr
    assert "Started a local Ray instance" not in err and "Token authentication" not in err
    assert "transferred:" in err and "round 1/1" in err
    written = next(line for line in done.stdout.splitlines() if line.startswith("results: "))
    assert f"{tmp_path}/runs/quick-" in written and Path(written.split(" ", 1)[1]).exists()
    quiet = run_cli("run", *TINY, "--out", str(tmp_path / "q"), env={"FEDMD_RAY_LOG_LEVEL": "WARNING"})
    assert quiet.returncode == 0 and "round 1/1" not in quiet.stderr
    assert "mean test accuracy: " in quiet.stdout and "results: " in quiet.stdout  # as with -q: the result stays


def test_result_files_are_readable_by_colleagues(tmp_path):
    old = os.umask(0o022)
    try:
        assert main(["run", *TINY, "--out", str(tmp_path / "r"), "-q"]) == 0
    finally:
        os.umask(old)
    for name in ("results.parquet", "config.json", "checkpoint.pt"):
        assert (tmp_path / "r" / name).stat().st_mode & 0o777 == 0o644, name


def test_a_preset_shown_as_toml_and_a_runs_config_json_reproduce_the_run(tmp_path, capsys):
    assert main(["presets", "show", "quick"]) == 0
    toml = capsys.readouterr().out
    assert 'models = ["cnn2-8-16", "mlp-64", "cnn1-16"]' in toml and "rounds = 2" in toml
    (tmp_path / "exp.toml").write_text(toml)
    from fedmd_ray.config_file import config_from

    assert config_from(tmp_path / "exp.toml", None, {}).fingerprint() == fedmd_ray.preset("quick").fingerprint()
    assert (
        main(
            [
                "run",
                "--config",
                str(tmp_path / "exp.toml"),
                "--set",
                "backend=local",
                "--set",
                "rounds=1",
                "--set",
                "torch_threads=1",
                "--out",
                str(tmp_path / "a"),
                "-q",
            ]
        )
        == 0
    )
    saved = json.loads((tmp_path / "a" / "config.json").read_text())
    assert saved["config"]["models"] == ["cnn2-8-16", "mlp-64", "cnn1-16"]  # the models that ran
    assert main(["run", "--config", str(tmp_path / "a" / "config.json"), "--out", str(tmp_path / "b"), "-q"]) == 0
    first, second = (fedmd_ray.load_results(tmp_path / d).to_pandas() for d in "ab")
    assert first["test_accuracy"].tolist() == second["test_accuracy"].tolist()


def test_a_json_config_with_a_key_given_twice_is_refused(tmp_path, capsys):
    (tmp_path / "dup.json").write_text('{"rounds": 1, "rounds": 2}')
    assert main(["run", "--config", str(tmp_path / "dup.json")]) == 2
    assert "is not valid JSON: 'rounds' is given twice" in capsys.readouterr().err


def test_presets_fields_list_every_field_by_group_with_the_default_presets_value_and_what_it_does(capsys):
    import dataclasses
    import re

    from fedmd_ray.config import FedMDConfig

    assert main(["presets", "--fields"]) == 0
    out = capsys.readouterr().out
    assert "with the default preset's values" in out
    groups = re.findall(r"^(data|transfer|rounds|strategy|execution):$", out, re.M)
    assert groups == ["data", "transfer", "rounds", "strategy", "execution"]
    listed = dict(re.findall(r"^  (\w+) +(\S+) +\S", out.split("config fields")[1], re.M))
    assert set(listed) == {f.name for f in dataclasses.fields(FedMDConfig)}  # every field, once
    assert listed["revisit_epochs"] == "8" and listed["private_epochs"] == "50"  # the offline preset's, not the class's


def test_report_without_matplotlib_prints_the_summary_and_how_to_get_plots(tmp_path, capsys, monkeypatch):
    assert main(["run", *TINY, "--out", str(tmp_path / "r"), "-q"]) == 0
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    capsys.readouterr()
    assert main(["report", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "mean test accuracy" in out and "pip install 'fedmd-ray[plot]'" in out


def test_the_gain_compares_the_same_parties_and_no_answer_is_no_number():
    before = [{"party": p, "test_accuracy": a} for p, a in enumerate([0.5, 0.6, 0.7])]
    after = [
        {"party": 0, "test_accuracy": None},
        {"party": 1, "test_accuracy": 0.8},
        {"party": 2, "test_accuracy": 0.9},
    ]  # party 0 dropped
    change = gain(before, after)
    assert change.parties == 2 and change.value == pytest.approx(0.2)  # 0.85 - 0.65, not 0.85 - 0.6
    assert mean_accuracy([{"party": 0, "test_accuracy": None}]) is None
    assert gain(before, [{"party": 0, "test_accuracy": None}]).value is None


def test_progress_lines_with_many_parties_show_the_spread_and_the_weakest(caplog):
    from fedmd_ray.runner import _Progress

    rows = [{"party": p, "test_accuracy": 0.5 + p / 100, "status": "ok"} for p in range(100)]
    progress = _Progress()
    with caplog.at_level(logging.INFO, logger="fedmd_ray"):
        progress.phase("transfer", 0, 5, rows)
    line = caplog.records[-1].getMessage()
    assert len(line) < 200 and "weakest: party 0 50.0%, party 1 51.0%, party 2 52.0%" in line and "quartiles" in line


@pytest.mark.timeout(300)
def test_sweep_quiet_prints_the_summary_and_exits_0(ray_cluster, tmp_path, capsys):
    assert (
        main(
            [
                "sweep",
                "--preset",
                "quick",
                "--set",
                "rounds=1",
                "--set",
                "cpus_per_party=0.3",
                "--grid",
                "seed=0,1",
                "--out",
                str(tmp_path),
                "-q",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "trial_id" in out and "gain" in out
