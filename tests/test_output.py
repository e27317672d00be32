"""One output convention: results on stdout, progress on stderr, % and points, readable widths, plots that
say what they show, settings a user can discover and read back."""

from __future__ import annotations

import json
import re

import pandas as pd
import pyarrow as pa
import pytest
from cli_helpers import run_cli

import fedmd_ray
from fedmd_ray.analysis.summary import WIDTH, format_run, format_sweep_summary, sweep_summary
from fedmd_ray.cli import main
from fedmd_ray.config import PRESETS
from fedmd_ray.config_file import config_from

TINY = ["--preset", "quick", "--set", "backend=local", "--set", "rounds=1", "--set", "torch_threads=1"]
FRACTION = re.compile(r"(?<![\d.])0\.\d{2,}")  # 0.813: an accuracy printed as a fraction


def _trial_rows(trial: str, params: dict, accuracies: list[float]) -> list[dict]:
    return [
        dict(
            run_id=trial,
            party=p,
            model="cnn2-8-16",
            phase="transfer" if r == 0 else "collaborate",
            round=r,
            status="ok",
            test_accuracy=a - p / 100,
            test_loss=0.1,
            seconds=1.0,
            bytes_sent=10,
            bytes_received=10,
            model_bytes=100,
            trial_id=trial,
            trial_status="finished",
            **params,
        )
        for p in range(3)
        for r, a in enumerate(accuracies)
    ]


def test_the_sweep_summary_fits_120_columns_with_long_swept_values_and_report_shows_every_column():
    long_models = "cnn2-8-16,cnn3-6-12-24,mlp-512-256-128,paper-cnn2-128-256,mypackage.nets:resnet8"
    rows = [
        row
        for i in range(4)
        for row in _trial_rows(
            f"a1b2c_0000{i}", {"models": long_models + str(i), "subset_size": 1000 * i}, [0.6, 0.7 + i / 100]
        )
    ]
    summary = sweep_summary(pa.Table.from_pylist(rows), ["models", "subset_size"])
    text = format_sweep_summary(summary)
    assert max(map(len, text.splitlines())) <= WIDTH
    assert "a1b2c_00003" in text and "+11.0" in text and "59.0%" in text and not FRACTION.search(text)
    wide = format_sweep_summary(summary, wide=True)
    assert long_models + "3" in wide and "worst_party_model" in wide and not FRACTION.search(wide)


def test_summaries_speak_in_percent_and_points(tmp_path, capsys):
    assert main(["run", *TINY, "--out", str(tmp_path), "-q"]) == 0
    out = capsys.readouterr().out
    assert re.search(
        r"mean test accuracy: \d+\.\d% after transfer learning \(round 0\), \d+\.\d% after round 1 "
        r"\([+-]\d+\.\d points\); upper bound \d+\.\d%",
        out,
    )
    assert "worst round: round 1, the round whose mean stood lowest against round 0:" in out
    assert not FRACTION.search(out), out
    text = format_run(fedmd_ray.load_results(tmp_path), 5)
    assert not FRACTION.search(text)


