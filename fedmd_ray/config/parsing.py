"""Values into fields: text from the command line and config files, Python values from the API.

`parse_overrides` turns `--set field=text` into typed values by each field's type; `_coerce`
checks a Python value against it (lists become tuples; plug-in fields by `_coerce_plugin`,
statically: nothing is imported). Every refusal is a ConfigError naming the field, the value and
what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import sys
import types
import typing
from typing import Any, Literal, Union

from fedmd_ray.errors import ConfigError


def parse_overrides(assignments: list[str]) -> dict[str, Any]:
    """Turn `["rounds=5", "models=cnn2-8-16,mlp-64"]` into typed values.

    Strings are parsed by the field's type, so `rounds=five` fails here, with
    the field named, before anything starts. A field given twice is refused:
    which value wins is not obvious.
    """
    from fedmd_ray.config.schema import FedMDConfig

    types_ = _field_types(FedMDConfig)
    result: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects field=value, got '{item}'")
        if key not in types_:
            raise ConfigError(_unknown_key_message(key, FedMDConfig))
        if key in result:
            raise ConfigError(f"--set {key} is given twice; give each field once")
        result[key] = _parse_text(key, raw.strip(), types_[key])
    return result


_FIELD_TYPES: dict[type, dict[str, Any]] = {}


def _field_types(cls: type) -> dict[str, Any]:
    """Each field's type, evaluated (plug-in fields: `str`, their text form; their objects are
    checked by `_coerce_plugin`, and their annotations name torch types only for type checkers)."""
    if cls in _FIELD_TYPES:
        return _FIELD_TYPES[cls]
    types_: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.metadata.get("plugin"):
            types_[f.name] = tuple[str, ...] if f.metadata["plugin"] == "model" else str
        else:
            owner = next(c for c in cls.__mro__ if f.name in c.__dict__.get("__annotations__", {}))
            annotation: Any = f.type  # a string under `from __future__ import annotations`
            types_[f.name] = (
                eval(annotation, vars(sys.modules[owner.__module__])) if isinstance(annotation, str) else annotation
            )
    _FIELD_TYPES[cls] = types_
    return types_


def _unknown_key_message(key: str, cls: type) -> str:
    names = list(_field_types(cls))
    close = difflib.get_close_matches(key, names, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown config field '{key}'{hint}; known fields: {', '.join(names)}"


def _require(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{name}={value!r} is not allowed: must be {allowed}")


def _check_class_list(name: str, classes: tuple[int, ...] | None, *, allow_none: bool) -> None:
    """The static part; ids against the source's classes are checked with the data (`data.task`)."""
    if classes is None:
        _require(allow_none, name, classes, "a non-empty list of class ids")
        return
    _require(len(classes) > 0, name, classes, "a non-empty list of class ids")
    _require(len(set(classes)) == len(classes), name, classes, "a list without repeated class ids")
    _require(min(classes) >= 0, name, classes, "a list of class ids >= 0")


def _coerce_plugin(name: str, value: Any, kind: str) -> Any:
    """A plug-in field: names and import paths checked statically (nothing imported), objects as given."""
    from fedmd_ray.data.resolve import check_source_entry
    from fedmd_ray.model_registry import check_model_entry
    from fedmd_ray.strategy import check_strategy_entry

    if kind == "model":
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(
                f"{name}={value!r} is not allowed: must be a list of model names, import paths or factories"
            )
        entries = tuple(v.strip() if isinstance(v, str) else v for v in value)
        for entry in entries:
            check_model_entry(entry)
        return entries
    entry = value.strip() if isinstance(value, str) else value
    if isinstance(entry, str) and not entry:
        raise ConfigError(f"{name}='' is not allowed: must name a {kind}")
    if isinstance(entry, str) and entry.startswith("<object "):
        raise ConfigError(_object_marker_message(name, entry))
    if kind == "source":
        check_source_entry(name, entry)
    else:
        check_strategy_entry(entry)
    return entry


def _object_marker_message(name: str, marker: str) -> str:
    return (
        f"{name}={marker}: the run used a Python object that a file cannot rebuild (an instance, a "
        "functools.partial, or something defined in a script or inside a function); resume it from Python "
        "with the same object (fedmd_ray.run(config, out_dir=..., resume=True)), or start runs you want to "
        "resume from the CLI with an import path 'package.module:name' (a class or factory, its "
        "parameters from config fields)"
    )


