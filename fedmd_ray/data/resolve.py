"""Data-source entries -> checked images: one path for built-ins, your loaders and your files.

`public_data` / `private_data` may be

- a registered name: a built-in (`fedmd-ray data list`) or `register_source(name, loader)`;
- an import path `"package.module:loader"`;
- (Python API) the loader itself;
- a path to an `.npz` file or to an image folder (see `fedmd_ray.data.files`).

A loader takes no argument, or the resolved data root (`data_root`), and returns a
`LabeledImages`. Every source is loaded by the runner's process, before Ray starts,
checked by `check_images` and shipped through Ray's object store once: party processes
and worker nodes need no data files (sweep trials load it themselves, so a file source
must exist where trials run). Loaded sources are cached per process (read-only arrays).

Identity (in the fingerprint and the transfer-cache key): a built-in's name (with the
data root, a config field), a loader's import path and source hash
(`fedmd_ray.plugins.object_identity`), an `.npz` file's content hash, an image folder's
file list with sizes and modification times.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Union

from fedmd_ray.data.files import load_image_folder, load_npz
from fedmd_ray.data.images import LabeledImages, check_images
from fedmd_ray.data.sources import load_builtin, resolve_data_root, source_info, source_names
from fedmd_ray.errors import ConfigError, DataError
from fedmd_ray.plugins import (
    Registry,
    check_users_code,
    describe,
    is_import_path,
    load_object,
    object_identity,
    plugin_code,
    takes_arguments,
)

SourceLoader = Callable[..., LabeledImages]
"""`loader()` or `loader(data_root: pathlib.Path)` -> LabeledImages."""
SourceEntry = Union[str, SourceLoader]


@dataclass(frozen=True)
class BuiltinSource:
    """The loader of a built-in source, registered like a user's."""

    name: str

    def __call__(self, data_root: Path) -> LabeledImages:
        return load_builtin(self.name, data_root)


SOURCES: Registry[SourceLoader] = Registry("data source")
for _name in source_names():
    SOURCES.register(_name, BuiltinSource(_name), builtin=True)


def register_source(name: str, loader: SourceLoader) -> None:
    """Make `loader` available as `public_data=name` / `private_data=name` in this process (and in
    the trials of sweeps started from it)."""
    if not callable(loader):
        raise ConfigError(f"register_source({name!r}, ...) needs a callable loader, got {type(loader).__name__}")
    SOURCES.register(name, loader)


@dataclass(frozen=True, eq=False)
class SourcePlugin:
    """A resolved data-source entry."""

    name: str  # as the user wrote it, for messages
    loader: SourceLoader
    identity: str
    images: str  # sources with equal `images` hold the same images: their classes must not overlap

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SourcePlugin) and other.identity == self.identity

    def __hash__(self) -> int:
        return hash(self.identity)


def check_source_entry(field: str, entry: Any) -> None:
    """Static check (nothing read or imported): ConfigError for an entry that names nothing."""
    if not isinstance(entry, str):
        if not callable(entry):
            raise ConfigError(f"{field}={entry!r} is not allowed: must be a name, an import path, a file or a loader")
        return
    if SOURCES.get(entry) is None and not is_import_path(entry) and not _looks_like_path(entry):
        raise ConfigError(
            f"{field}={entry!r} is not a known data source{SOURCES.close_match(entry)}; use one of: "
            f"{', '.join(SOURCES.names())}, an import path 'package.module:loader', an .npz file or an image folder "
            "(a path with a '/')"
        )


def _looks_like_path(entry: str) -> bool:
    return entry.endswith(".npz") or os.sep in entry or "/" in entry or entry.startswith("~") \
        or Path(entry).is_dir()  # fmt: skip


def resolve_source(field: str, entry: SourceEntry) -> SourcePlugin:
    """The `SourcePlugin` of a `public_data`/`private_data` entry (files are hashed, paths imported)."""
    check_source_entry(field, entry)
    if not isinstance(entry, str):
        identity = object_identity(entry)
        return SourcePlugin(describe(entry), entry, identity, identity)
    registered = SOURCES.get(entry)
    if isinstance(registered, BuiltinSource):
        return SourcePlugin(entry, registered, entry, source_info(entry).images)
    if registered is not None:
        identity = f"{entry}={object_identity(registered)}"
        return SourcePlugin(entry, registered, identity, identity)
    if is_import_path(entry):
        loader = load_object(entry, f"{field}={entry!r}", functools.partial(_check_loader, f"{field}={entry!r}"))
        identity = f"{entry}@{object_identity(loader).partition('@')[2]}"
        return SourcePlugin(entry, loader, identity, identity)
    path = _existing_path(field, entry)
    if path.is_dir():
        identity = f"folder#{_listing_hash(path)}"
        return SourcePlugin(entry, functools.partial(load_image_folder, path), identity, identity)
    stat = path.stat()
    identity = f"npz#{_file_hash(path, (stat.st_size, stat.st_mtime_ns))}"
    return SourcePlugin(entry, functools.partial(load_npz, path), identity, identity)


def _check_loader(what: str, loader: Any) -> None:
    """What an import path names is the user's own loader, callable as `loader()` or `loader(data_root)`,
    before it is ever called (`plugins.load_object`)."""
    if not callable(loader) or inspect.isclass(loader):
        raise ConfigError(f"{what} is a {type(loader).__name__}, not a loader function")
    check_users_code(loader, what)
    if not (takes_arguments(loader, 0) or takes_arguments(loader, 1)):
        raise ConfigError(f"{what} is not a loader: it cannot be called as loader() or loader(data_root)")


def _existing_path(field: str, entry: str) -> Path:
    try:
        path = Path(entry).expanduser().resolve()
    except (RuntimeError, OSError) as exc:  # '~nosuchuser/x', a loop of links
        raise ConfigError(f"{field}={entry!r}: cannot resolve the path ({exc})") from None
    if not path.exists():
        raise ConfigError(f"{field}={entry!r}: no such file or directory ({path})")
    if not path.is_dir() and path.suffix != ".npz":
        raise ConfigError(f"{field}={entry!r} is a file but not an .npz archive; give an .npz file or an image folder")
    return path


@functools.lru_cache(maxsize=32)
def _file_hash(path: Path, _stat: tuple[int, int]) -> str:
    """Content hash of a file (cached per size and modification time)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _listing_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def load_source(source: SourcePlugin | SourceEntry, data_root: str | Path | None = None) -> LabeledImages:
    """The checked images of a source, resolved or any entry `public_data` takes (cached per process;
    arrays read-only). `data_root`: where the built-ins' files are (None: the default root)."""
    plugin = source if isinstance(source, SourcePlugin) else resolve_source("source", source)
    return _load_cached(plugin, resolve_data_root(data_root))


@functools.lru_cache(maxsize=8)
def _load_cached(plugin: SourcePlugin, data_root: Path) -> LabeledImages:
    what = f"data source {plugin.name!r}"
    try:
        takes_root = _takes_an_argument(plugin.loader)
        with plugin_code():
            data = plugin.loader(data_root) if takes_root else plugin.loader()
    except (DataError, ConfigError):
        raise
    except Exception as exc:
        raise DataError(f"{what}: its loader raised {type(exc).__name__}: {exc}") from exc
    return check_images(data, what)


def _takes_an_argument(loader: SourceLoader) -> bool:
    if isinstance(loader, (BuiltinSource, functools.partial)):
        return isinstance(loader, BuiltinSource)
    try:
        parameters = inspect.signature(loader).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in parameters)
