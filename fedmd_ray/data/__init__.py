"""Labeled image sources: the built-ins, your own (loaders, .npz, image folders), the one-time fetch."""

from fedmd_ray.data.fetch import fetch
from fedmd_ray.data.images import LabeledImages, Split, check_images
from fedmd_ray.data.resolve import SourcePlugin, load_source, register_source, resolve_source
from fedmd_ray.data.sources import SourceInfo, default_data_root, source_info, source_names

__all__ = [
    "LabeledImages",
    "SourceInfo",
    "SourcePlugin",
    "Split",
    "check_images",
    "default_data_root",
    "fetch",
    "load_source",
    "register_source",
    "resolve_source",
    "source_info",
    "source_names",
]
