"""One typed config for a FedMD run: the schema (`schema`), how fields are declared (`fields`),
the presets (`presets`), text into values (`parsing`) and the resume check (`identity`)."""

from fedmd_ray.config.fields import (
    MAX_PARTIES,
    MAX_SEED,
    MAX_SHARE,
    MIN_SHARE,
    Bounds,
    Role,
    setting,
)
from fedmd_ray.config.identity import (
    absent_values,
    changed_fields,
    describe_change,
    differences,
    resumable_fields,
)
from fedmd_ray.config.parsing import _field_types, _is_optional, parse_overrides
from fedmd_ray.config.presets import PRESETS, origin, preset, preset_names
from fedmd_ray.config.schema import FedMDConfig, role_of

__all__ = [
    "FedMDConfig",
    "PRESETS",
    "origin",
    "preset",
    "preset_names",
    "parse_overrides",
    "setting",
    "Bounds",
    "Role",
    "role_of",
    "absent_values",
    "changed_fields",
    "describe_change",
    "differences",
    "resumable_fields",
    "MAX_PARTIES",
    "MAX_SEED",
    "MAX_SHARE",
    "MIN_SHARE",
    "_field_types",
    "_is_optional",
]
