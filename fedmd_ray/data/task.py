"""Build a FedMD task from a config: public set, party data, private test set.

This is where the public/private split becomes data: any registered source and
any class lists. Labels are remapped onto one output space, public classes
first (0..C0-1), private classes after them (C0..C0+C1-1). It is also where the
checks that need the data run (subset size, samples per class), before Ray
starts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fedmd_ray.config import FedMDConfig
from fedmd_ray.data.images import LabeledImages, Split
from fedmd_ray.data.partition import dirichlet_partition, iid_partition, superclass_partition, writer_partition
from fedmd_ray.data.resolve import SourcePlugin, load_source, resolve_source
from fedmd_ray.data.sampling import Indices, stratified_sample
from fedmd_ray.data.sources import resolve_data_root
from fedmd_ray.errors import ConfigError, DataError
from fedmd_ray.seeding import rng

Images = npt.NDArray[np.float32]  # (n, C, H, W) in [0, 1]
Labels = npt.NDArray[np.int64]  # (n,)


@dataclass(frozen=True)
class FedMDTask:
    """Arrays shared by all parties; parties hold indices into `private_x`."""

    public_x: Images
    public_y: Labels  # 0..C0-1
    public_val_x: Images  # held-out public images for early stopping
    public_val_y: Labels
    private_x: Images  # every image some party holds (nothing else); parties index into it
    private_y: Labels  # C0..C0+C1-1
    test_x: Images  # private-task test set
    test_y: Labels
    party_indices: tuple[Indices, ...]
    n_classes: int
    class_names: tuple[str, ...] = ()  # of the label space: the public classes, then the private ones

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.public_x.shape[1:]
        return (c, h, w)

    @property
    def union_indices(self) -> Indices:
        """All parties' private data together (the upper bound's training set)."""
        return np.sort(np.concatenate(self.party_indices))


def load_task(config: FedMDConfig) -> FedMDTask:
    """The data a run of `config` uses, checked as a run checks it: the public set, each party's private
    images, the test set (`test_x`, `test_y`) and the class names (`fedmd_ray.load_task`, e.g. to try a
    party's model from `fedmd_ray.load_party_model` on the run's test images)."""
    if not isinstance(config, FedMDConfig):
        raise TypeError(f"load_task() takes a FedMDConfig, got {type(config).__name__}")
    return build_task(config)


def build_task(config: FedMDConfig) -> FedMDTask:
    """Load, check, filter, remap and partition the data the config asks for."""
    root = resolve_data_root(config.data_root)
    public_source = resolve_source("public_data", config.public_data)
    private_source = resolve_source("private_data", config.private_data)
    _check_disjoint(config, public_source, private_source)
    public = load_source(public_source, root)
    private = load_source(private_source, root)
    _check_classes(config, public, private)
    public_classes = tuple(range(len(public.class_names))) if config.public_classes is None else config.public_classes
    n_public = len(public_classes)

    pub_train, pub_val = _public_sets(config, public, public_classes)
    shape = pub_train.x.shape[1:]
    _check_convertible(shape, private.train.x.shape[1:], config)
    _check_shift(shape, config)
    by_superclass = config.partition == "superclass"
    priv_train = _select(private.train, config.private_classes, offset=n_public, by_groups=by_superclass)
    priv_test = _select(private.test, config.private_classes, offset=n_public, by_groups=by_superclass)
    if by_superclass:
        _check_superclasses_disjoint(config, public_classes, priv_train, priv_test)
    _check_not_empty(config, pub_val, priv_test)
    if config.eval_size is not None:
        pub_val = _at_most(pub_val, config.eval_size, rng(config.seed, "eval_size", "public"))
        priv_test = _at_most(priv_test, config.eval_size, rng(config.seed, "eval_size", "test"))
    parts = _partition(config, priv_train, n_public)
    # Keep only the images some party holds (a few per class, out of a pool of thousands):
    # they are what is resized, put into the object store and shipped to every actor.
    # The map is monotonic, so every party's images keep their order.
    held = np.unique(np.concatenate(parts))
    return FedMDTask(
        public_x=pub_train.x,
        public_y=pub_train.y,
        public_val_x=pub_val.x,
        public_val_y=pub_val.y,
        private_x=conform_images(priv_train.x[held], shape),
        private_y=priv_train.y[held],
        test_x=conform_images(priv_test.x, shape),
        test_y=priv_test.y,
        party_indices=tuple(np.searchsorted(held, p) for p in parts),
        n_classes=n_public + len(config.private_classes),
        class_names=(
            *(public.class_names[c] for c in public_classes),
            *((private.group_names if by_superclass else private.class_names)[c] for c in config.private_classes),
        ),
    )


def _public_sets(config: FedMDConfig, public: LabeledImages, public_classes: tuple[int, ...]) -> tuple[Split, Split]:
    """D0 (training, at most `public_size` images) and its held-out part, their classes remapped to 0..;
    DataError/ConfigError when a class has no image or the alignment subset cannot be drawn from D0."""
    pub_train = _select(public.train, public_classes, offset=0)
    pub_val = _select(public.test, public_classes, offset=0)
    empty = [c for i, c in enumerate(public_classes) if not (pub_train.y == i).any()]
    if empty:
        raise DataError(
            f"public classes {empty} of {_name(config.public_data)!r} have no training images; leave them out "
            "with public_classes=..."
        )
    if config.public_size is not None:
        if config.public_size > len(pub_train.y):
            raise ConfigError(
                f"public_size={config.public_size} exceeds the public set ({len(pub_train.y)} images of "
                f"classes {list(public_classes)} in {_name(config.public_data)!r}); lower it or set it to None"
            )
        pub_train = _at_most(pub_train, config.public_size, rng(config.seed, "public_size"))
    if config.subset_size > len(pub_train.y):
        raise ConfigError(
            f"subset_size={config.subset_size} exceeds the public set ({len(pub_train.y)} images); "
            "lower it or choose a larger public data set"
        )

    return pub_train, pub_val


def _at_most(split: Split, size: int, generator: np.random.Generator) -> Split:
    """A stratified sample of `size` images of `split`, or all of them if it has no more."""
    if len(split.y) <= size:
        return split
    keep = stratified_sample(generator, split.y, size)
    return Split(split.x[keep], split.y[keep], None if split.groups is None else split.groups[keep])


def _select(split: Split, classes: tuple[int, ...], offset: int, *, by_groups: bool = False) -> Split:
    """Keep `classes` and relabel them offset, offset+1, ... in list order.

    `by_groups`: the classes are superclass ids (`split.groups`); the kept
    samples' fine labels move to `groups`, where the superclass partition reads them.
    """
    keys = split.groups if by_groups else split.y
    if keys is None:
        raise ConfigError("this data source has no superclass labels")
    lookup = np.full(max(int(keys.max(initial=0)), max(classes)) + 1, -1, dtype=np.int64)
    lookup[list(classes)] = np.arange(len(classes)) + offset
    keep = np.flatnonzero(np.isin(keys, classes))
    other = split.y if by_groups else split.groups
    return Split(split.x[keep], lookup[keys[keep]], None if other is None else other[keep])


def _check_not_empty(config: FedMDConfig, public_val: Split, private_test: Split) -> None:
    """Every party is tested on these each phase: an empty one could only fail mid-run."""
    for split, what, source, classes in (
        (public_val, "held-out public images (early stopping)", config.public_data, config.public_classes),
        (private_test, "private test images", config.private_data, config.private_classes),
    ):
        if len(split.y) == 0:
            which = "all classes" if classes is None else f"classes {list(classes)}"
            raise DataError(
                f"no {what}: the test split of '{source}' has no images of {which}; check the "
                "data files or choose other classes"
            )


def _check_classes(config: FedMDConfig, public: LabeledImages, private: LabeledImages) -> None:
    """Class ids against the loaded sources; the partition against the private source's group ids."""
    if config.partition in ("writer", "superclass") and private.groups != config.partition:
        kinds = {
            "writer": "writer ids (emnist-letters from its .mat file, or groups_train/groups_test)",
            "superclass": "superclass ids (cifar100, or group_kind='superclass')",
        }
        raise ConfigError(
            f"partition='{config.partition}' needs {kinds[config.partition]}, which private_data="
            f"{_name(config.private_data)!r} does not have; use partition='iid' or 'noniid', or such a source"
        )
    by_superclass = config.partition == "superclass"
    _check_ids("public_classes", config.public_classes, len(public.class_names), "classes")
    _check_ids(
        "private_classes",
        config.private_classes,
        len(private.group_names if by_superclass else private.class_names),
        "superclasses" if by_superclass else "classes",
    )


