"""The long result table: one row per (run_id, party, phase, round).

`phase` is `transfer` (round 0, the baseline), `collaborate` (rounds 1..R) or
`upper_bound` (the model trained on all parties' private data; its `round` is null, so
`groupby("round")` leaves it out of round 0).

Communication, counted from the arrays that actually cross between the driver and a
party (numpy `nbytes`): on `collaborate` rows, `bytes_sent` is the party's shared scores
for that round, `bytes_received` the alignment indices (and the next round's, sent with
them when pipelined to a party that takes part in it) and the party's target (one consensus, or its row of personalised
targets). On `transfer` rows, `model_bytes` is the party's parameter bytes: what a
weight-averaging method (FedAvg) would send each way per round (batch-norm running statistics,
buffers rather than parameters, are not counted: a few hundred bytes for the built-ins). Images, data and the
one-time setup are not counted: they are the same for every method.

Transfer health, on `transfer` rows: `train_accuracy` is the party's accuracy on its own
private training data (eval mode, running batch-norm statistics) and
`train_accuracy_batch_stats` the same with each batch's own statistics; a large gap means
the running statistics lag the weights (`precise_bn=true` fixes it). `private_refit` (transfer
and upper-bound rows) is true when the first private fit ended stuck (no better than always
answering the most common class) and a second one, output layer first (`refit_head_epochs`),
was kept instead.
`status` is `ok`, `restarted` (its actor failed and was restarted from the
last round's state: same numbers), `absent` (sat out the round,
`party_dropout`) or `dropped` (failed and left out from then on); the metrics
of absent and dropped parties are null, so means skip them.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

import pyarrow as pa

from fedmd_ray.phases import PHASES

# The result row, declared once: (column, Arrow type, nullable, where the value comes from). A value
# from "evaluation" is that attribute of the `Evaluation` a party returned (None without one); a
# column added since the first release is None in older checkpoints' rows and older tables.
COLUMNS: tuple[tuple[str, pa.DataType, bool, str | None], ...] = (
    ("run_id", pa.string(), False, None),
    ("party", pa.int32(), False, None),
    ("model", pa.string(), False, None),
    ("phase", pa.string(), False, None),
    ("round", pa.int32(), True, None),
    ("status", pa.string(), False, None),
    ("test_accuracy", pa.float64(), True, "accuracy"),
    ("test_loss", pa.float64(), True, "loss"),
    ("seconds", pa.float64(), True, "seconds"),
    ("bytes_sent", pa.int64(), True, None),  # added: communication
    ("bytes_received", pa.int64(), True, None),
    ("model_bytes", pa.int64(), True, None),
    ("train_accuracy", pa.float64(), True, "train_accuracy"),  # added: transfer health
    ("train_accuracy_batch_stats", pa.float64(), True, "train_accuracy_batch_stats"),
    ("private_refit", pa.bool_(), True, "refit"),
    ("private_classes_held", pa.int32(), True, "classes_held"),  # added: skew health
    ("own_class_predictions", pa.float64(), True, "own_class_predictions"),
)
# pandas metadata: `table.to_pandas()` and `pd.read_parquet` give `round` as the nullable integer Int32 (the
# upper bound's round is null), not float64
_PANDAS = {
    "index_columns": [],
    "column_indexes": [],
    "creator": {"library": "fedmd_ray"},
    "columns": [
        {"name": "round", "field_name": "round", "pandas_type": "int32", "numpy_type": "Int32", "metadata": None}
    ],
}
RESULT_SCHEMA = pa.schema(
    [pa.field(name, kind, nullable=nullable) for name, kind, nullable, _ in COLUMNS],
    metadata={"pandas": json.dumps(_PANDAS)},
)
FIRST_RELEASE = ("run_id", "party", "model", "phase", "round", "status", "test_accuracy", "test_loss", "seconds")
ADDED_COLUMNS = {name: None for name, *_ in COLUMNS if name not in FIRST_RELEASE}
Row = dict[str, Any]


def result_row(
    run_id: str,
    party: int,
    model: str,
    phase: str,
    round_: int | None,
    status: str,
    evaluation: Any | None,
    **extra: Any,
) -> Row:
    """One row of the result table: a party's `evaluation` (an `actors.messages.Evaluation`; None when it
    sat out or was dropped) in `phase` of `round_` (None for the upper bound, which belongs to no round:
    a `groupby("round")` must not mix it into round 0), and `extra` columns (bytes moved)."""
    row: Row = {"run_id": run_id, "party": party, "model": model, "phase": phase, "round": round_, "status": status}
    for name, _, _, attribute in COLUMNS:
        if attribute is not None:
            row[name] = None if evaluation is None else getattr(evaluation, attribute)
    return row | extra


def rows_to_table(rows: Iterable[Row]) -> pa.Table:
    """Rows (dicts with the schema's keys) as a table sorted by phase order, round, party."""
    order = {p: i for i, p in enumerate(PHASES)}
    ordered = sorted(rows, key=lambda r: (r["run_id"], r["round"] or 0, order[r["phase"]], r["party"]))
    return pa.Table.from_pylist([{**ADDED_COLUMNS, **r} for r in ordered], schema=RESULT_SCHEMA)


STRATEGY_STATE_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("round", pa.int32(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("shape", pa.list_(pa.int64()), nullable=False),
        pa.field("values", pa.list_(pa.float64()), nullable=False),
    ]
)
"""The strategy's state after every round (`strategy_state.parquet`), one row per named array:
`np.reshape(values, shape)` gives it back, e.g. KT-pFL's knowledge-coefficient matrix: who
learns from whom, round by round (a round where no party answered repeats the previous state)."""


def state_rows(run_id: str, round_: int, state: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of `STRATEGY_STATE_SCHEMA` for one round's `Strategy.state_dict()`."""
    return [
        {
            "run_id": run_id,
            "round": round_,
            "name": name,
            "shape": list(array.shape),
            "values": array.astype("float64").ravel().tolist(),
        }
        for name, array in sorted(state.items())
    ]
