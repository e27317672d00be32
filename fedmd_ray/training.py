"""Training steps of FedMD in plain PyTorch (no Ray): fit, scores, digest, evaluate.

Random draws (shuffling, dropout) use torch's global RNG; the caller gives
each party its own RNG state (see `actors.participant`), which keeps results
independent of how parties share a process.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

Array = npt.NDArray[np.float32]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def as_tensor(x: np.ndarray, device: torch.device) -> torch.Tensor:
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
) -> float:
    """Shuffled minibatch training; returns the mean loss of the last epoch."""
    model.train()
    last = math.nan
    for _ in range(epochs):
        order = torch.randperm(len(x), device=x.device)
        total, count = 0.0, 0
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            loss = loss_fn(model(x[idx]), target[idx])
            optimizer.zero_grad(set_to_none=True)
            (loss + output_penalty(model)).backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            total += loss.item() * len(idx)
            count += len(idx)
        last = total / max(count, 1)
    return last


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
        accuracy, _ = evaluate(model, val[0], val[1], batch_size=eval_batch_size)
        if accuracy > best + min_delta:
            best, waited = accuracy, 0
        else:
            waited += 1
            if waited >= patience:
                return epoch
    return epochs


def digest_loss(name: str, temperature: float = 1.0) -> LossFn:
    """Loss toward the consensus: `l1` (paper) or `mse` on logits, `kl` on softened probabilities."""
    if name == "l1":
        return F.l1_loss
    if name == "mse":
        return F.mse_loss
    if name == "kl":

        def kl(logits: torch.Tensor, consensus: torch.Tensor) -> torch.Tensor:
            log_p = F.log_softmax(logits / temperature, dim=1)
            q = F.softmax(consensus / temperature, dim=1)
            return F.kl_div(log_p, q, reduction="batchmean") * temperature**2

        return kl
    raise ValueError(f"unknown digest loss '{name}'")


@torch.no_grad()
def class_scores(model: nn.Module, x: torch.Tensor, *, batch_size: int) -> torch.Tensor:
    """Logits on `x` in inference mode, float32 on the CPU: (n, classes)."""
    model.eval()
    out = [model(x[i : i + batch_size]).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int) -> tuple[float, float]:
    """Accuracy (argmax over all outputs) and mean cross-entropy on a labelled set."""
    model.eval()
    correct, loss = 0, 0.0
    for i in range(0, len(x), batch_size):
        logits = model(x[i : i + batch_size])
        target = y[i : i + batch_size]
        loss += F.cross_entropy(logits, target, reduction="sum").item()
        correct += int((logits.argmax(dim=1) == target).sum().item())
    return correct / len(x), loss / len(x)
