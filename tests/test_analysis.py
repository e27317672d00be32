"""Sweep summaries and plots from hand-made tables: no Ray, no training."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest
from PIL import Image

from fedmd_ray.analysis.metrics import harm
from fedmd_ray.analysis.plots import plot_sweep
from fedmd_ray.analysis.summary import format_summary, summarize, sweep_summary


def _trial(trial_id: str, lr: float | None, accuracies: list[float | None], party: int = 0) -> list[dict]:
    """One party's rows of one trial: round 0 (transfer), then one collaborate row per accuracy."""
    phases = ["transfer"] + ["collaborate"] * (len(accuracies) - 1)
    return [
        dict(
            run_id="r",
            party=party,
            model=f"mlp-{party}",
            phase=phase,
            round=r,
            status="ok" if a is not None else "absent",
            test_accuracy=a,
            test_loss=None,
            seconds=None,
            trial_id=trial_id,
            collab_lr=lr,
        )
        for r, (phase, a) in enumerate(zip(phases, accuracies))
    ]


def test_harm_names_the_party_furthest_below_its_round_0_and_the_lowest_round_of_the_same_parties():
    rows = (
        _trial("t", None, [0.80, 0.78, 0.79, 0.77], party=0)  # ends -0.03: the worst
        + _trial("t", None, [0.40, 0.50, None, 0.60], party=1)  # absent in round 2
        + _trial("t", None, [0.60, 0.60, 0.59, None], party=2)
    )  # ends on round 2: -0.01
    hurt = harm(rows)
    assert (hurt.worst_party, hurt.worst_party_model) == (0, "mlp-0")
    assert math.isclose(hurt.worst_party_change, -0.03)
    # round means against round 0 over the parties in both: r1 +0.08/3, r2 (parties 0, 2) -0.02/2, r3 (0, 1) +0.17/2
    assert hurt.lowest_round == 2 and math.isclose(hurt.lowest_round_change, -0.01)
    line = format_summary(summarize(pa.Table.from_pylist(rows)))
    assert "worst party: 0 (mlp-0), -3.0 points from round 0 to its last round" in line
    assert "worst round: round 2, the round whose mean stood lowest against round 0: -1.0 points" in line
    summary = sweep_summary(pa.Table.from_pylist(rows), []).to_pylist()[0]
    assert (summary["worst_party"], summary["worst_party_model"]) == (0, "mlp-0")
    assert math.isclose(summary["worst_party_change"], -0.03) and math.isclose(summary["lowest_round_change"], -0.01)
    no_rounds = harm(_trial("t", None, [0.5]))
    assert no_rounds.worst_party is None and no_rounds.lowest_round is None
    assert "worst round" not in format_summary(summarize(pa.Table.from_pylist(_trial("t", None, [0.5]))))


def test_a_trial_without_a_final_accuracy_sorts_last():
    table = pa.Table.from_pylist(
        _trial("a", 1e-3, [0.5, None]) + _trial("b", 1e-4, [0.5, 0.6]) + _trial("c", None, [0.5, 0.4])
    )
    summary = sweep_summary(table, ["collab_lr"]).to_pylist()
    assert [r["trial_id"] for r in summary] == ["b", "c", "a"]
    assert summary[-1]["gain"] is None  # no party answered in its last round: no number, never 0.0


def test_sweep_plots_show_a_field_swept_to_none(tmp_path):
    """None (the field's default) is a value of the sweep like any other, not a missing one."""
    rows = [
        dict(trial_id=f"t{i}", collab_lr=lr, subset_size=size, gain=0.01 * i)
        for i, (lr, size) in enumerate([(None, 100), (5e-4, 100), (None, 200), (5e-4, 200)])
    ]
    paths = plot_sweep(pa.Table.from_pylist(rows), ["collab_lr", "subset_size"], tmp_path)
    assert sorted(p.name for p in paths) == ["gain_heatmap.png", "gain_vs_collab_lr.png", "gain_vs_subset_size.png"]
    for path in paths:
        assert Image.open(path).size == (800, 500)


def test_trials_of_a_grid_over_a_number_and_a_word_make_one_table():
    """`--grid revisit_shift=1,auto`: an int column and a text column do not concatenate as they are; the
    sweep's table holds that field as text, and a field swept over numbers only stays numeric."""
    from fedmd_ray.sweeps.trainable import concat_trials, swept_columns

    base = pa.table({"round": [0, 1]})
    grid = [(1, None), ("auto", 1e-3), (2, None)]
    tables = [swept_columns(base, f"t{i}", {"revisit_shift": v, "collab_lr": lr, "seed": i}) for i, (v, lr) in
              enumerate(grid)]  # fmt: skip
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):
        pa.concat_tables(tables, promote_options="default")
    joined = concat_trials(tables)
    assert joined.column("revisit_shift").to_pylist() == ["1", "1", "auto", "auto", "2", "2"]
    assert joined.column("seed").to_pylist() == [0, 0, 1, 1, 2, 2]
    assert joined.column("collab_lr").to_pylist() == [None, None, 1e-3, 1e-3, None, None]  # None and a number
    numbers = concat_trials([swept_columns(base, f"t{i}", {"revisit_shift": i}) for i in range(2)])
    assert numbers.column("revisit_shift").type == pa.int64()


def test_a_table_from_before_a_column_was_added_loads_with_nulls_there_and_bools_load(tmp_path):
    """Columns added since the first release (`ADDED_COLUMNS`) may be missing from older tables; a
    current table's boolean column (`private_refit`) is its own type, not a foreign one."""
    import pyarrow.parquet as pq

    from fedmd_ray.analysis.io import load_results
    from fedmd_ray.analysis.schema import ADDED_COLUMNS, rows_to_table

    rows = [dict(r, private_refit=r["round"] == 0) for r in _trial("a", None, [0.5, 0.6])]
    current = rows_to_table([{k: v for k, v in r.items() if k not in ("trial_id", "collab_lr")} for r in rows])
    pq.write_table(current, tmp_path / "now.parquet")
    assert load_results(tmp_path / "now.parquet").column("private_refit").to_pylist() == [True, False]
    pq.write_table(current.drop(list(ADDED_COLUMNS)), tmp_path / "older.parquet")
    older = load_results(tmp_path / "older.parquet")
    assert all(older.column(name).null_count == 2 for name in ADDED_COLUMNS)
    assert older.column("test_accuracy").to_pylist() == [0.5, 0.6]
