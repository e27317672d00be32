"""Watching a run: the metrics of every round, as a sweep reports them to Tune, for your tools.

`fedmd_ray.run(config, callbacks=[...])` calls each callback after round 0 (transfer
learning) and after every round with the metrics a sweep's trial reports to Tune
(`analysis.metrics.round_metrics`): `round`, `mean_accuracy`, `mean_gain` (against round 0,
over the parties present in both), `parties_in_gain` and `party_<id>_accuracy`; and once at the
end with the run's table. A callback is any callable taking the metrics, or an object with
`on_round(metrics)` (and optionally `on_end(table)`). Built in: `TensorBoard(log_dir)`
(tensorboardX, which Ray Tune installs) and `MLflow(...)` (`pip install fedmd-ray[mlflow]`);
the CLI's `--tensorboard DIR` and `--mlflow URI` add them.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Protocol, Union, cast

import pyarrow as pa

from fedmd_ray.errors import ConfigError

Metrics = dict[str, Any]


class RoundCallback(Protocol):
    def on_round(self, metrics: Metrics) -> None: ...


Callback = Union[RoundCallback, Callable[[Metrics], None]]


def call_round(callbacks: list[Callback], metrics: Metrics) -> None:
    for callback in callbacks:
        on_round = cast(Callable[[Metrics], None], getattr(callback, "on_round", callback))
        on_round(metrics)


def call_end(callbacks: list[Callback], table: pa.Table) -> None:
    for callback in callbacks:
        on_end = getattr(callback, "on_end", None)
        if on_end is not None:
            on_end(table)


class TensorBoard:
    """Every round's metrics as TensorBoard scalars (`fedmd/mean_accuracy`, `fedmd/party_3_accuracy`, ...)
    at step = round, in `log_dir` (`tensorboard --logdir DIR`). The path is checked here and the directory
    created at the first round: a run refused before it starts leaves nothing behind."""

    def __init__(self, log_dir: str | os.PathLike[str]) -> None:
        from fedmd_ray.outdir import as_path

        self.log_dir = as_path(log_dir, "tensorboard log_dir")
        blocked = next((p for p in (self.log_dir, *self.log_dir.parents) if p.exists() and not p.is_dir()), None)
        if blocked is not None:
            raise ConfigError(f"tensorboard log_dir {self.log_dir}: {blocked} is a file, not a directory")
        self.writer: Any = None

    def on_round(self, metrics: Metrics) -> None:
        if self.writer is None:
            from tensorboardX import SummaryWriter

            self.writer = SummaryWriter(str(self.log_dir))
        for name, value in metrics.items():
            if name != "round" and isinstance(value, (int, float)):
                self.writer.add_scalar(f"fedmd/{name}", value, metrics["round"])
        self.writer.flush()

    def on_end(self, table: pa.Table) -> None:
        if self.writer is not None:
            self.writer.close()


class MLflow:
    """Every round's metrics logged to an MLflow run (step = round), in the experiment `experiment` at
    `tracking_uri` (a directory works: MLflow's file store). Needs `pip install fedmd-ray[mlflow]`; the
    MLflow run starts at the run's first round (a refused run creates none)."""

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment: str = "fedmd_ray",
        run_name: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        try:
            import mlflow
        except ImportError as exc:
            raise ConfigError("the MLflow callback needs mlflow: pip install 'fedmd-ray[mlflow]'") from exc
        self.mlflow = mlflow
        self.tracking_uri, self.experiment, self.run_name, self.params = tracking_uri, experiment, run_name, params
        self.started = False

    def on_round(self, metrics: Metrics) -> None:
        if not self.started:
            if self.tracking_uri is not None:
                self.mlflow.set_tracking_uri(self.tracking_uri)
            self.mlflow.set_experiment(self.experiment)
            self.mlflow.start_run(run_name=self.run_name)
            if self.params:
                self.mlflow.log_params(self.params)
            self.started = True
        values = {k: float(v) for k, v in metrics.items() if k != "round" and isinstance(v, (int, float))}
        self.mlflow.log_metrics(values, step=int(metrics["round"]))

    def on_end(self, table: pa.Table) -> None:
        if self.started:
            self.mlflow.end_run()
