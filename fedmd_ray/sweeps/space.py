"""Search spaces: parse `--grid field=v1,v2`, check every grid point before any trial starts."""

from __future__ import annotations

import itertools
from typing import Any

from fedmd_ray.config import FedMDConfig, parse_overrides
from fedmd_ray.errors import ConfigError
from fedmd_ray.experiment import prepare
from fedmd_ray.log import LOGGER
from fedmd_ray.strategy import fields_taken, strategy_fields, who_takes


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """`["subset_size=500,1000", "rounds=5"]` -> `{"subset_size": [500, 1000], "rounds": [5]}`, typed per field."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not raw.strip():
            raise ConfigError(f"--grid expects field=value1,value2,..., got '{item}'")
        key = key.strip()
        if key in grid:
            raise ConfigError(f"--grid {key} is given twice; list all its values once")
        values = [parse_overrides([f"{key}={value.strip()}"])[key] for value in raw.split(";" if _is_list_field(key) else ",")]
        grid[key] = values
    return grid


def _is_list_field(key: str) -> bool:
    """List-valued fields (models, classes) separate grid values with ';' since ',' is inside a value."""
    return isinstance(getattr(FedMDConfig(), key, None), tuple)


def grid_values(param_space: dict[str, Any]) -> dict[str, list[Any]]:
    """The explicit values of each swept field: lists and `tune.grid_search`; other domains are sampled by Tune."""
    values: dict[str, list[Any]] = {}
    for key, spec in param_space.items():
        if isinstance(spec, dict) and set(spec) == {"grid_search"}:
            values[key] = list(spec["grid_search"])
        elif isinstance(spec, list):
            values[key] = list(spec)
    return values


def to_tune_space(param_space: dict[str, Any]) -> dict[str, Any]:
    """Plain lists become grid searches (plug-in objects in them packed, see `actors.portable`);
    Tune domains pass through."""
    from ray import tune

    return {k: tune.grid_search([_packed(x) for x in v]) if isinstance(v, list) else v for k, v in param_space.items()}


def _is_plain(value: Any) -> bool:
    """A value Tune can show and compare as it is: a number, string, bool, None, or a list of them."""
    plain = (str, int, float, bool, type(None))
    return isinstance(value, plain) or (isinstance(value, (list, tuple)) and all(isinstance(v, plain) for v in value))


def _packed(value: Any) -> Any:
    """Plain values as they are (Tune shows them); anything holding an object packed."""
    if _is_plain(value):
        return value
    from fedmd_ray.actors.portable import Portable

    return Portable.wrap(value)


def check_points(base: FedMDConfig, param_space: dict[str, Any]) -> list[FedMDConfig]:
    """Every grid point as a validated config (same messages as `run`), data checks included."""
    unknown = [k for k in param_space if k not in base.to_dict()]
    if unknown:
        base.replace(**{unknown[0]: None})  # raises the usual 'unknown config field' message
    grid = grid_values(param_space)
    empty = [k for k, v in grid.items() if not v]
    if empty:
        raise ConfigError(f"the sweep gives {empty[0]} no values; list at least one")
    if "out_dir" in param_space:
        raise ConfigError("out_dir cannot be swept: a sweep writes every trial's table under its own output "
                          "directory (--out / out_dir of sweep())")
    for key, values in grid.items():
        repeated = next((v for i, v in enumerate(values) if _is_plain(v) and v in values[:i]), None)
        if repeated is not None:
            raise ConfigError(f"the sweep lists {key}={repeated!r} twice: two identical trials; list each value once "
                              "(repeat a point with different seeds: --grid seed=0,1,2)")
    configs, notes = [], {}
    for combo in itertools.product(*grid.values()):
        config = base.replace(**dict(zip(grid, combo)))
        notes.update(dict.fromkeys(prepare(config).notes))  # every model and the strategy tried, data checked
        configs.append(config)
    _refuse_fields_no_strategy_takes(grid, configs)
    for note in notes:
        LOGGER.warning("%s", note)
    return configs


def _refuse_fields_no_strategy_takes(grid: dict[str, list[Any]], configs: list[FedMDConfig]) -> None:
    """A swept strategy field that no grid point's strategy takes makes identical trials (`--grid kt_rho=...`
    with `fedmd`), as a value listed twice does."""
    fields = strategy_fields(configs[0])
    for key in grid:
        if key in fields and len(grid[key]) > 1 and not any(key in fields_taken(c.strategy, c) for c in configs):
            raise ConfigError(f"the sweep varies {key}, which no swept strategy takes ({who_takes(fields[key])}): its "
                              f"trials would be identical; sweep it with a strategy that takes it (--set "
                              f"strategy={fields[key][0]})")
