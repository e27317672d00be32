"""What a saved run or sweep means, and whether it can be continued: the one resume check.

A run's config.json (a sweep's fedmd_sweep.json) keeps the identity of every field that
changes results; a resume compares it with the given config's (`differences`), fields that
did not exist when it was saved counting as what reproduces it (`absent_values`), and only
`execution` fields may change (`resumable_fields`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fedmd_ray.config.schema import FedMDConfig, role_of


def absent_values() -> dict[str, Any]:
    """What a config saved before a field existed means by leaving it out, where that is not the field's
    default (`setting(absent=...)`); `{**absent_values(), **saved}` is the saved config as it ran."""
    return {f.name: f.metadata["absent"] for f in dataclasses.fields(FedMDConfig) if "absent" in f.metadata}


def changed_fields(saved: dict[str, Any], given: dict[str, Any], defaults: dict[str, Any]) -> list[str]:
    """The fields of `given` whose value differs from the one `saved` (a run's or a sweep's). A field
    that `saved` lacks was added to fedmd_ray after it was saved and counts as its value in `defaults`:
    the rule for adding a field is that its default keeps the behaviour from before it existed, so
    a run started before an upgrade resumes after it (`absent_values` name the fields whose old behaviour
    is not their default)."""
    defaults = {**defaults, **absent_values()}
    return [name for name, value in given.items() if saved.get(name, defaults.get(name)) != value]


def differences(
    saved_identity: dict[str, Any],
    given_identity: dict[str, Any],
    saved: dict[str, Any],
    given: dict[str, Any],
    defaults: dict[str, Any],
) -> list[str]:
    """Why a saved run (or sweep) cannot be continued with the given config: each field whose identity
    changed (`changed_fields`: fields saved before they existed count as their old behaviour), described
    with both values (`describe_change`). The one resume check of runs and sweeps."""
    return [
        describe_change(k, saved.get(k), given.get(k)) for k in changed_fields(saved_identity, given_identity, defaults)
    ]


def describe_change(name: str, saved: Any, given: Any) -> str:
    """One changed field for a refusal to resume: both values, or, where they read the same (an import
    path, a data file), that what they name changed (plug-in code and data files are fingerprinted)."""
    if saved == given:
        return f"{name} ({given!r} reads the same, but its code or data changed since it was saved)"
    return f"{name} (saved {saved!r}, given {given!r})"


def resumable_fields(cls: type[FedMDConfig] = FedMDConfig) -> tuple[str, ...]:
    """Fields that may differ when resuming: the `execution` ones."""
    return tuple(f.name for f in dataclasses.fields(cls) if role_of(f) == "execution")
