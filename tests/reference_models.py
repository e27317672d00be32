"""The built-in CNNs as they were before their ReLU moved into `models.MaxPool2x2`: what tests compare them with."""

from __future__ import annotations

import copy

from torch import nn

from fedmd_ray.models import MaxPool2x2


def relu_then_torch_pool(model: nn.Module) -> nn.Module:
    """A copy of a built-in CNN whose pooled stages run an `nn.ReLU`, then torch's own `nn.MaxPool2d(2)`, in
    place of the `nn.Identity` and the `MaxPool2x2(relu=True)` they have: the same parameters and numbering."""
    before = copy.deepcopy(model)
    layers = list(before.features)
    for i, layer in enumerate(layers):
        if isinstance(layer, MaxPool2x2):
            assert layer.relu and isinstance(layers[i - 1], nn.Identity)
            layers[i - 1], layers[i] = nn.ReLU(), nn.MaxPool2d(2)
    before.features = nn.Sequential(*layers)
    return before
