"""A FedMD party (plain Python, no Ray) and the host that holds one or more.

`Participant` is one party: its model, optimizers, private data and RNG. It
keeps them for the whole run, so a round costs one message with indices and the
consensus, never weights or images. `PartyHost` holds `parties_per_actor`
participants behind one entry point; it is the unit that `actors.ray_pool`
turns into a Ray actor and `actors.pool.LocalPool` calls in-process.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import io
import os
import socket
import time
from dataclasses import dataclass
from typing import Any, Iterator, Sequence, TypeVar

import numpy as np
import numpy.typing as npt
import torch

from fedmd_ray import training
from fedmd_ray.actors.messages import (
    Distributed,
    Evaluation,
    ExportState,
    HostSetup,
    PartyProgress,
    PartySpec,
    PartyState,
    PartyTask,
    RoundResult,
    SharedData,
    StepError,
    peak_rss_mib,
    repeats_on_restart,
)
from fedmd_ray.actors.party_group import PartyGroup, group_key
from fedmd_ray.errors import ConfigError
from fedmd_ray.models import eval_batch, output_layer
from fedmd_ray.phases import TRANSFER, UPPER_BOUND
from fedmd_ray.plugins import plugin_code
from fedmd_ray.seeding import derive_seed

R = TypeVar("R")


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
        def pair(x: npt.NDArray[Any], y: npt.NDArray[Any]) -> tuple[torch.Tensor, torch.Tensor]:
            return training.as_tensor(x, device), training.as_tensor(y, device)

        return cls(
            device,
            pair(data.public_x, data.public_y),
            pair(data.public_val_x, data.public_val_y),
            pair(data.test_x, data.test_y),
            data.private_x,
            data.private_y,
            data.union_idx,
        )


class Participant:
    """One party of arXiv 1910.03581: transfer learning, then communicate/digest/revisit."""

    def __init__(self, spec: PartySpec, setup: HostSetup, data: DeviceData) -> None:
        config = setup.config
        self.party = spec.party
        self.model_name = spec.model.name
        self.spec_model = spec.model
        self.model_identity = spec.model.identity
        self.n_classes = setup.n_classes
        self.faults = setup.faults
        self.config = config
        self.strategy = setup.strategy
        self.device = data.device
        self.data = data
        shape = tuple(data.public[0].shape[1:])
        self._eval_batch = eval_batch(spec.model, shape, setup.n_classes, self.device.type, config.eval_batch_size)
        self._rng_state = torch.Generator().manual_seed(derive_seed(config.seed, "party", spec.party)).get_state()
        self.round = 0  # rounds collaborated so far (saved with the state)
        self._private = (
            torch.from_numpy(data.pool_x[spec.private_idx]).to(self.device),
            torch.from_numpy(data.pool_y[spec.private_idx]).to(self.device),
        )
        with self._own_rng(), self._step("building the model"):
            self.model: torch.nn.Module = spec.model.build(shape, setup.n_classes).to(self.device)
        self._head: torch.nn.Module | None = None  # the output layer, for head_epochs and refits
        if config.head_epochs:
            self._head = output_layer(self.model, setup.n_classes, spec.model.name)
        elif config.refit_head_epochs:
            with contextlib.suppress(ConfigError):  # a model without a findable output layer is not refitted
                self._head = output_layer(self.model, setup.n_classes, spec.model.name)
        self._average: dict[str, torch.Tensor] = {}  # with `swa`: the running average of the last rounds' weights
        self._averaged = 0  # rounds in it
        self._round0: dict[str, torch.Tensor] | None = None  # with `wise_ft` < 1: the weights after transfer learning
        self._report_model: torch.nn.Module | None = None  # evaluates what `swa` / `wise_ft` report
        self._reported: torch.nn.Module = self.model  # the model the party reported last (`export_model`)
        self._digest_opt = torch.optim.Adam(self.model.parameters(), lr=config.round_lr)
        self._revisit_opt = torch.optim.Adam(self.model.parameters(), lr=config.round_lr)
        # what a weight-averaging method would send each way per round (communication accounting)
        self.model_bytes = sum(p.numel() * p.element_size() for p in self.model.parameters())

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

    @contextlib.contextmanager
    def _step(self, step: str) -> Iterator[None]:
        """Name the step in what a failure reports (the driver adds party and round); a plug-in's
        `sys.exit()` there is a failure of the step like any exception (`plugins.plugin_code`)."""
        try:
            with plugin_code():
                yield
        except Exception as exc:
            raise StepError(f"{type(exc).__name__}: {exc} (in {step})", repeats_on_restart(exc)) from exc

    # --- round 0 ------------------------------------------------------------------
    def transfer_learn(self) -> dict[str, Evaluation]:
        """Public pretraining with early stopping, optional upper bound, then private training."""
        cfg = self.config
        self._fault(0, "transfer_learn")
        start = time.perf_counter()
        results = {}
        with self._own_rng(), self._step("transfer learning"):
            epochs = self.pretrain()
            if cfg.upper_bound:
                results[UPPER_BOUND] = self._upper_bound()
            refit = self._fit_private(*self._private, retry_imperfect=True)
            transfer = training.evaluate(self.model, *self.data.test, batch_size=self._eval_batch)
            seconds = time.perf_counter() - start
            fit_eval, fit_train = training.batch_norm_gap(self.model, *self._private, batch_size=self._eval_batch)
            held, own = training.own_class_share(self._private[1], transfer.predicted)
        self._keep_round0()
        upper_s = results[UPPER_BOUND].seconds if UPPER_BOUND in results else 0.0
        results[TRANSFER] = Evaluation(
            transfer.accuracy,
            transfer.loss,
            seconds - upper_s,
            train_accuracy=fit_eval,
            train_accuracy_batch_stats=fit_train,
            pretrain_epochs=epochs,
            refit=refit,
            classes_held=held,
            own_class_predictions=own,
        )
        return results

    def pretrain(self) -> int:
        """Cross-entropy on the public set, early-stopped on its held-out part; the epochs run."""
        cfg = self.config
        epochs = training.fit_classifier(
            self.model,
            *self.data.public,
            epochs=cfg.pretrain_epochs,
            batch_size=cfg.pretrain_batch_size,
            lr=cfg.lr,
            val=self.data.public_val,
            patience=cfg.pretrain_patience,
            min_delta=cfg.pretrain_min_delta,
            eval_batch_size=self._eval_batch,
        )
        self._precise_bn(self.data.public[0])
        return epochs

    def _fit_private(
        self, x: torch.Tensor, y: torch.Tensor, epochs: int | None = None, *, retry_imperfect: bool = False
    ) -> bool:
        """Supervised training on private images (`_fit_once`). A fit that ends no better than always
        answering the most common class (`training.fit_is_stuck`), or with `retry_imperfect` one that
        misses any image of `x` (the party's own few images per class, which every model can fit: one
        that does not is held where pretraining left its output layer), is tried once more from the
        same start with `refit_head_epochs` of the output layer alone first, and the better fit of the
        two is kept (ties: the first), judged on `x` itself: no test data decides. True when the
        second is kept."""
        cfg = self.config
        if not cfg.refit_head_epochs or self._head is None:
            self._fit_once(x, y, epochs, cfg.head_epochs)
            return False
        start = self._weights()
        self._fit_once(x, y, epochs, cfg.head_epochs)
        first = training.evaluate(self.model, x, y, batch_size=self._eval_batch).accuracy
        if not (first < 1.0 if retry_imperfect else training.fit_is_stuck(first, y)):
            return False
        first_fit = self._weights()
        self.model.load_state_dict(start)
        self._fit_once(x, y, epochs, max(cfg.head_epochs, cfg.refit_head_epochs))
        second = training.evaluate(self.model, x, y, batch_size=self._eval_batch).accuracy
        if second <= first:
            self.model.load_state_dict(first_fit)
            return False
        return True

    def _weights(self) -> dict[str, torch.Tensor]:
        """A copy of the model's state, to return to with `load_state_dict`."""
        return {k: v.clone() for k, v in self.model.state_dict().items()}

    def _fit_once(self, x: torch.Tensor, y: torch.Tensor, epochs: int | None, head_epochs: int) -> None:
        """The output layer alone for `head_epochs`, then the whole model for `epochs` (default
        `private_epochs`)."""
        cfg = self.config
        if head_epochs and self._head is not None:
            training.train_epochs(
                self.model,
                torch.optim.Adam(self._head.parameters(), lr=cfg.lr),
                x,
                y,
                torch.nn.functional.cross_entropy,
                epochs=head_epochs,
                batch_size=cfg.private_batch_size,
            )
        training.fit_classifier(
            self.model,
            x,
            y,
            epochs=cfg.private_epochs if epochs is None else epochs,
            batch_size=cfg.private_batch_size,
            lr=cfg.lr,
        )
        self._precise_bn(x)

    def _precise_bn(self, x: torch.Tensor) -> None:
        """With `precise_bn`, the batch-norm statistics of the data the last phase trained on."""
        if self.config.precise_bn:
            training.recompute_bn_statistics(self.model, x, batch_size=self._eval_batch)

    def _upper_bound(self) -> Evaluation:
        """Train a copy of the pretrained model on all parties' private data."""
        start = time.perf_counter()
        pretrained = self._weights()
        idx = self.data.union_idx
        x = torch.from_numpy(self.data.pool_x[idx]).to(self.device)
        y = torch.from_numpy(self.data.pool_y[idx]).to(self.device)
        refit = self._fit_private(x, y, epochs=self.config.upper_bound_epochs)
        evaluation = dataclasses.replace(self.evaluate(start), refit=refit)
        self.model.load_state_dict(pretrained)
        return evaluation

    # --- rounds 1..R ------------------------------------------------------------
    def communicate(self, align_idx: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """What this party shares for the alignment subset (`Strategy.share` of its logits):
        (n_align, classes) float32."""
        with self._step("communicate"):
            x = self.data.public[0][torch.from_numpy(align_idx).to(self.device)]
            return self.shared_scores(training.class_scores(self.model, x, batch_size=self._eval_batch))

    def shared_scores(self, logits: torch.Tensor) -> npt.NDArray[np.float32]:
        """`Strategy.share` of this party's logits, checked: (n_align, classes) float32."""
        with torch.no_grad():
            shared = self.strategy.share(logits).float().cpu().numpy()
        if not np.isfinite(shared).all():  # this party's, not the strategy's aggregate's, to report
            where = "its logits" if not torch.isfinite(logits).all() else "the strategy's share of its logits"
            raise FloatingPointError(f"{where} on the alignment subset are not finite (nan or inf)")
        return shared

    def collaborate(
        self,
        round_: int,
        align_idx: npt.NDArray[np.int64] | None,
        targets: Distributed | None,
        next_align_idx: npt.NDArray[np.int64] | None = None,
        scores_ahead: frozenset[int] | None = None,
    ) -> RoundResult:
        """This party's part of round `round_`, in the paper's order: digest its target (its row of
        `targets`), revisit its private data, evaluate; then, with `next_align_idx` (and the party in
        `scores_ahead`, default all), score the next round's subset (the model will not change before
        then: it saves a call and a wait per party per round). Without targets (no collaboration) it
        revisits and is evaluated."""
        start = time.perf_counter()
        self.round = round_
        self._fault(round_, "digest")
        if align_idx is not None and targets is not None:
            self.digest(align_idx, targets.for_party(self.party))
        self._fault(round_, "revisit")
        self.revisit()
        with self._step("evaluate"):
            evaluation = self.evaluate(start, self.reported_model(round_))
        ahead = scores_ahead is None or self.party in scores_ahead
        next_scores = self.communicate(next_align_idx) if next_align_idx is not None and ahead else None
        return RoundResult(evaluation, next_scores)

    def _fault(self, round_: int, method: str) -> None:
        """An injected failure (tests: `fedmd_ray.faults`), if the run's setup carries one."""
        if self.faults is not None:
            self.faults.check(self.party, round_, method)

    def digest(self, align_idx: npt.NDArray[np.int64], target: npt.NDArray[np.float32]) -> float:
        """Train toward the target on the alignment subset with the strategy's digest loss."""
        cfg = self.config
        with self._step("digest"), self._own_rng():
            x = self.data.public[0][torch.from_numpy(align_idx).to(self.device)]
            y = torch.tensor(target, device=self.device)  # copies the read-only view
            loss = training.train_epochs(
                self.model,
                self._digest_opt,
                x,
                y,
                self.strategy.digest_loss,
                epochs=cfg.digest_epochs,
                batch_size=cfg.digest_batch_size,
            )
            self._precise_bn(x)
            return loss

    def revisit(self) -> float:
        """Train on the private data again (cross-entropy, restricted to its own classes by
        `revisit_classes`), shifted by up to `revisit_shift` pixels."""
        cfg = self.config
        pixels = self.shift_pixels()
        shift = functools.partial(training.random_shift, pixels=pixels) if pixels else None
        with self._step("revisit"), self._own_rng():
            loss = training.train_epochs(
                self.model,
                self._revisit_opt,
                *self._private,
                self.revisit_loss(),
                epochs=cfg.revisit_epochs,
                batch_size=cfg.revisit_batch_size,
                augment=shift,
            )
            self._precise_bn(self._private[0])
            return loss

    def revisit_loss(self) -> training.LossFn:
        """The revisit's loss: cross-entropy, with `revisit_classes=own` over a restricted softmax."""
        scale = self.revisit_scale()
        if scale is None:
            return torch.nn.functional.cross_entropy
        return functools.partial(training.restricted_cross_entropy, scale=scale)

    def shift_pixels(self) -> int:
        """How far the revisit shifts this party's private images at most (`revisit_shift`, `auto` resolved
        by their size: `training.shift_pixels`); 0: not at all."""
        height, width = self._private[0].shape[-2:]
        return training.shift_pixels(self.config.revisit_shift, height, width)

    def revisit_scale(self) -> torch.Tensor | None:
        """With `revisit_classes=own`, the revisit's logit scale (`training.own_class_scale`); else None."""
        if self.config.revisit_classes == "all":
            return None
        return training.own_class_scale(self._private[1], self.n_classes, len(self.config.private_classes))

    def optimizer(self, which: str) -> torch.optim.Adam:
        """The Adam of the round's `digest` or `revisit` steps (each keeps its own moments)."""
        return self._digest_opt if which == "digest" else self._revisit_opt

    def _keep_round0(self) -> None:
        """With `wise_ft` < 1, keep the weights as they are now (after transfer learning) to blend with."""
        if self.config.wise_ft < 1:
            self._round0 = self._weights()

    def reported_model(self, round_: int) -> torch.nn.Module:
        """The model round `round_` reports: the party's own; with `swa` in its window, the running
        average of its weights; with `wise_ft` < 1, that blended with the round-0 weights. The party
        trains on with its own weights whatever it reports."""
        averaging = self.config.swa and round_ > self.config.rounds // 2
        if not averaging and self._round0 is None:
            self._reported = self.model
            return self.model
        own = self.model.state_dict()
        state = self._update_average() if averaging else own
        if self._round0 is not None:
            state = blend_weights(self._round0, state, self.config.wise_ft)
        if self._report_model is None:
            self._report_model = copy.deepcopy(self.model)
        self._report_model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
        self._reported = self._report_model
        return self._report_model

    def export_model(self) -> PartyState:
        """The weights of the model this party reported last (`reported_model`; after transfer learning, its
        own), serialized: tensors only (`torch.load(weights_only=True)` reads them)."""
        model = self._reported
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
        return np.frombuffer(buffer.getbuffer(), dtype=np.uint8)

    def _update_average(self) -> dict[str, torch.Tensor]:
        """Add this round's weights to their running average (`swa`; float64, integer buffers as they
        are now) and return the average."""
        self._averaged += 1
        for name, value in self.model.state_dict().items():
            if value.is_floating_point() and name in self._average:
                self._average[name] += (value.double() - self._average[name]) / self._averaged
            else:
                copied = value.detach().clone()  # never a view of the weights (a float64 model)
                self._average[name] = copied.double() if copied.is_floating_point() else copied
        return self._average

    def evaluate(self, start: float, model: torch.nn.Module | None = None) -> Evaluation:
        """Accuracy and loss of `model` (default: the party's) on the private task's test set; seconds
        since `start`."""
        model = self.model if model is None else model
        accuracy, loss, _ = training.evaluate(model, *self.data.test, batch_size=self._eval_batch)
        return Evaluation(accuracy, loss, time.perf_counter() - start)

    # --- state (transfer cache, checkpoints) ----------------------------------------
    def export_state(self, include_optimizers: bool = True) -> PartyState:
        """Model (+ optimizers) and RNG stream, serialized; read back with `import_state`."""
        state: dict[str, Any] = {"model": self.model.state_dict(), "rng": self._rng_state, "round": self.round}
        if self._averaged:
            state["average"], state["averaged"] = self._average, self._averaged
        if self._round0 is not None and self.round > 0:  # at round 0 the model is theta_0
            state["round0"] = self._round0
        if include_optimizers:
            state["digest_opt"] = self._digest_opt.state_dict()
            state["revisit_opt"] = self._revisit_opt.state_dict()
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return np.frombuffer(buffer.getbuffer(), dtype=np.uint8)

    def import_state(self, states: dict[int, PartyState]) -> None:
        """Restore what `export_state` saved: this party's of `states` (tensors only: `weights_only=True`,
        no pickled code)."""
        payload = states[self.party]
        try:
            state = torch.load(io.BytesIO(payload), map_location=self.device, weights_only=True)
        except Exception as exc:  # one line: torch's advice to load with weights_only=False must not reach anyone
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise StepError(f"party {self.party}'s saved state is damaged ({first})", repeats=True) from None
        self.model.load_state_dict(state["model"])
        self._rng_state = state["rng"].cpu()
        self.round = int(state.get("round", 0))
        self._average, self._averaged = state.get("average", {}), int(state.get("averaged", 0))
        self._round0 = None
        if "round0" in state and self.config.wise_ft < 1:
            self._round0 = state["round0"]
        elif self.round == 0:
            self._keep_round0()  # the model is theta_0 (a transfer cache, a restart from round 0)
        elif self.config.wise_ft < 1:
            raise ValueError(
                f"party {self.party}'s state of round {self.round} holds no round-0 weights, "
                f"which wise_ft={self.config.wise_ft} blends with: it was saved with wise_ft=1"
            )
        if "digest_opt" in state:
            self._digest_opt.load_state_dict(state["digest_opt"])
            self._revisit_opt.load_state_dict(state["revisit_opt"])


def blend_weights(start: dict[str, torch.Tensor], end: dict[str, torch.Tensor], a: float) -> dict[str, torch.Tensor]:
    """`(1 - a) * start + a * end` for every floating-point tensor (in float64); integer buffers
    (batch-norm batch counts) as in `end`."""
    return {k: (1 - a) * start[k].double() + a * v.double() if v.is_floating_point() else v for k, v in end.items()}


def choose_device(gpus: float) -> torch.device:
    """CUDA only when this worker got a GPU share and torch can see one.

    Ray may hand out *logical* GPUs on a machine without CUDA; trust torch.
    """
    return torch.device("cuda") if gpus > 0 and torch.cuda.is_available() else torch.device("cpu")


class PartyHost:
    """Holds the participants of one worker and applies the driver's tasks to them by party id."""

    def __init__(
        self,
        specs: list[PartySpec],
        setup: HostSetup,
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
        self.participants = {s.party: Participant(s, setup, on_device) for s in specs}
        self.batched = setup.batched  # model identities whose parties run as one computation (`party_group`)
        self.busy_s = 0.0  # party work
        self.state_s = 0.0  # exporting and importing states (snapshots, checkpoints)
        self.finished: list[PartyProgress] = []  # parties done with a long task, for progress lines

    def run(self, task: PartyTask[R], parties: Sequence[int] | None = None) -> dict[int, R]:
        """`task` on each hosted party in party order (`getattr(party, task.step)(*task.arguments())`, a
        `PartyGroup` answering for its members); with `parties`, only those it names (absent or dropped
        parties sit out)."""
        start = time.perf_counter()
        chosen = sorted(self.participants if parties is None else set(parties) & set(self.participants))
        results: dict[int, R] = {}
        for unit in self._units([self.participants[p] for p in chosen], task.batched):
            answer = getattr(unit, task.step)(*task.arguments())
            answers = answer if isinstance(unit, PartyGroup) else {unit.party: answer}
            for pid, answer in answers.items():
                results[pid] = answer
                done = task.progress(pid, answer)
                if done is not None:
                    self.finished.append(done)
        elapsed = time.perf_counter() - start
        if task.is_state_transfer:
            self.state_s += elapsed
        else:
            self.busy_s += elapsed
        return results

    def _units(self, members: list[Participant], batched: bool = True) -> list[Participant | PartyGroup]:
        """The parties of a call, as they run: for a `batched` task, a `PartyGroup` per model the run batches
        (and private-set size: one schedule), every other party alone; in party order of their first member."""
        groups: dict[tuple[str, int], list[Participant]] = {}
        units: list[Participant | PartyGroup] = []
        for member in members:
            if batched and member.model_identity in self.batched:
                key = group_key(member)
                if key not in groups:
                    groups[key] = []
                    units.append(PartyGroup(groups[key]))
                groups[key].append(member)
            else:
                units.append(member)
        return units

    def states(self) -> dict[int, PartyState]:
        """Every hosted party's state (`ExportState`), also of those that sat the last task out: the
        snapshot that restarts and checkpoints need, which a pool takes with the answer of a task that
        finishes a phase instead of costing every round a second call."""
        return self.run(ExportState())

    def progress(self, since: int = 0) -> list[PartyProgress]:
        """The parties done with a long task, from the `since`-th on (safe to call while `run` runs)."""
        return self.finished[since:]

    def usage(self) -> dict[str, Any]:
        """Seconds of party work inside `run` so far (a round's time beyond it is overhead), seconds
        spent saving/restoring states, and peak memory."""
        usage: dict[str, Any] = {
            "parties": sorted(self.participants),
            "busy_s": self.busy_s,
            "state_s": self.state_s,
            "peak_rss_mib": peak_rss_mib(),
        }
        if self.device.type == "cuda":
            usage["gpu_peak_allocated_mib"] = torch.cuda.max_memory_allocated(self.device) / 2**20
            usage["gpu_peak_reserved_mib"] = torch.cuda.max_memory_reserved(self.device) / 2**20
        return usage

    def describe(self) -> dict[str, Any]:
        """Where this host runs (for logs and placement tests)."""
        return {
            "parties": sorted(self.participants),
            "model_bytes": {pid: p.model_bytes for pid, p in self.participants.items()},
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "device": str(self.device),
            "torch_threads": torch.get_num_threads(),
        }