def test_quiet_run_writes_the_summary_and_paths_to_stdout_and_nothing_else_to_stderr(tmp_path, capsys):
    assert main(["run", *TINY, "--out", str(tmp_path), "-q"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    lines = captured.out.splitlines()
    assert lines[-1] == f"results: {tmp_path / 'results.parquet'}"
    assert lines[-2] == f"party models: {tmp_path / 'models'} (fedmd_ray.load_party_model(DIR, party))"


def test_verbose_adds_fedmd_rays_own_debug_lines(tmp_path, capsys):
    assert main(["run", *TINY, "--out", str(tmp_path), "-v"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"run [0-9a-f]{16} \(custom \(from quick: rounds, torch_threads\)\)", err)
    assert re.search(r"worker pid \d+ on .* \(cpu\): parties 0", err)


def test_round_is_an_integer_column_in_pandas_and_config_json_names_the_preset(tmp_path):
    table = fedmd_ray.run(fedmd_ray.preset("quick", rounds=1, backend="local"), out_dir=tmp_path, verbose=False)
    assert str(table.to_pandas()["round"].dtype) == "Int32"
    frame = pd.read_parquet(tmp_path / "results.parquet")
    assert str(frame["round"].dtype) == "Int32"
    assert frame.loc[frame.phase == "upper_bound", "round"].isna().all()  # the upper bound belongs to no round
    assert str(fedmd_ray.load_results(tmp_path).to_pandas()["round"].dtype) == "Int32"
    header = json.loads((tmp_path / "config.json").read_text())
    assert header["preset"] == "custom (from quick: rounds)"
    fedmd_ray.run(fedmd_ray.preset("quick"), out_dir=tmp_path / "q", verbose=False)
    assert json.loads((tmp_path / "q" / "config.json").read_text())["preset"] == "quick"


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_show_writes_a_commented_toml_that_config_reads_back_as_the_preset(name, tmp_path, capsys):
    assert main(["presets", "show", name]) == 0
    text = capsys.readouterr().out
    assert '"none"' not in text  # unset fields are commented out, never the string "none"
    assert "# Number of participants." in text and "# --- rounds ---" in text
    path = tmp_path / "preset.toml"
    path.write_text(text)
    expected = fedmd_ray.preset(name)
    assert config_from(str(path), None, {}) == expected.replace(models=expected.party_models)


def test_presets_fields_lists_the_default_presets_values_with_descriptions(capsys):
    assert main(["presets", "--fields"]) == 0
    out = capsys.readouterr().out
    offline = fedmd_ray.preset("offline")
    revisit = next(line for line in out.splitlines() if line.strip().startswith("revisit_epochs "))
    assert repr(offline.revisit_epochs) in revisit.split() and "revisit" in revisit.lower()


def test_data_list_marks_what_is_fetched_and_where(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FEDMD_RAY_DATA_ROOT", str(tmp_path))
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "mnist.npz").write_bytes(b"found, not read")
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    state = {out[i].split()[0]: out[i + 1].strip() for i in range(1, len(out), 2)}
    assert state["mnist"] == f"fetched: {tmp_path / 'mnist' / 'mnist.npz'}"
    assert state["cifar10"].startswith("not fetched (`fedmd-ray data fetch cifar10`")
    assert state["digits"] == "fetched: shipped with scikit-learn"


def test_the_run_plot_names_its_run_draws_each_upper_bound_and_ends_at_the_data(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from fedmd_ray.analysis import plots
    from fedmd_ray.analysis.report import report

    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or path)
    table = fedmd_ray.run(fedmd_ray.preset("quick", seed=3, **dict(backend="local")), out_dir=tmp_path, verbose=False)
    report(tmp_path)
    ax = figures[0].axes[0]
    run_id = table.column("run_id")[0].as_py()
    assert ax.get_title().splitlines()[1] == f"custom (from quick: seed), seed 3, run {run_id}"
    bounds = [100 * r["test_accuracy"] for r in table.to_pylist() if r["phase"] == "upper_bound"]
    drawn = [seg[0][1] for coll in ax.collections for seg in coll.get_segments()]
    for bound in bounds:  # every party's upper bound, not only their mean
        assert any(abs(bound - y) < 1e-9 for y in drawn)
    low, high = ax.get_ylim()
    values = [100 * r["test_accuracy"] for r in table.to_pylist()]
    assert low < min(values) and high > max(values)  # nothing drawn against the frame
    assert ax.get_xlim()[1] < 3.5  # two rounds: the axis ends near the data, not at round 21
    assert "(%)" in ax.get_ylabel()


@pytest.mark.timeout(120)
def test_cli_help_lists_the_new_options():
    done = run_cli("run", "--help", timeout=100)
    assert "--tensorboard DIR" in done.stdout and "--mlflow URI" in done.stdout
