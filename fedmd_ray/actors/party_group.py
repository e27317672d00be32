"""Same-architecture parties of one host, run through a round as one computation (`fedmd_ray.batched`).

A `PartyGroup` is a view over some `Participant`s that share a model and a private-set
size: each step of the round (digest, revisit, evaluate, score) stacks their weights,
optimizer moments and RNG streams, runs once for all of them, and writes every party's
part back into the party itself. So the participants stay what checkpoints, restarts and
exports see: nothing of a party lives in the group between calls, and a party leaves a
group (drops out, fails, sits a round out) without the others noticing.

Where batching pays: a step is batched when one party's batch of activations is small
(`BATCH_BYTES`): a tiny model or a tiny batch (the revisit's 5 images), where a party's
step is mostly per-call overhead. A large batch of a convolutional model is faster one
party at a time on a CPU (its activations fit the cache; stacked they do not), so that
step runs per party. The choice depends on the model and the batch size only, never on
which parties share the host. Parties are stacked in chunks that keep the stacked
activations within the same budget; a chunk of one is run as two copies (the batched
kernels differ from a single model's, and a party must compute the same however many
parties share its host).
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Callable, Iterator, Sequence, TypeVar

import numpy as np
import numpy.typing as npt
import torch

from fedmd_ray import batched, training
from fedmd_ray.actors.messages import Distributed, Evaluation, RoundResult
from fedmd_ray.models import footprint
from fedmd_ray.phases import TRANSFER, UPPER_BOUND

if TYPE_CHECKING:
    from fedmd_ray.actors.participant import Participant

T = TypeVar("T")
BATCH_BYTES = 32 * 2**20  # a batch of stacked activations beyond this runs slower than one party at a time
PARAMETER_BYTES = 16 * 2**20  # one stacked copy of a chunk's parameters (memory: the stack holds ~6 of them)
FORWARD_BYTES = 64 * 2**20  # stacked activations of a forward-only pass (inputs shared: one product each layer)


class PartyGroup:
    """Participants of one model and one private-set size (`group_key`), in party order."""

    def __init__(self, members: list[Participant]) -> None:
        self.members = members  # filled by the caller, in party order, before any call

    @functools.cached_property
    def _parameter_bytes(self) -> int:
        """One party's parameters, in bytes (a stack holds ~6 copies of them: weights, gradients, moments)."""
        return max(4 * sum(p.numel() for p in self.members[0].model.parameters()), 1)

    @functools.cached_property
    def _sample_bytes(self) -> int:
        """One image's activations in training (forward and backward, ~3x the forward's), in bytes."""
        first = self.members[0]
        shape = tuple(first.data.public[0].shape[1:])
        return 3 * 4 * footprint(first.spec_model, shape, first.n_classes).activations

    # --- the round ----------------------------------------------------------------------
    def collaborate(
        self,
        round_: int,
        align_idx: npt.NDArray[np.int64] | None,
        targets: Distributed | None,
        next_align_idx: npt.NDArray[np.int64] | None = None,
        scores_ahead: frozenset[int] | None = None,
    ) -> dict[int, RoundResult]:
        """`Participant.collaborate` of every member: digest, revisit, evaluate, then score the next
        subset (members in `scores_ahead`, default all). Each row's seconds: the group's time, shared."""
        start = time.perf_counter()
        for member in self.members:
            member.round = round_
            member._fault(round_, "digest")
        if align_idx is not None and targets is not None:
            self.digest(align_idx, targets)
        for member in self.members:
            member._fault(round_, "revisit")
        self.revisit()
        with self._step("evaluate"):
            evaluations = self.evaluate([m.reported_model(round_) for m in self.members])
        ahead = [m for m in self.members if scores_ahead is None or m.party in scores_ahead]
        scores = {} if next_align_idx is None or not ahead else PartyGroup(ahead).communicate(next_align_idx)
        seconds = (time.perf_counter() - start) / len(self.members)
        return {
            m.party: RoundResult(Evaluation(scored.accuracy, scored.loss, seconds), scores.get(m.party))
            for m, scored in zip(self.members, evaluations)
        }

    def transfer_learn(self) -> dict[int, dict[str, Evaluation]]:
        """`Participant.transfer_learn` of every member: public pretraining (early-stopped per member), the
        upper bound, the private fit (redone for the members whose first fit misses an image), evaluation."""
        config = self.members[0].config
        start = time.perf_counter()
        for member in self.members:
            member._fault(0, "transfer_learn")
        with self._step("transfer learning"):
            epochs = self.pretrain()
            upper = self.upper_bound() if config.upper_bound else {}
            upper_s = time.perf_counter() - start
            x = torch.stack([m._private[0] for m in self.members])
            y = torch.stack([m._private[1] for m in self.members])
            refit = self.fit_private(
                self.members, x, y, shared=False, epochs=config.private_epochs, retry_imperfect=True
            )
            evaluations = self.evaluate([m.model for m in self.members])
            gaps = [training.batch_norm_gap(m.model, *m._private, batch_size=m._eval_batch) for m in self.members]
            skews = [training.own_class_share(m._private[1], e.predicted) for m, e in zip(self.members, evaluations)]
        for member in self.members:
            member._keep_round0()
        seconds = (time.perf_counter() - start - upper_s) / len(self.members)
        results: dict[int, dict[str, Evaluation]] = {}
        for i, member in enumerate(self.members):
            results[member.party] = {
                TRANSFER: Evaluation(
                    evaluations[i][0],
                    evaluations[i][1],
                    seconds,
                    train_accuracy=gaps[i][0],
                    train_accuracy_batch_stats=gaps[i][1],
                    pretrain_epochs=epochs[member.party],
                    refit=refit[i],
                    classes_held=skews[i][0],
                    own_class_predictions=skews[i][1],
                )
            }
            if member.party in upper:
                results[member.party][UPPER_BOUND] = upper[member.party]
        return results

    def pretrain(self) -> dict[int, int]:
        """`Participant.pretrain` of every member: each stops on its own held-out accuracy."""
        first, config = self.members[0], self.members[0].config
        if not self._batches(config.pretrain_batch_size):
            return {m.party: _alone(m, m.pretrain) for m in self.members}
        x, y = first.data.public
        epochs = self._fit(
            self.members,
            x,
            y.expand(len(self.members), -1),
            shared=True,
            epochs=config.pretrain_epochs,
            batch_size=config.pretrain_batch_size,
            val=first.data.public_val,
        )
        for member in self.members:
            member._precise_bn(x)
        return epochs

    def upper_bound(self) -> dict[int, Evaluation]:
        """`Participant._upper_bound` of every member: a copy of each pretrained model fitted on the union of
        the private sets (the same images for all), evaluated, then the pretrained weights back."""
        first, config = self.members[0], self.members[0].config
        start = time.perf_counter()
        if not self._batches(config.private_batch_size):
            return {m.party: _alone(m, m._upper_bound) for m in self.members}
        pretrained = [m._weights() for m in self.members]
        idx = first.data.union_idx
        x = torch.from_numpy(first.data.pool_x[idx]).to(first.device)
        y = torch.from_numpy(first.data.pool_y[idx]).to(first.device)
        refit = self.fit_private(
            self.members, x, y.expand(len(self.members), -1), shared=True, epochs=config.upper_bound_epochs
        )
        evaluations = self.evaluate([m.model for m in self.members])
        for member, weights in zip(self.members, pretrained):
            member.model.load_state_dict(weights)
        seconds = (time.perf_counter() - start) / len(self.members)
        return {
            m.party: Evaluation(scored.accuracy, scored.loss, seconds, refit=refit[i])
            for i, (m, scored) in enumerate(zip(self.members, evaluations))
        }

    def fit_private(
        self,
        members: list[Participant],
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        shared: bool,
        epochs: int,
        retry_imperfect: bool = False,
    ) -> list[bool]:
        """`Participant._fit_private` of `members` (y: one row each; x likewise unless `shared`): one fit;
        then, for those whose fit is stuck (or, with `retry_imperfect`, misses an image of its own), a
        second fit from the same start with the output layer first, kept where it fits better."""
        config = members[0].config
        if not self._batches(config.private_batch_size):
            return [
                _alone(
                    m,
                    functools.partial(
                        m._fit_private, x if shared else x[i], y[i], epochs, retry_imperfect=retry_imperfect
                    ),
                )
                for i, m in enumerate(members)
            ]
        can_refit = config.refit_head_epochs > 0 and members[0]._head is not None
        start = [m._weights() for m in members] if can_refit else []
        self._fit_once(members, x, y, shared=shared, epochs=epochs, head_epochs=config.head_epochs)
        if not can_refit:
            return [False] * len(members)
        first = self._fit_accuracy(members, x, y, shared)
        redo = [
            i
            for i, (m, acc) in enumerate(zip(members, first))
            if (acc < 1.0 if retry_imperfect else training.fit_is_stuck(acc, y[i]))
        ]
        if not redo:
            return [False] * len(members)
        again = [members[i] for i in redo]
        first_fit = [again_member._weights() for again_member in again]
        for i in redo:
            members[i].model.load_state_dict(start[i])
        rows = torch.tensor(redo)
        self._fit_once(
            again,
            x if shared else x[rows],
            y[rows],
            shared=shared,
            epochs=epochs,
            head_epochs=max(config.head_epochs, config.refit_head_epochs),
        )
        second = self._fit_accuracy(again, x if shared else x[rows], y[rows], shared)
        kept = [False] * len(members)
        for j, i in enumerate(redo):
            if second[j] <= first[i]:
                members[i].model.load_state_dict(first_fit[j])
            else:
                kept[i] = True
        return kept

    def _fit_once(
        self,
        members: list[Participant],
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        shared: bool,
        epochs: int,
        head_epochs: int,
    ) -> None:
        """`Participant._fit_once` of `members`: the output layer alone for `head_epochs`, then everything."""
        config = members[0].config
        if head_epochs and members[0]._head is not None:
            optimizers = [torch.optim.Adam(m._head.parameters(), lr=config.lr) for m in members]  # type: ignore[union-attr]
            self._train_stacked(
                members,
                optimizers,
                x,
                y,
                torch.nn.functional.cross_entropy,
                shared=shared,
                epochs=head_epochs,
                batch_size=config.private_batch_size,
            )
        self._fit(members, x, y, shared=shared, epochs=epochs, batch_size=config.private_batch_size)
        for i, member in enumerate(members):
            member._precise_bn(x if shared else x[i])

    def _fit(
        self,
        members: list[Participant],
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        shared: bool,
        epochs: int,
        batch_size: int,
        val: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> dict[int, int]:
        """`training.fit_classifier` of `members` (a fresh Adam each), early-stopped one by one on `val`
        accuracy (`pretrain_patience`, `pretrain_min_delta`); the epochs each ran."""
        config = members[0].config
        optimizers = [torch.optim.Adam(m.model.parameters(), lr=config.lr) for m in members]
        if val is None or config.pretrain_patience <= 0:  # no early stopping: every epoch in one call
            self._train_stacked(
                members,
                optimizers,
                x,
                y,
                torch.nn.functional.cross_entropy,
                shared=shared,
                epochs=epochs,
                batch_size=batch_size,
            )
            return {m.party: epochs for m in members}
        active = list(range(len(members)))
        best = [-float("inf")] * len(members)
        waited = [0] * len(members)
        ran = {m.party: epochs for m in members}
        for epoch in range(1, epochs + 1):
            rows = torch.tensor(active)
            self._train_stacked(
                [members[i] for i in active],
                [optimizers[i] for i in active],
                x if shared else x[rows],
                y[rows],
                torch.nn.functional.cross_entropy,
                shared=shared,
                epochs=1,
                batch_size=batch_size,
            )
            accuracies = self._accuracy([members[i].model for i in active], *val)
            for i, accuracy in zip(list(active), accuracies):
                if accuracy > best[i] + config.pretrain_min_delta:
                    best[i], waited[i] = accuracy, 0
                else:
                    waited[i] += 1
                    if waited[i] >= config.pretrain_patience:
                        ran[members[i].party] = epoch
                        active.remove(i)
            if not active:
                break
        return ran

    def _fit_accuracy(self, members: list[Participant], x: torch.Tensor, y: torch.Tensor, shared: bool) -> list[float]:
        """Each member's accuracy on its own training data (`x` shared, or one row each)."""
        if shared:
            return self._accuracy([m.model for m in members], x, y[0])
        return [
            training.evaluate(m.model, x[i], y[i], batch_size=m._eval_batch).accuracy for i, m in enumerate(members)
        ]

    def _accuracy(self, models: list[torch.nn.Module], x: torch.Tensor, y: torch.Tensor) -> list[float]:
        return [scored.accuracy for scored in self._evaluate(models, x, y)]

    def communicate(self, align_idx: npt.NDArray[np.int64]) -> dict[int, npt.NDArray[np.float32]]:
        """`Participant.communicate` of every member."""
        first = self.members[0]
        x = first.data.public[0][torch.from_numpy(align_idx).to(first.device)]
        with self._step("communicate"):
            logits = self._forward_all([m.model for m in self.members], x)
            return {m.party: m.shared_scores(logits[i]) for i, m in enumerate(self.members)}

    def digest(self, align_idx: npt.NDArray[np.int64], targets: Distributed) -> None:
        """`Participant.digest` of every member: toward its target, on the alignment subset (the same images
        for all). Batched where it pays (`_batches`), else one member after the other."""
        first, config = self.members[0], self.members[0].config
        if not self._batches(config.digest_batch_size):
            for member in self.members:
                member.digest(align_idx, targets.for_party(member.party))
            return
        x = first.data.public[0][torch.from_numpy(align_idx).to(first.device)]
        y = torch.stack([torch.tensor(targets.for_party(m.party), device=first.device) for m in self.members])
        with self._step("digest"):  # y: (P, n_align, classes), a copy of the read-only targets
            self._train_stacked(
                self.members,
                [m.optimizer("digest") for m in self.members],
                x,
                y,
                first.strategy.digest_loss,
                shared=True,
                epochs=config.digest_epochs,
                batch_size=config.digest_batch_size,
            )
        for member in self.members:
            member._precise_bn(x)

    def revisit(self) -> None:
        """`Participant.revisit` of every member: its own private data (cross-entropy, restricted by
        `revisit_classes`), shifted by `revisit_shift`. Batched where it pays, else one member after the other."""
        config = self.members[0].config
        if not self._batches(config.revisit_batch_size):
            for member in self.members:
                member.revisit()
            return
        x = torch.stack([m._private[0] for m in self.members])  # (P, n, C, H, W)
        y = torch.stack([m._private[1] for m in self.members])  # (P, n)
        pixels = self.members[0].shift_pixels()  # one group: one image size
        shift = functools.partial(training.random_shift, pixels=pixels) if pixels else None
        scales = [s for s in (m.revisit_scale() for m in self.members) if s is not None]  # none, or one each
        logit_scale = torch.stack(scales) if scales else None
        with self._step("revisit"):
            self._train_stacked(
                self.members,
                [m.optimizer("revisit") for m in self.members],
                x,
                y,
                torch.nn.functional.cross_entropy,
                shared=False,
                epochs=config.revisit_epochs,
                batch_size=config.revisit_batch_size,
                augment=None if shift is None else lambda images, gen: shift(images, generator=gen),
                logit_scale=logit_scale,
            )
        for member in self.members:
            member._precise_bn(member._private[0])

    def evaluate(self, models: Sequence[torch.nn.Module]) -> list[training.Scored]:
        """Accuracy, loss and predicted classes of each model on the private task's test set."""
        return self._evaluate(list(models), *self.members[0].data.test)

    # --- helpers ------------------------------------------------------------------------
    def _train_stacked(
        self,
        members: list[Participant],
        optimizers: list[torch.optim.Adam],
        x: torch.Tensor,
        y: torch.Tensor,
        loss_fn: batched.LossFn,
        *,
        shared: bool,
        epochs: int,
        batch_size: int,
        augment: batched.Augment | None = None,
        logit_scale: torch.Tensor | None = None,
    ) -> None:
        """`batched.train_epochs` over `members` in chunks, each member with its optimizer (whose moments are
        read and written back; it may hold some of the parameters only: the rest stay as they are) and its
        RNG stream. `y` (and `x` unless `shared`) hold one row per member, and `logit_scale` if given."""
        for rows in self._chunks(len(members), batch_size):
            chunk = [members[i] for i in rows]  # a chunk of one twice: the copy's results are dropped
            models = [m.model for m in chunk]
            stack = batched.Stack.of(models)
            adam = batched.StackedAdam([optimizers[i] for i in rows], stack, models)
            gens = batched.generators([m._rng_state for m in chunk])
            batched.train_epochs(
                stack,
                adam,
                gens,
                x if shared else x[rows],
                y[rows],
                loss_fn,
                shared=shared,
                shared_target=False,
                epochs=epochs,
                batch_size=batch_size,
                augment=augment,
                penalty=_penalty(chunk[0]),
                logit_scale=None if logit_scale is None else logit_scale[rows],
            )
            real = len(set(rows))
            stack.copy_into(models[:real])
            adam.copy_into(real)
            for member, gen in zip(chunk[:real], gens):
                member._rng_state = gen.get_state()

    def _forward_all(self, models: list[torch.nn.Module], x: torch.Tensor) -> torch.Tensor:
        """(P, n, classes) eval-mode logits of `models` on the shared `x`: `training.class_scores` of each."""
        plan = self._forward_plan(len(models))
        if plan is None:
            batch = self.members[0]._eval_batch
            return torch.stack([training.class_scores(m, x, batch_size=batch) for m in models])
        rows, images = plan
        return batched.class_scores(batched.Stack.of([models[i] for i in rows]), x, batch_size=images)[: len(models)]

    def _evaluate(self, models: list[torch.nn.Module], x: torch.Tensor, y: torch.Tensor) -> list[training.Scored]:
        """`training.evaluate` of each model on the labelled set `x`, `y`."""
        plan = self._forward_plan(len(models))
        if plan is None:
            batch = self.members[0]._eval_batch
            return [training.evaluate(m, x, y, batch_size=batch) for m in models]
        rows, images = plan
        return batched.evaluate(batched.Stack.of([models[i] for i in rows]), x, y, batch_size=images)[: len(models)]

    def _forward_plan(self, count: int) -> tuple[list[int], int] | None:
        """How `count` models make a forward-only pass over one set of images: None, one at a time (a party's
        batch of activations is too large to gain from stacking: a CNN's); else all stacked (a model alone
        twice) with a batch of images that keeps their activations within `FORWARD_BYTES`."""
        batch = self.members[0]._eval_batch
        per_image = self._sample_bytes // 3
        if 2 * batch * per_image > BATCH_BYTES:
            return None
        rows = list(range(count)) if count > 1 else [0, 0]
        return rows, max(64, min(batch, FORWARD_BYTES // max(len(rows) * per_image, 1)))

    def _batches(self, batch_size: int) -> bool:
        """Whether a step of `batch_size` images is batched: two parties' activations fit `BATCH_BYTES`."""
        return 2 * batch_size * self._sample_bytes <= BATCH_BYTES

    def _chunks(self, count: int, batch_size: int) -> Iterator[list[int]]:
        """Indices 0..count-1 in chunks of near-equal size whose stacked activations for `batch_size` images fit
        `BATCH_BYTES`; a chunk of one names its party twice (see the module docstring)."""
        most = max(
            2, min(BATCH_BYTES // max(batch_size * self._sample_bytes, 1), PARAMETER_BYTES // self._parameter_bytes)
        )
        chunks = -(-count // most)
        bounds = [round(i * count / chunks) for i in range(chunks + 1)]
        for start, end in zip(bounds, bounds[1:]):
            rows = list(range(start, end))
            yield rows if len(rows) > 1 else rows * 2

    def _step(self, step: str):  # type: ignore[no-untyped-def]
        return self.members[0]._step(step)


def _alone(member: Participant, step: Callable[[], T]) -> T:
    """`step` of one member in its own RNG stream, as `Participant.transfer_learn` runs it: a step of transfer
    learning that does not batch (`_batches`) runs one member after another and must shuffle and drop out
    from each member's stream, not from whatever the process's global one holds."""
    with member._own_rng():
        return step()


def _penalty(member: Participant) -> Callable[[dict[str, torch.Tensor]], torch.Tensor] | None:
    """The reference models' L2 on the output layer (`training.output_penalty`), per party, summed."""
    weight = float(getattr(member.model, "output_l2", 0.0))
    if not weight or "output_layer.weight" not in dict(member.model.named_parameters()):
        return None
    return lambda params: weight * params["output_layer.weight"].pow(2).sum()


def group_key(member: Participant) -> tuple[str, int]:
    """Parties that can share a group: one model (by identity) and one private-set size (one schedule)."""
    return member.model_identity, len(member._private[1])