def _json_entry(value: Any) -> Any:
    from fedmd_ray.plugins import describe, import_path_of

    if isinstance(value, list):
        return [_json_entry(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return import_path_of(value) or f"<object {describe(value)}>"


def _is_optional(tp: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return True, args[0]
    return False, tp


def _words(tp: Any) -> tuple[str, ...]:
    """The words a number field also takes (`int | Literal["auto"]`: ("auto",)); () for any other type."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        return tuple(w for a in typing.get_args(tp) if typing.get_origin(a) is Literal for w in typing.get_args(a))
    return ()


def _without_words(tp: Any) -> Any:
    """`int | Literal["auto"]` -> int; any other type as it is."""
    if not _words(tp):
        return tp
    (base,) = [a for a in typing.get_args(tp) if typing.get_origin(a) is not Literal]
    return base


def _or_words(tp: Any) -> str:
    """The words a number field also takes, as a message's tail (`int | Literal["auto"]`: ` or 'auto'`)."""
    return "".join(f" or {w!r}" for w in _words(tp))


def _type_name(tp: Any) -> str:
    optional, inner = _is_optional(tp)
    if optional:
        return f"{_type_name(inner)} or None"
    if _words(tp):
        return _type_name(_without_words(tp)) + _or_words(tp)
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) is tuple:
        return f"a list of {typing.get_args(tp)[0].__name__}"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def _coerce(name: str, value: Any, tp: Any) -> Any:
    """Check a Python value against the field type (lists become tuples)."""
    optional, inner = _is_optional(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{name}=None is not allowed: must be {_type_name(tp)}")
    if _words(inner):
        if isinstance(value, str) and value in _words(inner):
            return value
        try:
            return _coerce(name, value, _without_words(inner))
        except ConfigError:
            raise ConfigError(f"{name}={value!r} is not allowed: must be {_type_name(tp)}") from None
    origin = typing.get_origin(inner)
    if origin is Literal:
        if value not in typing.get_args(inner):
            raise ConfigError(f"{name}={value!r} is not allowed: must be {_type_name(inner)}")
        return value
    if origin is tuple:
        item_type = typing.get_args(inner)[0]
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}={value!r} is not allowed: must be {_type_name(inner)}")
        return tuple(_coerce(f"{name}[{i}]", v, item_type) for i, v in enumerate(value))
    if isinstance(value, bool) and inner is not bool:
        raise ConfigError(f"{name}={value!r} is not allowed: must be {_type_name(tp)}")
    if inner is int and isinstance(value, numbers.Integral):  # numpy ints from Tune samplers too
        return int(value)
    if inner is float and isinstance(value, numbers.Real):
        try:
            number = float(value)
        except OverflowError:  # an int beyond any float
            number = math.inf
        if not math.isfinite(number):  # inf/nan pass every bound check, then break training or JSON
            raise ConfigError(f"{name}={value!r} is not allowed: must be a finite number")
        return number
    if inner is bool and getattr(getattr(value, "dtype", None), "kind", None) == "b" and getattr(value, "ndim", 1) == 0:
        return bool(value)  # numpy's bool (a mask's element, a Tune sampler's choice)
    if not isinstance(value, inner) or (inner is not bool and isinstance(value, bool)):
        raise ConfigError(f"{name}={value!r} is not allowed: must be {_type_name(tp)}")
    return value


def _parse_text(name: str, raw: str, tp: Any) -> Any:
    """Parse command-line text by the field's type (plug-in fields stay text: names, paths)."""
    optional, inner = _is_optional(tp)
    if not raw:  # `--set public_classes=`: a value went missing; "the default" is spelt out
        hint = " (or none)" if optional else ""
        raise ConfigError(f"{name}= has no value: give one{hint}")
    if optional and raw.lower() in ("none", "null"):
        return None
    if raw in _words(inner):
        return raw
    inner = _without_words(inner)
    if typing.get_origin(inner) is tuple:
        parts = [part.strip() for part in raw.split(",")]
        if not all(parts):  # `--set models=` or `a,,b`: an empty item is a typo, not "the default"
            raise ConfigError(f"{name}={raw!r} is not allowed: a comma-separated list with an empty item")
        return tuple(_parse_text(name, part, typing.get_args(inner)[0]) for part in parts)
    try:
        if inner is bool:
            lowered = raw.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return lowered in ("true", "1", "yes")
        if inner is int:
            return int(raw)
        if inner is float:
            return float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not allowed: must be {_type_name(tp)}") from None
    return raw


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
