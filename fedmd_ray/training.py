"""Training steps of FedMD in plain PyTorch (no Ray): fit, scores, digest, evaluate.

Random draws (shuffling, dropout) use torch's global RNG; the caller gives
each party its own RNG state (see `actors.participant`), which keeps results
independent of how parties share a process.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, NamedTuple

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

Array = npt.NDArray[np.float32]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def as_tensor(x: npt.NDArray[Any], device: torch.device) -> torch.Tensor:
    """Wrap a (possibly read-only, object-store backed) array without copying on CPU.

    Ray hands actors read-only views of the object store; torch warns about
    them because writes would be undefined. Nothing here writes to inputs.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(x).to(device, non_blocking=True)


def output_penalty(model: nn.Module) -> torch.Tensor | float:
    """The reference's L2 on the output layer's kernel (Keras `kernel_regularizer`)."""
    weight = float(getattr(model, "output_l2", 0.0))
    output_layer = getattr(model, "output_layer", None)
    if not weight or not isinstance(output_layer, nn.Linear):
        return 0.0
    return weight * output_layer.weight.pow(2).sum()


def train_epochs(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    target: torch.Tensor,
    loss_fn: LossFn,
    *,
    epochs: int,
    batch_size: int,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> float:
    """Shuffled minibatch training, each batch through `augment` if given; returns the mean loss
    of the last epoch."""
    model.train()
    last = math.nan
    for _ in range(epochs):
        order = torch.randperm(len(x), device=x.device)
        total, count = 0.0, 0
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            inputs = x[idx] if augment is None else augment(x[idx])
            loss = loss_fn(model(inputs), target[idx])
            value = loss.item()
            if not math.isfinite(value):  # a step on it would make every weight nan
                raise FloatingPointError(
                    f"the training loss is {value} (the model's outputs or the loss are not "
                    "finite); its weights are left as before this batch"
                )
            optimizer.zero_grad(set_to_none=True)
            (loss + output_penalty(model)).backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            total += value * len(idx)
            count += len(idx)
        last = total / max(count, 1)
    return last


def own_class_scale(labels: torch.Tensor, n_classes: int, n_private: int) -> torch.Tensor:
    """(n_classes,): 0 for each of the private classes (the last `n_private` outputs) that a party's
    private `labels` do not hold, 1 for the rest: its own classes and the public set's, which its
    private images are known not to be (the two label sets are disjoint by construction)."""
    scale = torch.ones(n_classes, device=labels.device)
    scale[n_classes - n_private :] = 0.0
    scale[torch.unique(labels)] = 1.0
    return scale


def restricted_cross_entropy(logits: torch.Tensor, target: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with a restricted softmax (FedRS: Li & Zhan, KDD 2021, "FedRS: Federated Learning
    with Restricted Softmax for Label Distribution Non-IID Data"): each logit times `scale` first
    (`own_class_scale`: the private classes a party does not hold enter as a constant 0, with no gradient).

    Why: a party that holds images of private classes S only, trained with the full softmax, pushes every
    other private class's logit down on each of its images, and learns "everything is one of my classes"
    (on skewed splits 97-100% of its predictions name its own classes, docs/methods.md#skewed-splits); it
    has no evidence against those classes. Restricted, its revisit leaves what the digest taught it about
    them alone. (A party that holds every private class trains as with the full softmax.) FedRS scales
    them by some a in (0, 1) instead of 0; under Adam, which divides each weight's step
    by its gradient's size, the rows of those classes then move as fast as at a = 1 (measured at 0.1 and
    0.25: no gain over the full softmax), so only 0 is offered."""
    return F.cross_entropy(logits * scale, target)


def shift_pixels(revisit_shift: int | str, height: int, width: int) -> int:
    """The most pixels `revisit_shift` moves an image of `height` x `width` by: the number itself, or for
    `auto` 2 pixels per 28 of the smaller side, rounded, at least 1 (2 on 28x28 and 32x32, 1 on 8x8).

    Why `auto`: the recipe's 2 pixels were measured on 28x28 images (docs/methods.md); on the 8x8 digits of
    the `quick` preset 2 pixels are a quarter of the image, and a revisit that moves digits that far cost
    the recipe its gain there (docs/config.md#revisit_shift)."""
    if revisit_shift == "auto":
        return max(1, round(2 * min(height, width) / 28))
    return int(revisit_shift)


def random_shift(x: torch.Tensor, pixels: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image of the batch `x` (n, C, H, W) moved by its own random offset of up to `pixels`
    rows and columns either way, its border pixels repeated into the gap.

    Why: a party fits its few private images perfectly, so revisiting them unchanged gives almost
    no gradient and cannot pull the model back to its task after a digest step; the same images,
    shifted, still do (label-preserving augmentation; docs/methods.md). Offsets are drawn on the
    CPU from `generator`, default torch's global RNG (each party's own stream), whatever the device."""
    n, channels, h, w = x.shape
    padded = F.pad(x, (pixels, pixels, pixels, pixels), mode="replicate")
    dy, dx = torch.randint(0, 2 * pixels + 1, (2, n, 1), generator=generator).to(x.device)
    rows = (dy + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx + torch.arange(w, device=x.device))[:, None, None, :]
    images = torch.arange(n, device=x.device)[:, None, None, None]
    return padded[images, torch.arange(channels, device=x.device)[None, :, None, None], rows, cols]


def fit_classifier(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    patience: int = 0,
    min_delta: float = 0.0,
    eval_batch_size: int = 256,
) -> int:
    """Cross-entropy training with a fresh Adam; early stopping on `val` accuracy.

    Matches Keras' EarlyStopping(monitor='val_acc'): stop after `patience`
    epochs without a gain of at least `min_delta`; the last weights are kept.
    Returns the number of epochs run.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    best, waited = -math.inf, 0
    for epoch in range(1, epochs + 1):
        train_epochs(model, optimizer, x, y, F.cross_entropy, epochs=1, batch_size=batch_size)
        if val is None or patience <= 0:
            continue
        accuracy = evaluate(model, val[0], val[1], batch_size=eval_batch_size).accuracy
        if accuracy > best + min_delta:
            best, waited = accuracy, 0
        else:
            waited += 1
            if waited >= patience:
                return epoch
    return epochs


def consensus_distance(
    name: str, logits: torch.Tensor, consensus: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """How far a batch of logits is from the consensus: `l1` (the paper) or `mse` on logits, `kl` between
    their softmax at `temperature` (scaled by T^2)."""
    if name == "l1":
        return F.l1_loss(logits, consensus)
    if name == "mse":
        return F.mse_loss(logits, consensus)
    if name == "kl":
        log_p = F.log_softmax(logits / temperature, dim=1)
        q = F.softmax(consensus / temperature, dim=1)
        return F.kl_div(log_p, q, reduction="batchmean") * temperature**2
    raise ValueError(f"unknown consensus distance '{name}'")


def soft_cross_entropy(student_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the student's softmax against soft targets (probabilities), mean over the batch."""
    return -(target * F.log_softmax(student_logits, dim=1)).sum(dim=1).mean()


def kl_to_probabilities(student_logits: torch.Tensor, target: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(target || softmax(student / T)) x T^2 (Hinton et al.'s scaling keeps gradients comparable across T);
    `target` holds probabilities already."""
    log_p = F.log_softmax(student_logits / temperature, dim=1)
    return F.kl_div(log_p, target, reduction="batchmean") * temperature**2


@torch.no_grad()
def recompute_bn_statistics(model: nn.Module, x: torch.Tensor, *, batch_size: int) -> None:
    """Precise BN (Wu & Johnson 2021, arXiv 2105.07576): replace every batch-norm layer's running
    statistics by their exact average over `x` (cumulative moving average: momentum None), with
    dropout off. Under short schedules and a slow momentum (Keras' 0.99) the running statistics
    lag the weights; this makes eval mode see the data the weights were trained on."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms or len(x) == 0:
        return
    momenta = [m.momentum for m in norms]
    model.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
        norm.train()
    try:
        for i in range(0, len(x), batch_size):
            model(x[i : i + batch_size])
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        model.eval()


STUCK = 1.5  # x the majority share: a fit below it learnt no more than the most common class


def fit_is_stuck(train_accuracy: float, y: torch.Tensor) -> bool:
    """A fit that scores on its own training labels `y` less than 1.5x what always answering their
    most common class scores (a fit stuck on one class scores exactly that; a single-class set is
    never stuck; where 1.5x that exceeds 1, any imperfect fit counts)."""
    majority = torch.bincount(y.cpu()).max().item() / max(len(y), 1)
    return train_accuracy < min(STUCK * majority, 1.0)


@torch.no_grad()
def batch_norm_gap(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int) -> tuple[float, float]:
    """(accuracy with the running statistics, accuracy with each batch's own statistics) on `x`, on a
    copy of the model (its running statistics stay as they are). A large gap on data the model was
    trained on means the running statistics lag the weights."""
    import copy

    eval_accuracy = evaluate(model, x, y, batch_size=batch_size).accuracy
    if not any(isinstance(module, nn.modules.batchnorm._BatchNorm) for module in model.modules()):
        return eval_accuracy, eval_accuracy  # no statistics: the probe below would be the model itself
    probe = copy.deepcopy(model).eval()
    for module in probe.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.train()
    correct = sum(
        int((probe(x[i : i + batch_size]).argmax(dim=1) == y[i : i + batch_size]).sum().item())
        for i in range(0, len(x), batch_size)
    )
    return eval_accuracy, correct / max(len(x), 1)


@torch.no_grad()
def class_scores(model: nn.Module, x: torch.Tensor, *, batch_size: int) -> torch.Tensor:
    """Logits on `x` in inference mode, float32 on the CPU: (n, classes)."""
    model.eval()
    out = [model(x[i : i + batch_size]).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out)


def own_class_share(own_y: torch.Tensor, predicted: torch.Tensor) -> tuple[int, float]:
    """(classes among the labels `own_y` of a party's private data, share of its model's predictions that
    name one of them; `predicted`: how many images it assigned to each class, `Scored.predicted`): a party
    that holds few classes and predicts only those cannot name the others."""
    own = torch.unique(own_y).to(predicted.device)
    total = predicted.sum()
    return len(own), float(predicted[own].sum() / total) if total else 0.0  # a float32 share


class Scored(NamedTuple):
    """One pass of a model over a labelled set: accuracy (argmax over all outputs), mean cross-entropy,
    and how many images it assigned to each class (`own_class_share` reads it; (classes,) int64)."""

    accuracy: float
    loss: float
    predicted: torch.Tensor


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int) -> Scored:
    """Accuracy, mean cross-entropy and predicted classes on a labelled set, in one pass."""
    model.eval()
    correct, loss, guesses, classes = 0, 0.0, [], 0
    for i in range(0, len(x), batch_size):
        logits = model(x[i : i + batch_size])
        target = y[i : i + batch_size]
        wide = logits.to(torch.promote_types(logits.dtype, torch.float32))  # a float16 sum overflows
        loss += F.cross_entropy(wide, target, reduction="sum").item()
        guesses.append(logits.argmax(dim=1))
        correct += int((guesses[-1] == target).sum().item())
        classes = logits.shape[1]
    if not math.isfinite(loss):  # a nan accuracy of 0 must not read as a result
        raise FloatingPointError(f"the evaluation loss is {loss}: the model's outputs are not finite")
    predicted = torch.bincount(torch.cat(guesses).cpu(), minlength=classes)
    return Scored(correct / len(x), loss / len(x), predicted)
