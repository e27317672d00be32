"""Plug-ins that tests name by import path ("plugin_fixtures:tiny_mlp"): importable from the tests'
directory, which pytest and the Ray workers it starts have on their path."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import fedmd_ray
from fedmd_ray import RoundInfo, Strategy


def tiny_mlp(input_shape: tuple[int, int, int], n_classes: int) -> nn.Module:
    c, h, w = input_shape
    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 24), nn.ReLU(), nn.Linear(24, n_classes))


def raises(input_shape: tuple[int, int, int], n_classes: int) -> nn.Module:
    raise RuntimeError("cannot build this")


def not_a_module(input_shape: tuple[int, int, int], n_classes: int) -> object:
    return "a string"


def wrong_output(input_shape: tuple[int, int, int], n_classes: int) -> nn.Module:
    c, h, w = input_shape
    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, n_classes + 1))


def no_arguments() -> nn.Module:
    return nn.Linear(1, 1)


def unregistered_layers(input_shape: tuple[int, int, int], n_classes: int) -> nn.Module:
    """The plain-list mistake: the Linear is not a submodule, so the model has no parameters."""
    c, h, w = input_shape

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = [nn.Linear(c * h * w, n_classes)]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.layers[0](x.flatten(1))

    return Net()


def holds_a_lock(input_shape: tuple[int, int, int], n_classes: int) -> nn.Module:
    import threading

    model = tiny_mlp(input_shape, n_classes)
    model.lock = threading.Lock()  # type: ignore[assignment]
    return model


class _TupleWhenTraining(nn.Sequential):
    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        out = super().forward(x)
        return (out, out) if self.training else out


def nan_on_real_images(input_shape: tuple[int, int, int], n_classes: int) -> nn.Module:
    """A model whose outputs are finite on the all-zero probe images and nan on any real image."""
    c, h, w = input_shape

    class NanOnImages(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(c * h * w, n_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            flat = x.flatten(1)
            return self.linear(flat) + torch.sqrt(-flat.abs().sum(dim=1, keepdim=True))  # 0 on zeros, else nan

    return NanOnImages()


def tuple_when_training(input_shape: tuple[int, int, int], n_classes: int) -> nn.Module:
    c, h, w = input_shape
    return _TupleWhenTraining(nn.Flatten(), nn.Linear(c * h * w, n_classes))


NOT_CALLABLE = 3


def digits_subset() -> fedmd_ray.LabeledImages:
    """The built-in digits through a user loader (same arrays)."""
    return fedmd_ray.data.load_source("digits")


class FailsOnLargeBatches(Strategy):
    """Passes the trial round (4 samples) and raises in a real digest (batches of 256)."""

    def aggregate(self, scores: np.ndarray, info: RoundInfo) -> np.ndarray:
        return scores.mean(axis=0)

    def digest_loss(self, student_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if len(student_logits) > 4:
            raise ZeroDivisionError("digest blew up")
        return (student_logits - target).abs().mean()


class FailsInRoundTwo(Strategy):
    def aggregate(self, scores: np.ndarray, info: RoundInfo) -> np.ndarray:
        if info.round == 2:
            raise KeyError("no such column")
        return scores.mean(axis=0)

    def digest_loss(self, student_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (student_logits - target).abs().mean()


class NanLossOnLargeBatches(FailsOnLargeBatches):
    """Passes the trial round and returns a nan loss in a real digest."""

    def digest_loss(self, student_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = (student_logits - target).abs().mean()
        return loss * float("nan") if len(student_logits) > 4 else loss


class StringStateInRoundTwo(FailsInRoundTwo):
    """Numeric state in the trial round and round 1; a string array after round 2's aggregate."""

    def __init__(self) -> None:
        self.round = 0

    def aggregate(self, scores: np.ndarray, info: RoundInfo) -> np.ndarray:
        self.round = info.round
        return scores.mean(axis=0)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"label": np.array(["x"])} if self.round >= 2 else {"round": np.array([self.round])}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.round = int(state["round"][0])


class StateWithoutLoad(FailsInRoundTwo):
    """Returns state but inherits the base class's `load_state_dict`: a resume could not restore it."""

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"n": np.zeros(1)}


class WrongShapeInRoundTwo(FailsInRoundTwo):
    def aggregate(self, scores: np.ndarray, info: RoundInfo) -> np.ndarray:
        return scores[:, :3] if info.round == 2 else scores.mean(axis=0)


class BadShare(FailsInRoundTwo):
    def share(self, logits: torch.Tensor) -> torch.Tensor:
        return logits[:, :2]


class ScalarlessLoss(FailsInRoundTwo):
    def digest_loss(self, student_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (student_logits - target).abs()


class SharesState(FailsInRoundTwo):
    def state_dict(self) -> dict[str, np.ndarray]:
        return {"names": np.array(["a", "bb"])}


class InverseDeviation(Strategy):
    """Weights each party by 1 / its distance to the median: finite whenever parties disagree."""

    def aggregate(self, scores: np.ndarray, info: RoundInfo) -> np.ndarray:
        deviation = np.abs(scores - np.median(scores, axis=0)).mean(axis=(1, 2))
        weights = (1 / deviation) / (1 / deviation).sum()
        return np.einsum("p,pnc->nc", weights, scores).astype(np.float32)

    def digest_loss(self, student_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (student_logits - target).abs().mean()


class HoldsALock(FailsInRoundTwo):
    def __init__(self) -> None:
        import threading

        self.lock = threading.Lock()


class ExitsInAggregate(FailsInRoundTwo):
    """Passes the trial round (4 samples); calls `sys.exit(0)` in a real round's aggregate: a plug-in's exit
    must never look like a finished run."""

    def aggregate(self, scores: np.ndarray, info: RoundInfo) -> np.ndarray:
        if scores.shape[1] > 4:
            import sys

            sys.exit(0)
        return scores.mean(axis=0)


def exiting_loader() -> fedmd_ray.LabeledImages:
    import sys

    sys.exit(0)


class ExitsInDigest(FailsInRoundTwo):
    """Passes the trial round (4 samples); `sys.exit(0)` in a real digest, on a party."""

    def digest_loss(self, student_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if len(student_logits) > 4:
            import sys

            sys.exit(0)
        return (student_logits - target).abs().mean()


class Float64Overflow(FailsInRoundTwo):
    """Finite float64 targets beyond float32's range."""

    def aggregate(self, scores: np.ndarray, info: RoundInfo) -> np.ndarray:
        return scores.mean(axis=0).astype(np.float64) * 1e300


from shutil import rmtree as reexported_rmtree  # noqa: E402,F401  a standard-library function under a plug-in's name
