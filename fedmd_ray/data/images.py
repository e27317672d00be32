"""What every data source returns, and the one check every source's arrays pass.

A source (built in, registered, an import path, an `.npz` file or an image folder) is
loaded into a `LabeledImages`: a train and a test `Split` of images `(n, C, H, W)`
float32 in [0, 1] with integer labels `0..len(class_names)-1`, and optionally one group
id per image (`groups="writer"`: the writer of each image, for `partition=writer`;
`groups="superclass"`: a superclass id, for `partition=superclass`, named by
`group_names`). `check_images` is the only gate: the built-in loaders go through it
like a user's loader, before Ray starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from fedmd_ray.errors import DataError

GroupKind = Literal["writer", "superclass"]


@dataclass(frozen=True)
class Split:
    """One split of a source. A loader may give any numeric arrays; `check_images` checks them and
    returns float32 images and int64 labels and groups, C-contiguous and read-only (they may be shared)."""

    x: npt.NDArray[Any]  # (n, C, H, W) float32 in [0, 1], C-contiguous
    y: npt.NDArray[Any]  # (n,) int64, class ids 0..len(class_names)-1
    groups: npt.NDArray[Any] | None = None  # (n,) int64 group id per image, or None


@dataclass(frozen=True)
class LabeledImages:
    """One data source, loaded: what a source loader (`register_source`, an import path) returns.

    `groups` says what `Split.groups` holds (None: no group ids); `group_names` names the
    superclass ids (`partition=superclass` selects by them).
    """

    train: Split
    test: Split
    class_names: tuple[str, ...]
    groups: GroupKind | None = None
    group_names: tuple[str, ...] = ()
    name: str = ""


def freeze(x: npt.ArrayLike, y: npt.ArrayLike, groups: npt.ArrayLike | None = None) -> Split:
    """A Split with C-contiguous, read-only arrays (they are cached and shared): float32 images,
    int64 labels and groups. Only call it on arrays `check_images` accepts."""
    split = Split(
        np.ascontiguousarray(x, dtype=np.float32),
        np.ascontiguousarray(y, dtype=np.int64),
        None if groups is None else np.ascontiguousarray(groups, dtype=np.int64),
    )
    for arr in (split.x, split.y, split.groups):
        if arr is not None:
            arr.flags.writeable = False
    return split


def check_images(data: Any, what: str) -> LabeledImages:
    """`data` checked and normalised (float32 images, int64 labels, read-only), or DataError naming
    `what` and the problem: shapes, dtypes, value range, NaN/inf, labels outside the class list,
    group ids, train/test image shapes."""
    if not isinstance(data, LabeledImages):
        raise DataError(f"{what} returned {type(data).__name__}; a source loader must return fedmd_ray.LabeledImages")
    names = data.class_names
    if not isinstance(names, (tuple, list)) or not names or not all(isinstance(n, str) for n in names):
        raise DataError(f"{what}: class_names must be a non-empty list of strings, got {names!r}")
    if data.groups not in (None, "writer", "superclass"):
        raise DataError(f"{what}: groups={data.groups!r} must be None, 'writer' or 'superclass'")
    splits = {}
    for label, split in (("train", data.train), ("test", data.test)):
        splits[label] = _check_split(split, len(names), data.groups is not None, f"{what} ({label} split)")
    train_shape, test_shape = splits["train"].x.shape[1:], splits["test"].x.shape[1:]
    if train_shape != test_shape:
        raise DataError(f"{what}: train images are {train_shape} but test images are {test_shape}; they must match")
    if data.groups == "superclass":
        ids = np.concatenate([g for g in (splits["train"].groups, splits["test"].groups) if g is not None])
        n_groups = len(data.group_names)
        if not n_groups or (ids.size and not 0 <= ids.min() <= ids.max() < n_groups):
            raise DataError(f"{what}: superclass ids must lie in 0..len(group_names)-1 ({n_groups} names given)")
    return LabeledImages(splits["train"], splits["test"], tuple(names), data.groups, tuple(data.group_names), data.name)


def _check_split(split: Any, n_classes: int, with_groups: bool, what: str) -> Split:
    if not isinstance(split, Split):
        raise DataError(f"{what} is {type(split).__name__}, not a fedmd_ray.data.Split")
    x, y = split.x, split.y
    if not isinstance(x, np.ndarray) or x.ndim != 4 or min(x.shape[1:], default=0) < 1:
        got = f"{x.shape} {x.dtype}" if isinstance(x, np.ndarray) else type(x).__name__
        raise DataError(f"{what}: images must be a numpy array (n, C, H, W), got {got}")
    if len(x) == 0:
        raise DataError(f"{what} holds no images")
    if x.dtype.kind != "f":
        raise DataError(f"{what}: images are {x.dtype}; give floats in [0, 1] (e.g. uint8 pixels / 255)")
    if not np.isfinite(x).all():
        raise DataError(f"{what}: images hold NaN or infinite values")
    low, high = float(x.min()), float(x.max())
    if low < 0 or high > 1:
        raise DataError(f"{what}: image values lie in [{low:g}, {high:g}]; they must lie in [0, 1]")
    y = check_ids(y, len(x), f"{what}: labels")
    if y.size and not 0 <= y.min() <= y.max() < n_classes:
        raise DataError(
            f"{what}: labels lie in {y.min()}..{y.max()} but there are {n_classes} class names (ids 0..{n_classes - 1})"
        )
    groups = split.groups
    if with_groups != (groups is not None):
        raise DataError(f"{what}: group ids must be given for both splits when `groups` is set, and only then")
    return freeze(x, y, None if groups is None else check_ids(groups, len(x), f"{what}: group ids"))


def check_ids(ids: Any, n: int, what: str) -> npt.NDArray[np.int64]:
    """Integer ids, one per image: a float array is refused even when its values are whole (a float
    label file is more often a mistake, e.g. one-hot or scaled labels, than a convenience)."""
    if not isinstance(ids, np.ndarray) or ids.dtype.kind not in "iu":
        got = f"{ids.dtype} {ids.shape}" if isinstance(ids, np.ndarray) else type(ids).__name__
        raise DataError(f"{what} must be an integer numpy array, got {got}; convert whole numbers with .astype(int)")
    if ids.shape != (n,):
        raise DataError(f"{what} are shaped {ids.shape}; expected ({n},), one per image")
    if ids.size and ids.min() < 0:
        raise DataError(f"{what} hold negative values ({ids.min()})")
    return ids.astype(np.int64, copy=False)
