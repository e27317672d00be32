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

from fedmd_ray.actors.common import PartyState
from fedmd_ray.analysis.io import atomic_write_bytes
from fedmd_ray.errors import ConfigError
from fedmd_ray.strategy import StrategyState

CHECKPOINT_FILE = "checkpoint.pt"
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
    atomic_write_bytes(directory / CHECKPOINT_FILE, buffer.getvalue())


def load_checkpoint(directory: Path) -> Checkpoint | None:
    """The checkpoint in `directory`, None if there is none; ConfigError if it is unreadable."""
    path = directory / CHECKPOINT_FILE
    if not path.exists():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("format") not in (1, FORMAT):
            raise ValueError(f"format {payload.get('format')!r}, expected {FORMAT}")
        return Checkpoint(
            fingerprint=payload["fingerprint"], round=int(payload["round"]), rows=list(payload["rows"]),
            states={int(p): t.numpy() for p, t in payload["states"].items()},
            strategy_state=_unpack(payload.get("strategy_state")),
        )
    except Exception as exc:  # truncated, foreign or malicious file: refuse it, never execute it
        raise ConfigError(f"{path} is not a readable fedmd_ray checkpoint ({exc}); remove it to start over") from exc


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
