"""Configs in files: `fedmd-ray run --config exp.toml` (or .json), and a config written as TOML.

A file holds config fields at its top level, or under a `config` key: a run's own
`config.json` (which holds the resolved values, models included) is a valid `--config`,
so a run is reproduced from its directory. `preset = "NAME"` starts from a preset.
Values are checked like `--set` values; text is parsed by the field's type as on the
command line, so "none" is None (TOML has no null).

A file is untrusted input, read by one reader (`read_document`; a run's config.json on
`--resume` too): only a regular file (a FIFO or a device is refused before a byte is read),
at most 1 MiB, UTF-8, tables and arrays nested at most 16 deep, each problem one ConfigError.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any, Literal

from fedmd_ray.config import PRESETS, FedMDConfig, parse_overrides, preset
from fedmd_ray.errors import ConfigError

MAX_FILE_BYTES = 1 << 20  # 1 MiB: a config is a few hundred bytes, a run's config.json a few KiB
MAX_DEPTH = 16  # tables and arrays inside each other: a config nests 3 deep (a run's config.json: its identity)
Format = Literal["json", "toml"]


def read_config_file(path: str | Path) -> tuple[str | None, dict[str, Any]]:
    """(preset name or None, field values) from a TOML or JSON file; ConfigError naming the file."""
    label = f"--config {shown(path)}"
    values = read_document(path, label)
    if isinstance(values, dict) and "config" in values:  # a run's config.json
        values = values["config"]
        if not isinstance(values, dict):
            raise ConfigError(f"{label}: `config` must be a table of config fields, not {_kind(values)}")
    if not isinstance(values, dict):
        raise ConfigError(f"{label} must hold a table of config fields, not {_kind(values)}")
    values = dict(values)
    name = values.pop("preset", None)
    if name is not None and not isinstance(name, str):
        raise ConfigError(
            f"{label}: preset must be a preset's name (a string), not {_kind(name)}; use one of: {', '.join(PRESETS)}"
        )
    if name is not None and name not in PRESETS:
        raise ConfigError(f"{label}: preset {name!r} is not known; use one of: {', '.join(PRESETS)}")
    unknown = [key for key in values if key not in FedMDConfig.__dataclass_fields__]
    if unknown:  # before the text values are parsed as `field=value`: a key holding '=' is no field either
        FedMDConfig.from_dict({unknown[0]: None})  # raises the usual 'unknown config field' message
    texts = {k: v for k, v in values.items() if isinstance(v, str)}
    parsed = parse_overrides([f"{k}={v}" for k, v in texts.items()]) if texts else {}
    return name, {**values, **parsed}


def read_document(path: str | Path, label: str, fmt: Format | None = None) -> Any:
    """The TOML or JSON document in the file at `path` (`fmt`, else by its suffix: .json is JSON, anything
    else TOML), read as untrusted input: a regular file of at most MAX_FILE_BYTES, UTF-8 text (a leading
    byte-order mark is skipped), tables and arrays nested at most MAX_DEPTH deep, strings without NUL
    characters or lone surrogates, JSON objects without repeated keys. Anything else is one ConfigError
    starting with `label`; nothing is written."""
    fmt = fmt or ("json" if str(path).endswith(".json") else "toml")
    return parse_document(read_small_file(path, label), label, fmt)


def parse_document(raw: bytes, label: str, fmt: Format) -> Any:
    """`raw` parsed as `read_document` parses a file's bytes (all but the size and the file checks)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{label} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
        ) from None
    kind = "JSON" if fmt == "json" else "TOML"
    try:
        document = json.loads(text, object_pairs_hook=_unique_keys) if fmt == "json" else _toml().loads(text)
    except RecursionError:
        raise ConfigError(
            f"{label} nests tables or arrays too deeply; a config nests at most {MAX_DEPTH} deep"
        ) from None
    except ValueError as exc:  # json.JSONDecodeError and tomllib.TOMLDecodeError are ValueErrors
        raise ConfigError(f"{label} is not valid {kind}: {exc}") from None
    _check_tree(document, label)
    return document