def _check_ids(name: str, classes: tuple[int, ...] | None, n_available: int, unit: str) -> None:
    if classes is None:
        return
    bad = [c for c in classes if not 0 <= c < n_available]
    if bad:
        raise ConfigError(
            f"{name}={list(classes)} is not allowed: must be class ids in 0..{n_available - 1} (the source has "
            f"{n_available} {unit})"
        )


def _check_disjoint(config: FedMDConfig, public: SourcePlugin, private: SourcePlugin) -> None:
    """The private task must not hold public classes of the same images (superclasses: checked on the
    data, in `_check_superclasses_disjoint`)."""
    if public.images != private.images or config.partition == "superclass":
        return
    public_ids = None if config.public_classes is None else set(config.public_classes)
    shared = sorted(set(config.private_classes) if public_ids is None else public_ids & set(config.private_classes))
    if shared:
        raise ConfigError(
            f"public_classes and private_classes share classes {shared} of the same images "
            f"({public.name!r}, {private.name!r}); the private task must use classes the public set does not hold"
        )


def _name(entry: object) -> str:
    from fedmd_ray.plugins import describe

    return describe(entry)


def _check_superclasses_disjoint(config: FedMDConfig, public_classes: tuple[int, ...], *private: Split) -> None:
    """Private superclasses of the public set's own source must not hold a public class; only
    the data knows which fine classes a superclass holds (`Split.groups` after `_select`)."""
    if resolve_source("public_data", config.public_data).images != \
            resolve_source("private_data", config.private_data).images:  # fmt: skip
        return
    fine = set().union(*(np.unique(split.groups).tolist() for split in private if split.groups is not None))
    shared = sorted(fine & set(public_classes))
    if shared:
        raise ConfigError(
            f"private superclasses {list(config.private_classes)} hold fine classes {shared}, which are "
            f"public_classes of the same source {_name(config.public_data)!r}; the private task must use classes "
            "the public set does not hold"
        )


