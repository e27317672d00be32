"""Your own data from files: an `.npz` archive or a folder of images.

`.npz` keys (`numpy.savez`, no pickles):

    x_train, x_test   images: (n, H, W) or (n, C, H, W); uint8 pixels (divided by 255)
                      or floats in [0, 1]
    y_train, y_test   integer labels 0..K-1, shape (n,)
    class_names       optional: K strings (default "0".."K-1", K = largest label + 1)
    groups_train, groups_test   optional: one integer group id per image
    group_kind        optional with groups: "writer" (default) or "superclass"
    group_names       with group_kind="superclass": one name per superclass id

Image folder (torchvision's `ImageFolder` layout), read once into arrays:

    ROOT/train/<class name>/*.png|jpg|...
    ROOT/test/<class name>/*

Classes are the folder names of `train`, sorted; a `test` class missing from `train` is an
error. Images are grayscale if every file is, else RGB; images of another size than the
most common one are resized to it (bilinear), which is reported once.
"""

from __future__ import annotations

import collections
import logging
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fedmd_ray.data.formats import available_memory
from fedmd_ray.data.images import LabeledImages, Split, check_ids
from fedmd_ray.errors import DataError

log = logging.getLogger("fedmd_ray")
NPZ_REQUIRED = ("x_train", "y_train", "x_test", "y_test")


def load_npz(path: Path) -> LabeledImages:
    """An `.npz` archive with the keys above (checked afterwards by `check_images`)."""
    _check_unpacked_size(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except FileNotFoundError:
        raise DataError(f"data file {path} does not exist") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path} is not a readable .npz archive ({exc})") from exc
    missing = [k for k in NPZ_REQUIRED if k not in arrays]
    if missing:
        raise DataError(f"{path} lacks the key(s) {missing}; an .npz source needs {', '.join(NPZ_REQUIRED)}")
    train = Split(_images(arrays["x_train"], path), arrays["y_train"], arrays.get("groups_train"))
    test = Split(_images(arrays["x_test"], path), arrays["y_test"], arrays.get("groups_test"))
    names = _class_names(arrays, train, test, path)
    with_groups = train.groups is not None or test.groups is not None
    kind = str(arrays["group_kind"]) if "group_kind" in arrays else "writer" if with_groups else None
    group_names = _group_names(arrays, path)
    return LabeledImages(train, test, tuple(names), kind, group_names, str(path))  # type: ignore[arg-type]


def _check_unpacked_size(path: Path) -> None:
    """An archive whose members unpack to more bytes than the memory available is refused before one is
    unpacked (a zip member never unpacks to more than the size its directory declares)."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (OSError, ValueError, zipfile.BadZipFile):  # `np.load` says what is wrong with it
        return
    size, memory = sum(member.file_size for member in members), available_memory()
    if memory is not None and size > memory:
        largest = max(members, key=lambda member: member.file_size)
        raise DataError(
            f"{path} unpacks to {size} bytes ({largest.filename}: {largest.file_size}), more than the "
            f"{memory} bytes of memory available"
        )


def _class_names(arrays: dict[str, npt.NDArray[Any]], train: Split, test: Split, path: Path) -> list[str]:
    """The archive's `class_names` (a 1-D array), or "0".."K-1" from its (integer) labels. K comes from one
    number in the file, so it is bounded before K names (and models with K outputs) are made: a source
    without names has at most as many classes as images (one label of 10**12 would ask for 10**12 names)."""
    if "class_names" in arrays:
        names = arrays["class_names"]
        if names.ndim != 1:
            raise DataError(
                f"{path}: class_names is shaped {names.shape}; expected a 1-D array of names, one per class"
            )
        return [str(n) for n in names.tolist()]
    for part, split in (("train", train), ("test", test)):
        check_ids(split.y, len(split.x), f"{path} ({part} split): labels")  # integers, one per image, none < 0
    largest = max((int(split.y.max()) for split in (train, test) if split.y.size), default=-1)  # uint64-safe
    images = len(train.x) + len(test.x)
    if largest + 1 > images:
        raise DataError(
            f"{path}: its largest label is {largest}, so without class_names its classes would be 0..{largest}: "
            f"{largest + 1} classes for {images} images (train and test); number the classes 0..K-1 (np.unique(y, "
            "return_inverse=True) does) and store their names as class_names"
        )
    return [str(i) for i in range(largest + 1)]


def _group_names(arrays: dict[str, npt.NDArray[Any]], path: Path) -> tuple[str, ...]:
    """The archive's `group_names` (a 1-D array), or ()."""
    if "group_names" not in arrays:
        return ()
    names = arrays["group_names"]
    if names.ndim != 1:
        raise DataError(
            f"{path}: group_names is shaped {names.shape}; expected a 1-D array of names, one per superclass id"
        )
    return tuple(str(n) for n in names.tolist())


