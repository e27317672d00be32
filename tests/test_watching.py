"""Watching a run: progress by default, callbacks with the metrics a sweep reports, TensorBoard, MLflow."""

from __future__ import annotations

import io
import logging
import struct
import sys
import types

import pytest
from cli_helpers import run_python

import fedmd_ray
from fedmd_ray.analysis.metrics import round_metrics
from fedmd_ray.callbacks import MLflow, TensorBoard
from fedmd_ray.cli import main

QUICK = dict(backend="local", torch_threads=1)


def test_callbacks_hear_every_round_with_the_metrics_a_sweep_reports_then_the_table(tmp_path):
    heard, ends = [], []

    class Watcher:
        def on_round(self, metrics):
            heard.append(metrics)

        def on_end(self, table):
            ends.append(table)

    plain: list[dict] = []
    table = fedmd_ray.run(
        fedmd_ray.preset("quick", rounds=2, **QUICK), callbacks=[Watcher(), plain.append], verbose=False
    )
    rows = table.to_pylist()
    assert [m["round"] for m in heard] == [0, 1, 2] and plain == heard
    for metrics in heard:  # what the trainable reports to Tune, computed the same way
        assert metrics == round_metrics(rows, metrics["round"])
    assert set(heard[-1]) >= {"mean_accuracy", "mean_gain", "parties_in_gain", "party_0_accuracy"}
    assert len(ends) == 1 and ends[0].equals(table)


def _scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    """The scalars in a TensorBoard event file (TFRecord framing, tensorboardX's protobuf classes)."""
    from tensorboardX.proto.event_pb2 import Event

    found: dict[str, list[tuple[int, float]]] = {}
    for path in log_dir.glob("events.out.tfevents.*"):
        data = path.read_bytes()
        at = 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at : at + 8])
            event = Event.FromString(data[at + 12 : at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                found.setdefault(value.tag, []).append((event.step, value.simple_value))
    return found


def test_tensorboard_gets_every_rounds_scalars_from_the_cli(tmp_path, capsys):
    code = main(
        [
            "run",
            "--preset",
            "quick",
            "--set",
            "rounds=2",
            "--set",
            "backend=local",
            "--out",
            str(tmp_path / "run"),
            "--tensorboard",
            str(tmp_path / "tb"),
            "-q",
        ]
    )
    assert code == 0
    scalars = _scalars(tmp_path / "tb")
    table = fedmd_ray.load_results(tmp_path / "run").to_pylist()
    assert [step for step, _ in scalars["fedmd/mean_accuracy"]] == [0, 1, 2]
    assert scalars["fedmd/mean_accuracy"][-1][1] == pytest.approx(round_metrics(table, 2)["mean_accuracy"])
    assert "fedmd/party_2_accuracy" in scalars


def test_mlflow_logs_every_rounds_metrics_at_its_step(monkeypatch):
    calls: list[tuple] = []
    fake = types.SimpleNamespace(
        set_tracking_uri=lambda uri: calls.append(("uri", uri)),
        set_experiment=lambda name: calls.append(("experiment", name)),
        start_run=lambda run_name=None: calls.append(("start", run_name)),
        log_params=lambda params: calls.append(("params", params)),
        log_metrics=lambda values, step: calls.append(("metrics", step, values)),
        end_run=lambda: calls.append(("end",)),
    )
    monkeypatch.setitem(sys.modules, "mlflow", fake)
    watcher = MLflow("file:/tmp/nowhere", params={"rounds": 1})
    fedmd_ray.run(fedmd_ray.preset("quick", rounds=1, **QUICK), callbacks=[watcher], verbose=False)
    steps = [c[1] for c in calls if c[0] == "metrics"]
    assert calls[:4] == [
        ("uri", "file:/tmp/nowhere"),
        ("experiment", "fedmd_ray"),
        ("start", None),
        ("params", {"rounds": 1}),
    ]
    assert steps == [0, 1] and calls[-1] == ("end",)
    assert "mean_accuracy" in calls[-2][2] and "round" not in calls[-2][2]


def test_without_mlflow_installed_the_callback_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import fails as if not installed
    with pytest.raises(fedmd_ray.ConfigError, match=r"fedmd-ray\[mlflow\]"):
        MLflow()


def test_the_cli_refuses_mlflow_when_it_is_not_installed_before_writing_anything(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    argv = ["run", "--preset", "quick", "--set", "backend=local", "--out", str(tmp_path / "r")]
    assert main([*argv, "--mlflow", str(tmp_path / "ml")]) == 2
    assert "pip install 'fedmd-ray[mlflow]'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_tensorboard_writer_skips_non_numbers(tmp_path):
    board = TensorBoard(str(tmp_path))
    board.on_round({"round": 3, "mean_accuracy": 0.5, "note": "text"})
    board.on_end(None)
    assert _scalars(tmp_path) == {"fedmd/mean_accuracy": [(3, 0.5)]}


@pytest.mark.timeout(300)
def test_run_from_a_plain_python_script_shows_its_progress_and_false_silences_it(tmp_path):
    script = (
        "import sys, fedmd_ray\n"
        "fedmd_ray.run(fedmd_ray.preset('quick', rounds=1, backend='local', torch_threads=1),"
        " verbose={'default': None, 'off': False}[sys.argv[1]])\n"
    )
    shown = run_python("-c", script, "default", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "round 1/1" in shown.stderr and "mean test accuracy" in shown.stderr and shown.stdout == ""
    silent = run_python("-c", script, "off", cwd=tmp_path)
    assert silent.returncode == 0 and silent.stderr == "", silent.stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_progress_bar_only_on_a_terminal():
    from fedmd_ray.log import LOGGER, configured, progress_bar

    with configured(logging.INFO):
        assert progress_bar(3, "rounds", "round") is None  # pytest captures stderr: not a terminal
        terminal = _Terminal()
        ours = next(h for h in LOGGER.handlers if h.get_name() == "fedmd_ray")
        ours.setStream(terminal)
        bar = progress_bar(3, "rounds", "round")
        bar.update(1)
        LOGGER.info("a progress line")  # written above the bar, not through it
        bar.close()
    assert "rounds:" in terminal.getvalue() and "a progress line\n" in terminal.getvalue()
