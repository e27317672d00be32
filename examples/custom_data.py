"""Bring your own data: arrays from a loader, and an .npz file.

A data source is anything that yields a `fedmd_ray.LabeledImages`: a train and a test
`Split` of images `(n, C, H, W)` float32 in [0, 1] with integer labels, and the class
names. Hand it to a run as

- a loader registered by name (`fedmd_ray.register_source`) or given by import path
  (`--set public_data=mypkg.data:load`),
- an `.npz` file with keys x_train, y_train, x_test, y_test (optional class_names), or
- an image folder: ROOT/train/<class>/*.png and ROOT/test/<class>/*.

Every source is checked before Ray starts (shapes, value range, NaN, labels) and shipped
to the parties through Ray's object store: workers need no files.

Here the public set is scikit-learn's 8x8 digits 0-4 (through a loader), the private task
is "noisy digits 5-9" stored in an .npz file, as a user's own data would be.

Run:  python examples/custom_data.py [--rounds 5] [--npz my_private.npz]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

import fedmd_ray


def clean_digits() -> fedmd_ray.LabeledImages:
    """scikit-learn's digits as a source: a fixed 80/20 split, pixels scaled to [0, 1]."""
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]  # (1797, 1, 8, 8)
    y = digits.target.astype(np.int64)
    test = np.random.default_rng(0).random(len(y)) < 0.2
    return fedmd_ray.LabeledImages(
        train=fedmd_ray.Split(x[~test], y[~test]),
        test=fedmd_ray.Split(x[test], y[test]),
        class_names=tuple(str(d) for d in range(10)),
    )


def write_noisy_digits(path: Path) -> None:
    """The private data as a user might have it on disk: uint8 pixels, integer labels, class names."""
    source = clean_digits()
    rng = np.random.default_rng(1)

    def noisy(x: np.ndarray) -> np.ndarray:
        return np.clip(x[:, 0] + rng.normal(0, 0.15, x[:, 0].shape), 0, 1) * 255  # (n, 8, 8)

    np.savez(
        path,
        x_train=noisy(source.train.x).astype(np.uint8),
        y_train=source.train.y,
        x_test=noisy(source.test.x).astype(np.uint8),
        y_test=source.test.y,
        class_names=np.array(source.class_names),
    )


fedmd_ray.register_source("clean-digits", clean_digits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--npz", help="where to write the private .npz (default: a temporary directory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(args.npz or Path(tmp) / "noisy_digits.npz")
        write_noisy_digits(npz)
        config = fedmd_ray.preset(
            "quick",
            public_data="clean-digits",
            public_classes=(0, 1, 2, 3, 4),
            private_data=str(npz),
            private_classes=(5, 6, 7, 8, 9),
            rounds=args.rounds,
        )
        fedmd_ray.run(config, verbose=True)  # progress on stderr


if __name__ == "__main__":
    main()