def _images(x: npt.NDArray[Any], path: Path) -> npt.NDArray[Any]:
    """(n, H, W) -> (n, 1, H, W); uint8 pixels -> floats k/255 (as every built-in source)."""
    if x.ndim == 3:
        x = x[:, None]  # (n, 1, H, W)
    if x.ndim == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        raise DataError(
            f"{path}: images {x.shape} look channels-last; store them as (n, C, H, W): x.transpose(0, 3, 1, 2)"
        )
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255)
    return x


def load_image_folder(root: Path) -> LabeledImages:
    """`root/train/<class>/*` and `root/test/<class>/*` read with torchvision's ImageFolder."""
    from torchvision.datasets import ImageFolder

    for part in ("train", "test"):
        if not (root / part).is_dir():
            raise DataError(f"image folder {root} has no {part}/ directory; expected {root}/{part}/<class name>/*.png")
        _refuse_link_loops(root / part)
    try:
        train_set, test_set = ImageFolder(str(root / "train")), ImageFolder(str(root / "test"))
    except (FileNotFoundError, OSError) as exc:  # a class folder without images, an unreadable tree
        raise DataError(f"image folder {root}: {exc}") from exc
    classes = train_set.classes
    unknown = sorted(set(test_set.classes) - set(classes))
    if unknown:
        raise DataError(f"image folder {root}: test classes {unknown} have no train/ folder")
    images = [_open(path) for path, _ in train_set.samples + test_set.samples]
    mode = "L" if all(image.mode in ("L", "1", "I;16", "I") for image in images) else "RGB"
    sizes = collections.Counter(image.size for image in images)
    size = sizes.most_common(1)[0][0]
    if len(sizes) > 1:
        log.warning(
            "image folder %s: %d of %d images resized to the most common size %dx%d",
            root,
            sum(n for s, n in sizes.items() if s != size),
            len(images),
            size[0],
            size[1],
        )
    arrays = np.stack([_pixels(image, mode, size) for image in images])  # (n, H, W) or (n, H, W, 3)
    arrays = arrays[:, None] if arrays.ndim == 3 else arrays.transpose(0, 3, 1, 2)  # (n, C, H, W)
    x = arrays.astype(np.float32) / np.float32(255)
    test_labels = np.array([classes.index(test_set.classes[t]) for _, t in test_set.samples], dtype=np.int64)
    n_train = len(train_set.samples)
    return LabeledImages(
        Split(x[:n_train], np.array(train_set.targets, dtype=np.int64)),
        Split(x[n_train:], test_labels),
        tuple(classes),
        name=str(root),
    )


def _refuse_link_loops(top: Path) -> None:
    """DataError when a symbolic link under `top` leads to a directory already on the way (torchvision
    follows links: a loop would be read again and again, to the depth the OS allows)."""
    import os

    for directory, subdirectories, _ in os.walk(top, followlinks=True):
        on_the_way = {
            os.path.realpath(str(p)) for p in [Path(directory), *Path(directory).parents] if str(p).startswith(str(top))
        }
        for name in subdirectories:
            link = Path(directory) / name
            if link.is_symlink() and os.path.realpath(link) in on_the_way:
                raise DataError(
                    f"image folder {top.parent}: the link {link} leads back to "
                    f"{os.path.realpath(link)}, a loop that would be read without end; remove it"
                )


def _open(path: str) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            return image
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from exc


def _pixels(image: Any, mode: str, size: tuple[int, int]) -> npt.NDArray[np.uint8]:
    from PIL import Image

    image = image.convert(mode)
    if image.size != size:
        image = image.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)
