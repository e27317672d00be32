"""A run's files in its output directory, written so that no crash and no full disk loses a run.

What a run directory holds: `config.json` (the config, its identity, the run id and the
environment), `results.parquet` (every finished phase's rows), `checkpoint.pt` (what a
resume needs after the last finished round) and, for strategies with state,
`strategy_state.parquet`. Every file is replaced whole (`analysis.io.replace_files`).

Nothing is written before the end of transfer learning. The run's first save writes all
of its files, and only once every one of them is on disk are they renamed over what the
directory held: a finished run that `--overwrite` replaces stays whole until then, also
when the disk fills up or the new run crashes. From then on, results are written after
every phase and checkpoints after every round (in the background: see `CheckpointWriter`).
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from fedmd_ray.actors.messages import PartyState
from fedmd_ray.analysis.io import json_bytes, replace_files, table_bytes, write_table
from fedmd_ray.analysis.schema import STRATEGY_STATE_SCHEMA, rows_to_table, state_rows
from fedmd_ray.checkpoint import Checkpoint, CheckpointWriter, checkpoint_bytes
from fedmd_ray.errors import DiskFull
from fedmd_ray.outdir import CHECKPOINT_FILE, CONFIG_FILE, MODELS_DIR, RESULTS_FILE, STRATEGY_STATE_FILE, claim_out_dir
from fedmd_ray.strategy import StrategyState

Row = dict[str, Any]
RUN_FILES = (CONFIG_FILE, RESULTS_FILE, CHECKPOINT_FILE, STRATEGY_STATE_FILE)


@contextlib.contextmanager
def open_files(
    target: Path | None, header: dict[str, Any], resumed: Checkpoint | None, overwrite: bool, resume: bool
) -> Iterator[RunFiles | NoFiles]:
    """The run's files in `target`, claimed (`outdir.claim_out_dir`: created, locked, checked again) for the
    body and closed after it (the last checkpoint on disk); `NoFiles` when the run writes none."""
    if target is None:
        yield NoFiles()
        return
    with claim_out_dir(target, replace=overwrite, resume=resume):
        files = RunFiles(target, header, resumed)
        try:
            yield files
        finally:
            files.close()


class NoFiles:
    """A run without an output directory: nothing is written."""

    def phase(self, rows: list[Row]) -> None:
        pass

    def models(self, weights: dict[int, PartyState], about: dict[int, dict[str, Any]], round_: int | None) -> None:
        pass

    def checkpointer(self, run_id: str, rows: list[Row]) -> None:
        return None


class RunFiles:
    """The files of one run in `directory` (locked by the caller: `outdir.claim_out_dir`)."""

    def __init__(self, directory: Path, header: dict[str, Any], resumed: Checkpoint | None) -> None:
        """`header`: what `config.json` holds. `resumed`: the checkpoint a resumed run continues from
        (its files are there already; the strategy's history is kept up to that round)."""
        self.directory = directory
        self._header = header
        self._saved = resumed is not None  # the run's own files are in the directory
        self._state_rows: list[Row] = [] if resumed is None else self._history(resumed.round)
        self._writer = CheckpointWriter(directory)
        self._pending_models: list[Callable[[], None]] = []  # asked for before the first save: written by it

    def phase(self, rows: list[Row]) -> None:
        """A phase finished: the table so far (before the first checkpoint it waits for it)."""
        if self._saved:
            self._write(lambda: write_table(rows_to_table(rows), self.directory / RESULTS_FILE))

    def checkpoint(self, checkpoint: Checkpoint) -> None:
        """A round finished (0: transfer learning): its checkpoint, and the strategy's state by round."""
        if checkpoint.strategy_state:
            self._state_rows.extend(state_rows(checkpoint.fingerprint, checkpoint.round, checkpoint.strategy_state))
        if not self._saved:
            self._write(lambda: self._first_save(checkpoint))
            self._saved = True
            return
        self._write(lambda: self._writer.submit(checkpoint))
        if checkpoint.strategy_state:
            self._write(lambda: write_table(self._state_table(), self.directory / STRATEGY_STATE_FILE))

    def checkpointer(self, run_id: str, rows: list[Row]) -> Callable[[int, dict[int, PartyState], StrategyState], None]:
        """What `runner.run_phases` calls after every finished round: a checkpoint of `rows` as they are then."""

        def save(round_: int, states: dict[int, PartyState], strategy_state: StrategyState) -> None:
            self.checkpoint(Checkpoint(run_id, round_, list(rows), states, strategy_state))

        return save

    def models(self, weights: dict[int, PartyState], about: dict[int, dict[str, Any]], round_: int | None) -> None:
        """Each party's model (`party_models`): after `round_`, or (None) the run's last."""
        from fedmd_ray.party_models import write_models

        def write() -> None:
            write_models(self.directory, weights, about, round_)

        if self._saved:
            self._write(write)
        else:
            self._pending_models.append(write)

    def close(self) -> None:
        """Wait for the last checkpoint to be on disk."""
        self._write(self._writer.close)

    def _first_save(self, checkpoint: Checkpoint) -> None:
        """Every file of the run staged first, then renamed into place (an old run's too)."""
        contents = {
            CONFIG_FILE: json_bytes(self._header),
            RESULTS_FILE: table_bytes(rows_to_table(checkpoint.rows)),
            CHECKPOINT_FILE: checkpoint_bytes(checkpoint),
        }
        if self._state_rows:
            contents[STRATEGY_STATE_FILE] = table_bytes(self._state_table())
        stale = tuple(self.directory / name for name in RUN_FILES if name not in contents)
        replace_files({self.directory / name: data for name, data in contents.items()}, remove=stale)
        if (self.directory / MODELS_DIR).is_dir():  # an overwritten run's: never beside another run's table
            shutil.rmtree(self.directory / MODELS_DIR)
        for write in self._pending_models:
            write()
        self._pending_models.clear()

    def _state_table(self) -> pa.Table:
        return pa.Table.from_pylist(self._state_rows, schema=STRATEGY_STATE_SCHEMA)

    def _history(self, round_: int) -> list[Row]:
        """The strategy-state rows a resumed run keeps: those up to its checkpoint's round."""
        path = self.directory / STRATEGY_STATE_FILE
        if not path.exists():
            return []
        return [r for r in pq.read_table(path).to_pylist() if r["round"] <= round_]

    def _write(self, write: Callable[[], None]) -> None:
        """`write()`, with what a full disk leaves behind said in its message."""
        try:
            write()
        except DiskFull as exc:
            kept = (
                "the files of its last finished round are kept: free some space and continue it with --resume"
                if self._saved
                else "nothing of it was written, and what the directory held before is kept as it was"
            )
            raise DiskFull(f"{exc}. The run stopped; {kept}") from None