def _partition(config: FedMDConfig, pool: Split, n_public: int) -> list[Indices]:
    """Each party's indices into `pool` (labels n_public.. after `_select`)."""
    labels = pool.y
    counts = {int(c): int((labels == c).sum()) for c in np.unique(labels)}
    n_private = len(config.private_classes)
    if len(counts) < n_private:
        missing = [c for i, c in enumerate(config.private_classes) if i + n_public not in counts]
        raise DataError(
            f"private_classes={list(config.private_classes)}: {missing} have no training images "
            f"in {_name(config.private_data)!r}"
        )
    seed_rng = rng(config.seed, "partition")
    if config.partition in ("writer", "superclass"):
        return _grouped_partition(config, pool, seed_rng)
    need = config.n_parties * config.samples_per_class
    if config.partition == "iid":
        label, scarce = min(counts.items(), key=lambda kv: kv[1])
        if need > scarce:
            source_class = config.private_classes[label - n_public]
            raise ConfigError(
                f"samples_per_class={config.samples_per_class} x n_parties={config.n_parties} = {need} "
                f"exceeds the {scarce} training images of private class {source_class} in "
                f"{_name(config.private_data)!r}; lower either"
            )
        return iid_partition(seed_rng, labels, config.n_parties, config.samples_per_class)
    total = need * n_private
    if total > len(labels):
        raise ConfigError(
            f"samples_per_class={config.samples_per_class} x {n_private} classes x n_parties={config.n_parties} "
            f"= {total} exceeds the {len(labels)} private training images; lower either"
        )
    return dirichlet_partition(seed_rng, labels, config.n_parties, config.samples_per_class, config.noniid_alpha)


