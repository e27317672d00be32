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


class WrongShapeInRoundTwo(FailsInRoundTwo):
    def aggregate(self, scores: np.ndarray, info: RoundInfo) -> np.ndarray:
        return scores[:, :3] if info.round == 2 else scores.mean(axis=0)


class BadShare(FailsInRoundTwo):
    def share(self, logits: torch.Tensor) -> torch.Tensor:
        return logits[:, :2]


class ScalarlessLoss(FailsInRoundTwo):
    def digest_loss(self, student_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (student_logits - target).abs()