def read_small_file(path: str | Path, label: str, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file at `path` (`~` expanded, links followed), at most `limit` of them.

    Opened without blocking and checked with fstat before a byte is read: a named pipe nobody writes
    would block forever, `/dev/zero` would fill the memory, a directory is no file. ConfigError
    starting with `label` (the OSError as its cause: FileNotFoundError for a missing file)."""
    if str(path) == "":
        raise ConfigError(f"{label}: the path is empty; name a file")
    try:
        file = Path(path).expanduser()
    except RuntimeError:  # ~user of an unknown user
        raise ConfigError(f"{label}: cannot expand '~' in {str(path)!r} (no such user)") from None
    try:
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except ValueError:  # a NUL byte in the path
        raise ConfigError(f"{label}: the path holds a NUL character") from None
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read it ({exc.strerror or exc})") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{label} is {_file_kind(info.st_mode)}, not a regular file")
        if info.st_size > limit:
            raise ConfigError(f"{label} is {info.st_size} bytes; a config file may hold at most {_bytes(limit)}")
        chunks, size = [], 0
        while size <= limit:  # the file may grow while it is read: never more than `limit` + 1 bytes
            chunk = os.read(fd, min(1 << 16, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise ConfigError(
                f"{label} grew past {limit} bytes while it was read; a config file may hold at most {_bytes(limit)}"
            )
        return b"".join(chunks)
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read it ({exc.strerror or exc})") from exc
    finally:
        os.close(fd)


def shown(path: str | Path) -> str:
    """A path as a message shows it: as it is, or quoted where it is empty or holds unprintable characters."""
    text = str(path)
    return text if text and text.isprintable() else repr(text)


def _file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "a special file"


def _check_tree(document: Any, label: str) -> None:
    """Nesting depth and strings of a parsed document, without recursion (a document nested deeper
    than Python's stack is the very input to refuse)."""
    stack = [(document, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value, label)
            continue
        if isinstance(value, dict):
            for key in value:
                _check_text(key, label)
            items = list(value.values())
        elif isinstance(value, list):
            items = value
        else:
            continue
        if depth >= MAX_DEPTH:
            raise ConfigError(f"{label} nests tables or arrays too deeply; a config nests at most {MAX_DEPTH} deep")
        stack.extend((item, depth + 1) for item in items)


def _check_text(text: str, label: str) -> None:
    if "\x00" in text:
        raise ConfigError(f"{label} holds a string with a NUL character ({text[:40]!r}); no config value has one")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # JSON's "\\ud800": a lone surrogate, which no file name or text can hold
        raise ConfigError(
            f"{label} holds a string that is not valid Unicode ({text[:40]!r}: a lone surrogate escape)"
        ) from None


def _bytes(limit: int) -> str:
    return f"{limit} bytes ({limit / (1 << 20):g} MiB)" if limit >= 1 << 20 else f"{limit} bytes"


def _kind(value: Any) -> str:
    """What a parsed value is, in the file's words."""
    return {
        dict: "a table",
        list: "a list",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object without repeated keys: which value wins is not obvious (TOML and --set refuse too)."""
    values: dict[str, Any] = {}
    for key, value in pairs:
        if key in values:
            raise ValueError(f"{key!r} is given twice")
        values[key] = value
    return values


def config_from(path: str | Path | None, preset_name: str | None, overrides: dict[str, Any]) -> FedMDConfig:
    """The config of a command line: a preset (`--preset`, the file's `preset`, else offline), the file's
    fields, then `--set`."""
    file_preset, values = read_config_file(path) if path is not None else (None, {})
    return preset(preset_name or file_preset or "offline", **{**values, **overrides})


def to_toml(config: FedMDConfig, preset_name: str, title: str = "") -> str:
    """`config`, made from the preset `preset_name`, as a commented TOML file that `--config` reads back:
    `preset = NAME`, then the fields by group, each with its one-line description; a field the preset
    leaves unset (None: its default behaviour, which the description states) is commented out, since
    the preset gives it; plug-in objects by import path."""
    import dataclasses
    import textwrap

    from fedmd_ray.config.fields import GROUPS, field_docs

    values, docs = config.to_json(), field_docs(type(config))
    fields = dataclasses.fields(config)
    lines = [
        f"# {title or 'a fedmd_ray config'}",
        "# fedmd-ray run --config THIS_FILE [--set FIELD=VALUE ...]",
        f'preset = "{preset_name}"  # the values of the fields below not set here',
    ]
    for group in GROUPS:
        lines += ["", f"# --- {group} ---"]
        for f in (f for f in fields if f.metadata.get("group") == group):
            lines += textwrap.wrap(docs.get(f.name, ""), 100, initial_indent="# ", subsequent_indent="# ")
            value = values[f.name]
            lines.append(f"# {f.name} =   (unset)" if value is None else f"{f.name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a TOML basic string is a JSON string


def _toml() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    try:
        import tomli
    except ImportError as exc:
        raise ConfigError("TOML configs need Python >= 3.11 or `pip install tomli`; or use a .json file") from exc
    return tomli