def _grouped_partition(config: FedMDConfig, pool: Split, seed_rng: np.random.Generator) -> list[Indices]:
    """The paper's non-iid schemes; both need the source's group ids (checked in the config)."""
    if pool.groups is None:
        raise ConfigError(
            f"partition='{config.partition}' needs the group ids of {_name(config.private_data)!r}, which these "
            "files do not carry (emnist-letters: use the .mat file, which has writer ids)"
        )
    try:
        if config.partition == "writer":
            # reference: a writer qualifies with >= N_samples_per_class x len(private_classes) samples
            minimum = config.samples_per_class * len(config.private_classes)
            return writer_partition(seed_rng, pool.groups, config.n_parties, minimum)
        return superclass_partition(seed_rng, pool.y, pool.groups, config.n_parties, config.samples_per_class)
    except ValueError as exc:
        raise ConfigError(
            f"partition='{config.partition}' with n_parties={config.n_parties}, samples_per_class="
            f"{config.samples_per_class}: {exc}; lower either"
        ) from exc


def _check_convertible(public: tuple[int, ...], private: tuple[int, ...], config: FedMDConfig) -> None:
    """Private images are resized to the public shape (any size) and recoloured only between
    grayscale and colour (1 <-> 3 channels): 4 channels into 3 or 1 has no one meaning (alpha? infrared?)."""
    if public[0] != private[0] and {public[0], private[0]} != {1, 3}:
        raise DataError(
            f"public images are {tuple(public)} and private images {tuple(private)} (C, H, W): {private[0]} channels "
            f"cannot become {public[0]} (only grayscale <-> colour is converted); convert "
            f"{_name(config.private_data)!r} or choose another pairing"
        )


def _check_shift(shape: tuple[int, ...], config: FedMDConfig) -> None:
    """`revisit_shift` moves images by less than half their side: more would push the content out of
    the frame, leaving repeated border pixels."""
    from fedmd_ray.training import shift_pixels

    pixels = shift_pixels(config.revisit_shift, shape[1], shape[2])
    if 2 * pixels >= min(shape[1:]):
        here = f" ({pixels} pixel{'s' * (pixels != 1)} here)" if config.revisit_shift == "auto" else ""
        raise ConfigError(
            f"revisit_shift={config.revisit_shift}{here} moves the {shape[1]}x{shape[2]} "
            f"images (the public set's size, which private images are resized to) by half their side or more; use "
            f"at most {(min(shape[1:]) - 1) // 2}, e.g. 2 for 28x28"
        )


def conform_images(x: Images, shape: tuple[int, ...]) -> Images:
    """Resize/recolour images to the public set's (C, H, W) so one model takes both."""
    if x.shape[1:] == tuple(shape):
        return x
    import torch
    import torch.nn.functional as F

    channels, height, width = shape
    t = torch.from_numpy(np.ascontiguousarray(x))
    if t.shape[1] != channels:
        t = t.mean(dim=1, keepdim=True).expand(-1, channels, -1, -1)  # (n, C, h, w)
    if t.shape[2:] != (height, width):
        t = F.interpolate(t, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return t.clamp(0, 1).contiguous().numpy()
