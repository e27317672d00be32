"""Labeled image sources: registry, offline loaders, and the one-time fetch."""

from fedmd_ray.data.fetch import fetch
from fedmd_ray.data.sources import (
    LabeledImages,
    SourceInfo,
    Split,
    default_data_root,
    load_source,
    source_info,
    source_names,
)

__all__ = [
    "LabeledImages",
    "SourceInfo",
    "Split",
    "default_data_root",
    "fetch",
    "load_source",
    "source_info",
    "source_names",
]
