"""Configs in files: `fedmd-ray run --config exp.toml` (or .json), and a config written as TOML.

A file holds config fields at its top level, or under a `config` key: a run's own
`config.json` (which holds the resolved values, models included) is a valid `--config`,
so a run is reproduced from its directory. `preset = "NAME"` starts from a preset.
Values are checked like `--set` values; text is parsed by the field's type as on the
command line, so "none" is None (TOML has no null).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from fedmd_ray.config import PRESETS, FedMDConfig, parse_overrides, preset
from fedmd_ray.errors import ConfigError


def read_config_file(path: str | Path) -> tuple[str | None, dict[str, Any]]:
    """(preset name or None, field values) from a TOML or JSON file; ConfigError naming the file."""
    file = Path(path).expanduser()
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read it ({exc.strerror})") from None
    try:
        if file.suffix == ".json":
            values = json.loads(text, object_pairs_hook=_unique_keys)
        else:
            values = _toml().loads(text)
    except ValueError as exc:  # json.JSONDecodeError and tomllib.TOMLDecodeError are ValueErrors
        raise ConfigError(f"--config {path} is not valid {'JSON' if file.suffix == '.json' else 'TOML'}: {exc}") from None
    if isinstance(values, dict) and isinstance(values.get("config"), dict):
        values = values["config"]  # a run's config.json
    if not isinstance(values, dict):
        raise ConfigError(f"--config {path} must hold a table of config fields, not {type(values).__name__}")
    name = values.pop("preset", None)
    if name is not None and name not in PRESETS:
        raise ConfigError(f"--config {path}: preset {name!r} is not known; use one of: {', '.join(PRESETS)}")
    texts = {k: v for k, v in values.items() if isinstance(v, str)}
    parsed = parse_overrides([f"{k}={v}" for k, v in texts.items()]) if texts else {}
    return name, {**values, **parsed}


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
    file_preset, values = read_config_file(path) if path else (None, {})
    return preset(preset_name or file_preset or "offline", **{**values, **overrides})


def to_toml(config: FedMDConfig) -> str:
    """The config as TOML that `--config` reads back (None as "none", plug-in objects by import path)."""
    lines = []
    for name, value in config.to_json().items():
        lines.append(f"{name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if value is None:
        return '"none"'
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
