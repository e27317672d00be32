"""The run's checkpoint: everything needed to continue after the last finished phase.

One file, `checkpoint.pt` in the output directory, replaced atomically (temp
file + fsync + rename) after transfer learning and after every round. It holds
the result rows so far, every party's state (model, both optimizers, RNG
stream), the strategy's state (`Strategy.state_dict`, stored as an .npz archive
without pickles) and the config's fingerprint, so rows and states always belong
to the same round. Nothing else is needed: alignment subsets are drawn from
(seed, round). Read back with `torch.load(weights_only=True)`: tensors and plain
values only, no pickled code.
"""

from __future__ import annotations

import concurrent.futures
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fedmd_ray.actors.messages import PartyState
from fedmd_ray.analysis.io import atomic_write_bytes
from fedmd_ray.errors import ConfigError
from fedmd_ray.outdir import CHECKPOINT_FILE
from fedmd_ray.phases import COLLABORATE
from fedmd_ray.strategy import StrategyState

FORMAT = 2  # 2: with the strategy's state (format 1 files read as a stateless strategy's)


@dataclass(frozen=True)
class Checkpoint:
    fingerprint: str
    round: int  # last finished round (0 = transfer learning)
    rows: list[dict[str, Any]]
    states: dict[int, PartyState]  # party -> `Participant.export_state()`
    strategy_state: StrategyState = field(default_factory=dict)


def _pack(state: StrategyState) -> torch.Tensor:
    buffer = io.BytesIO()
    arrays: dict[str, Any] = dict(state)  # numpy 2's stub would let **kwds reach `allow_pickle: bool`
    np.savez(buffer, **arrays)
    return torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)


def _unpack(packed: torch.Tensor | None) -> StrategyState:
    if packed is None:
        return {}
    with np.load(io.BytesIO(packed.numpy().tobytes()), allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def save_checkpoint(directory: Path, checkpoint: Checkpoint) -> None:
    atomic_write_bytes(directory / CHECKPOINT_FILE, checkpoint_bytes(checkpoint))


def checkpoint_bytes(checkpoint: Checkpoint) -> bytes:
    """The checkpoint file's contents (`torch.save` of tensors and plain values only)."""
    payload = {
        "format": FORMAT,
        "fingerprint": checkpoint.fingerprint,
        "round": checkpoint.round,
        "rows": checkpoint.rows,
        "states": {p: torch.frombuffer(bytearray(s), dtype=torch.uint8) for p, s in checkpoint.states.items()},
        "strategy_state": _pack(checkpoint.strategy_state),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def load_checkpoint(directory: Path) -> Checkpoint | None:
    """The checkpoint in `directory`, None if there is none; ConfigError naming what is damaged when
    it is unreadable, or when its rows or any party's state do not hold what a run saves (each
    state is decoded here, before anything starts: a party must never fail on it later)."""
    path = directory / CHECKPOINT_FILE
    if not path.exists():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, foreign or malicious file: refuse it, never execute it
        raise _damaged(path, f"it is not a file torch can read as tensors ({_first_line(exc)})") from None
    if not isinstance(payload, dict) or payload.get("format") not in (1, FORMAT):
        raise _damaged(path, "it is not in fedmd_ray's checkpoint format")
    try:
        checkpoint = Checkpoint(
            fingerprint=str(payload["fingerprint"]),
            round=int(payload["round"]),
            rows=list(payload["rows"]),
            states={int(p): t.numpy() for p, t in payload["states"].items()},
            strategy_state=_unpack(payload.get("strategy_state")),
        )
    except Exception as exc:
        raise _damaged(path, f"its fields are damaged ({type(exc).__name__}: {_first_line(exc)})") from None
    _check_rows(path, checkpoint)
    for party, state in checkpoint.states.items():
        _check_state(path, party, state)
    return checkpoint


def _damaged(path: Path, what: str) -> ConfigError:
    return ConfigError(
        f"{path} is damaged: {what}. Its run cannot be continued from it; start the run again "
        "(--overwrite, or another --out)"
    )


def _first_line(exc: BaseException) -> str:
    """The first sentence of an error's message: torch's advice to load untrusted files with
    `weights_only=False` (which would run their code) must never reach a user."""
    text = str(exc).strip()
    return text.splitlines()[0].split(". ")[0][:200] if text else type(exc).__name__


def _check_rows(path: Path, checkpoint: Checkpoint) -> None:
    """Rows are result rows (`analysis.schema`) of the checkpoint's own run and rounds."""
    from fedmd_ray.analysis.schema import RESULT_SCHEMA, rows_to_table
    from fedmd_ray.phases import PHASES

    required = [f.name for f in RESULT_SCHEMA if not f.nullable]
    for i, row in enumerate(checkpoint.rows):
        if not isinstance(row, dict) or any(key not in row for key in required) or row["phase"] not in PHASES:
            raise _damaged(path, f"row {i} is not a result row")
        round_ = row.get("round")
        if round_ is not None and (not isinstance(round_, int) or not 0 <= round_ <= checkpoint.round):
            raise _damaged(
                path, f"row {i} belongs to round {round_!r}, but the checkpoint is of round {checkpoint.round}"
            )
    try:
        rows_to_table(checkpoint.rows)
    except Exception as exc:
        raise _damaged(path, f"its rows do not fit the result table ({_first_line(exc)})") from None
    rounds = {r["round"] for r in checkpoint.rows if r["phase"] == COLLABORATE}
    if checkpoint.round > 0 and rounds != set(range(1, checkpoint.round + 1)):
        raise _damaged(path, f"its rows hold rounds {sorted(rounds)}, not 1..{checkpoint.round}")


def _check_state(path: Path, party: int, state: PartyState) -> None:
    """A party's state decodes as tensors (`Participant.export_state`): a model state dict and an RNG state."""
    try:
        decoded = torch.load(io.BytesIO(state.tobytes()), map_location="cpu", weights_only=True)
        ok = (
            isinstance(decoded, dict)
            and isinstance(decoded.get("model"), dict)
            and all(isinstance(v, torch.Tensor) for v in decoded["model"].values())
            and isinstance(decoded.get("rng"), torch.Tensor)
        )
    except Exception:
        ok = False
    if not ok:
        raise _damaged(path, f"party {party}'s saved state is not a model and optimizer state")


class CheckpointWriter:
    """Writes checkpoints in a background thread, one at a time, so the next round does not
    wait for the disk (~0.1 s per round for 10 small models with fsync). `submit` waits for
    the previous write and re-raises its error; `close` waits for the last one."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="fedmd-checkpoint")
        self._pending: concurrent.futures.Future[None] | None = None

    def submit(self, checkpoint: Checkpoint) -> None:
        self._wait()
        self._pending = self._pool.submit(save_checkpoint, self.directory, checkpoint)

    def close(self) -> None:
        try:
            self._wait()
        finally:
            self._pool.shutdown(wait=True)

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()
