"""Bring your own model: a small ResNet among the built-in CNNs and MLPs.

FedMD lets every party keep its own architecture; only class scores travel. A model
is a factory `factory(input_shape, n_classes) -> nn.Module` whose module maps
`(N, C, H, W)` floats in [0, 1] to `(N, n_classes)` logits. Name it in `models` by
object (below), by a registered name (`fedmd_ray.register_model`), or by import path
from the command line:

    fedmd-ray run --preset quick --set models=custom_model:resnet8,cnn2-8-16,mlp-64   # from examples/

Run:  python examples/custom_model.py [--preset offline] [--rounds 5]
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

import fedmd_ray


class Block(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1) shortcut."""

    def __init__(self, channels_in: int, channels_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False),
            nn.BatchNorm2d(channels_out),
            nn.ReLU(),
            nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels_out),
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1 and channels_in == channels_out
            else nn.Sequential(
                nn.Conv2d(channels_in, channels_out, 1, stride, bias=False), nn.BatchNorm2d(channels_out)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


def resnet8(input_shape: tuple[int, int, int], n_classes: int) -> nn.Module:
    """A ResNet-8 for small images of any size (global average pooling before the head)."""
    channels = input_shape[0]
    return nn.Sequential(
        nn.Conv2d(channels, 16, 3, 1, 1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        Block(16, 16, 1),
        Block(16, 32, 2),
        Block(32, 64, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, n_classes),  # (N, n_classes) logits
    )


fedmd_ray.register_model("resnet8", resnet8)  # now `models=("resnet8", ...)` works in this process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick", help="quick (sklearn digits, ~1 min) or offline (MNIST)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", help="write the results here")
    args = parser.parse_args()
    # Party 0 gets the ResNet (by registered name); the others keep built-in specs.
    config = fedmd_ray.preset(args.preset, models=("resnet8", "cnn2-8-16", "mlp-128"), rounds=args.rounds)
    table = fedmd_ray.run(config, out_dir=args.out, overwrite=True, verbose=True)  # progress on stderr
    df = table.to_pandas()
    print(df[df.phase != "upper_bound"].pivot_table(index="round", columns="model", values="test_accuracy"))


if __name__ == "__main__":
    main()
