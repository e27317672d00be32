"""The long result table: one row per (run_id, party, phase, round).

`phase` is `transfer` (round 0, the baseline), `collaborate` (rounds 1..R) or
`upper_bound` (round 0; the model trained on all parties' private data).
`status` is `ok`, `restarted` (its actor failed and was restarted from the
last round's state: same numbers), `absent` (sat out the round,
`party_dropout`) or `dropped` (failed and left out from then on); the metrics
of absent and dropped parties are null, so means skip them.
"""

from __future__ import annotations

from typing import Any, Iterable

import pyarrow as pa

PHASES = ("transfer", "collaborate", "upper_bound")

RESULT_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("party", pa.int32(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("phase", pa.string(), nullable=False),
        pa.field("round", pa.int32(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("test_accuracy", pa.float64()),
        pa.field("test_loss", pa.float64()),
        pa.field("seconds", pa.float64()),
    ]
)


def rows_to_table(rows: Iterable[dict[str, Any]]) -> pa.Table:
    """Rows (dicts with the schema's keys) as a table sorted by phase order, round, party."""
    order = {p: i for i, p in enumerate(PHASES)}
    ordered = sorted(rows, key=lambda r: (r["run_id"], r["round"], order[r["phase"]], r["party"]))
    return pa.Table.from_pylist(ordered, schema=RESULT_SCHEMA)
