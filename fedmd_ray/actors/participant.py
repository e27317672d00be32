"""A FedMD party (plain Python, no Ray) and the host that holds one or more.

`Participant` is one party: its model, optimizers, private data and RNG. It
keeps them for the whole run, so a round costs one message with indices and the
consensus, never weights or images. `PartyHost` holds `parties_per_actor`
participants behind one entry point; it is the unit that `actors.ray_pool`
turns into a Ray actor and `actors.local_pool.LocalPool` calls in-process.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import time
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import numpy.typing as npt
import torch

from fedmd_ray import training
from fedmd_ray.actors.common import Evaluation, PartySpec, PartyState, SharedData, peak_rss_mib
from fedmd_ray.config import FedMDConfig
from fedmd_ray.faults import maybe_fail
from fedmd_ray.models import build_model, eval_batch
from fedmd_ray.seeding import derive_seed


@dataclass(frozen=True)
class DeviceData:
    """`SharedData` as tensors on one device, made once per host and read by all its parties.

    On CPU the tensors are views of the (object-store) arrays; on a GPU each host
    copies the public and test images once, not once per party.
    """

    device: torch.device
    public: tuple[torch.Tensor, torch.Tensor]
    public_val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    pool_x: npt.NDArray[np.float32]  # the private pool; each party copies its own rows
    pool_y: npt.NDArray[np.int64]
    union_idx: npt.NDArray[np.int64]

    @classmethod
    def place(cls, data: SharedData, device: torch.device) -> "DeviceData":
        def pair(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
            return training.as_tensor(x, device), training.as_tensor(y, device)

        return cls(
            device, pair(data.public_x, data.public_y), pair(data.public_val_x, data.public_val_y),
            pair(data.test_x, data.test_y), data.private_x, data.private_y, data.union_idx,
        )


class Participant:
    """One party of arXiv 1910.03581: transfer learning, then communicate/digest/revisit."""

    def __init__(self, spec: PartySpec, config: FedMDConfig, data: DeviceData) -> None:
        self.party = spec.party
        self.model_name = spec.model
        self.config = config
        self.device = data.device
        self.data = data
        shape = tuple(data.public[0].shape[1:])
        self._eval_batch = eval_batch(spec.model, shape, config.n_classes, self.device.type, config.eval_batch_size)
        self._rng_state = torch.Generator().manual_seed(derive_seed(config.seed, "party", spec.party)).get_state()
        self.round = 0  # rounds collaborated so far (saved with the state)
        self._private = (
            torch.from_numpy(data.pool_x[spec.private_idx]).to(self.device),
            torch.from_numpy(data.pool_y[spec.private_idx]).to(self.device),
        )
        with self._own_rng():
            self.model = build_model(spec.model, shape, config.n_classes).to(self.device)
        self._digest_opt = torch.optim.Adam(self.model.parameters(), lr=config.digest_lr)
        self._revisit_opt = torch.optim.Adam(self.model.parameters(), lr=config.digest_lr)

    @contextlib.contextmanager
    def _own_rng(self) -> Iterator[None]:
        """Run with this party's torch RNG stream, whatever else shares the process."""
        outer = torch.get_rng_state()
        torch.set_rng_state(self._rng_state)
        try:
            yield
        finally:
            self._rng_state = torch.get_rng_state()
            torch.set_rng_state(outer)

    # --- round 0 ------------------------------------------------------------------
    def transfer_learn(self) -> dict[str, Evaluation]:
        """Public pretraining with early stopping, optional upper bound, then private training."""
        cfg = self.config
        maybe_fail(self.party, 0, "transfer_learn")
        start = time.perf_counter()
        results = {}
        with self._own_rng():
            training.fit_classifier(
                self.model, *self.data.public, epochs=cfg.pretrain_epochs, batch_size=cfg.pretrain_batch_size,
                lr=cfg.lr, val=self.data.public_val, patience=cfg.pretrain_patience,
                min_delta=cfg.pretrain_min_delta, eval_batch_size=self._eval_batch,
            )
            if cfg.upper_bound:
                results["upper_bound"] = self._upper_bound()
            training.fit_classifier(
                self.model, *self._private, epochs=cfg.private_epochs,
                batch_size=cfg.private_batch_size, lr=cfg.lr,
            )
        transfer = self._evaluate(start)
        upper_s = results["upper_bound"].seconds if "upper_bound" in results else 0.0
        results["transfer"] = Evaluation(transfer.accuracy, transfer.loss, transfer.seconds - upper_s)
        return results

    def _upper_bound(self) -> Evaluation:
        """Train a copy of the pretrained model on all parties' private data."""
        start = time.perf_counter()
        pretrained = {k: v.clone() for k, v in self.model.state_dict().items()}
        idx = self.data.union_idx
        x = torch.from_numpy(self.data.pool_x[idx]).to(self.device)
        y = torch.from_numpy(self.data.pool_y[idx]).to(self.device)
        training.fit_classifier(
            self.model, x, y, epochs=self.config.upper_bound_epochs,
            batch_size=self.config.private_batch_size, lr=self.config.lr,
        )
        evaluation = self._evaluate(start)
        self.model.load_state_dict(pretrained)
        return evaluation

    # --- rounds 1..R ------------------------------------------------------------
    def communicate(self, align_idx: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """Class scores (logits) on the alignment subset: (n_align, classes)."""
        x = self.data.public[0][torch.from_numpy(align_idx).to(self.device)]
        return training.class_scores(self.model, x, batch_size=self._eval_batch)

    def collaborate(
        self,
        align_idx: npt.NDArray[np.int64],
        consensus: npt.NDArray[np.float32],
        next_align_idx: npt.NDArray[np.int64] | None = None,
    ) -> tuple[Evaluation, npt.NDArray[np.float32] | None]:
        """Digest the consensus, revisit the private data, evaluate; with `next_align_idx`,
        also the scores of the next round (the model will not change before then), which
        saves a call and a wait for every party per round."""
        start = time.perf_counter()
        self.round += 1
        maybe_fail(self.party, self.round, "digest")
        self.digest(align_idx, consensus)
        maybe_fail(self.party, self.round, "revisit")
        self.revisit()
        evaluation = self._evaluate(start)
        return evaluation, None if next_align_idx is None else self.communicate(next_align_idx)

    def digest(self, align_idx: npt.NDArray[np.int64], consensus: npt.NDArray[np.float32]) -> float:
        cfg = self.config
        x = self.data.public[0][torch.from_numpy(align_idx).to(self.device)]
        target = torch.tensor(consensus, device=self.device)  # copies the read-only view
        with self._own_rng():
            return training.train_epochs(
                self.model, self._digest_opt, x, target, training.digest_loss(cfg.digest_loss, cfg.temperature),
                epochs=cfg.digest_epochs, batch_size=cfg.digest_batch_size,
            )

    def revisit(self) -> float:
        cfg = self.config
        with self._own_rng():
            return training.train_epochs(
                self.model, self._revisit_opt, *self._private, torch.nn.functional.cross_entropy,
                epochs=cfg.revisit_epochs, batch_size=cfg.revisit_batch_size,
            )

    # --- state (transfer cache, checkpoints) ----------------------------------------
    def export_state(self, include_optimizers: bool = True) -> PartyState:
        """Model (+ optimizers) and RNG stream, serialized; read back with `import_state`."""
        state: dict[str, Any] = {"model": self.model.state_dict(), "rng": self._rng_state, "round": self.round}
        if include_optimizers:
            state["digest_opt"] = self._digest_opt.state_dict()
            state["revisit_opt"] = self._revisit_opt.state_dict()
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return np.frombuffer(buffer.getbuffer(), dtype=np.uint8)

    def import_state(self, payload: PartyState) -> None:
        """Restore what `export_state` saved (tensors only: `weights_only=True`, no pickled code)."""
        state = torch.load(io.BytesIO(payload), map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self._rng_state = state["rng"].cpu()
        self.round = int(state.get("round", 0))
        if "digest_opt" in state:
            self._digest_opt.load_state_dict(state["digest_opt"])
            self._revisit_opt.load_state_dict(state["revisit_opt"])

    def _evaluate(self, start: float) -> Evaluation:
        accuracy, loss = training.evaluate(self.model, *self.data.test, batch_size=self._eval_batch)
        return Evaluation(accuracy, loss, time.perf_counter() - start)


def choose_device(gpus: float) -> torch.device:
    """CUDA only when this worker got a GPU share and torch can see one.

    Ray may hand out *logical* GPUs on a machine without CUDA; trust torch.
    """
    return torch.device("cuda") if gpus > 0 and torch.cuda.is_available() else torch.device("cpu")


class PartyHost:
    """Holds the participants of one worker and dispatches calls to them by party id."""

    def __init__(
        self,
        specs: list[PartySpec],
        config: FedMDConfig,
        data: SharedData | DeviceData,
        *,
        threads: int | None,
        gpus: float,
    ) -> None:
        """`data` may already be on the device (hosts in one process share one copy)."""
        if threads is not None:
            torch.set_num_threads(threads)
        self.device = choose_device(gpus)
        on_device = data if isinstance(data, DeviceData) else DeviceData.place(data, self.device)
        self.participants = {s.party: Participant(s, config, on_device) for s in specs}
        self.busy_s = 0.0  # party work
        self.state_s = 0.0  # exporting and importing states (snapshots, checkpoints)

    def call(self, method: str, per_party: dict[int, tuple[Any, ...]] | None, *shared: Any) -> dict[int, Any]:
        """`participant.method(*per_party[pid], *shared)` for each hosted party in party order;
        with `per_party`, only the parties it names (absent or dropped parties sit out)."""
        start = time.perf_counter()
        parties = sorted(self.participants if per_party is None else set(per_party) & set(self.participants))
        results = {pid: getattr(self.participants[pid], method)(*(per_party or {}).get(pid, ()), *shared)
                   for pid in parties}
        elapsed = time.perf_counter() - start
        if method in ("export_state", "import_state"):
            self.state_s += elapsed
        else:
            self.busy_s += elapsed
        return results

    def call_saving(
        self, method: str, per_party: dict[int, tuple[Any, ...]] | None, *shared: Any
    ) -> tuple[dict[int, Any], dict[int, PartyState]]:
        """`call`, then every hosted party's state (`export_state`), also of those that sat the call
        out: the snapshot that restarts and checkpoints need travels with the answer instead of
        costing every round a second call."""
        return self.call(method, per_party, *shared), self.call("export_state", None)

    def usage(self) -> dict[str, Any]:
        """Seconds of party work inside `call` so far (a round's time beyond it is overhead), seconds
        spent saving/restoring states, and peak memory."""
        usage: dict[str, Any] = {"parties": sorted(self.participants), "busy_s": self.busy_s,
                                 "state_s": self.state_s, "peak_rss_mib": peak_rss_mib()}
        if self.device.type == "cuda":
            usage["gpu_peak_allocated_mib"] = torch.cuda.max_memory_allocated(self.device) / 2**20
            usage["gpu_peak_reserved_mib"] = torch.cuda.max_memory_reserved(self.device) / 2**20
        return usage

    def describe(self) -> dict[str, Any]:
        """Where this host runs (for logs and placement tests)."""
        return {
            "parties": sorted(self.participants),
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "device": str(self.device),
            "torch_threads": torch.get_num_threads(),
        }
