"""Search spaces: parse `--grid field=v1,v2`, check every grid point before any trial starts.

A space is checked whole before Ray starts, a lock is taken or a file is written: each field
is known and given a list of values (a grid), `tune.grid_search(list)` or a Tune domain
(`tune.choice`, `tune.uniform`, ...); the grid holds at most MAX_GRID_POINTS points, counted
before any config is built; every grid point is validated with its data and plug-ins, and
every value a Tune domain can draw is validated as far as it can be known (each category; a
range's ends).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
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
        separator = ";" if _is_list_field(key) else ","
        parts = raw.split(separator)
        empty = [i for i, part in enumerate(parts) if not part.strip()]
        if empty:  # `rounds=1,2,`: a stray separator, not a value that went missing from `--set`
            where = "last" if empty[0] == len(parts) - 1 else "first" if empty[0] == 0 else f"{_ordinal(empty[0] + 1)}"
            raise ConfigError(
                f"--grid '{item}': its {where} value is empty (a stray '{separator}'); separate the "
                f"values of {key} by single '{separator}'"
            )
        grid[key] = [parse_overrides([f"{key}={part.strip()}"])[key] for part in parts]
    return grid


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


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


MAX_GRID_POINTS = 10_000  # trials of one sweep: each is a FedMD run (and its grid point is checked first)
PROGRESS_S = 5.0  # how often a long check says how far it got


def check_space(base: FedMDConfig, param_space: dict[str, Any]) -> dict[str, list[Any]]:
    """The grid of `param_space` (field -> its explicit values), once the space's form is checked
    without building a config: known fields, each given a list, `tune.grid_search(list)` or a Tune
    domain; no empty list; at most MAX_GRID_POINTS points; `out_dir` not swept; no value listed twice."""
    unknown = [k for k in param_space if k not in base.to_dict()]
    if unknown:
        base.replace(**{unknown[0]: None})  # raises the usual 'unknown config field' message
    if "out_dir" in param_space:
        raise ConfigError(
            "out_dir cannot be swept: a sweep writes every trial's table under its own output "
            "directory (--out / out_dir of sweep())"
        )
    for key, spec in param_space.items():
        _check_form(key, spec)
    grid = grid_values(param_space)
    empty = [k for k, v in grid.items() if not v]
    if empty:
        raise ConfigError(f"the sweep gives {empty[0]} no values; list at least one")
    points = math.prod(len(values) for values in grid.values())
    if points > MAX_GRID_POINTS:
        sizes = " x ".join(f"{len(v)} {k}" for k, v in grid.items())
        raise ConfigError(
            f"the sweep's grid has {points} points ({sizes}); a sweep runs at most {MAX_GRID_POINTS} "
            "trials: sweep fewer values, or draw them with a Tune domain and num_samples"
        )
    for key, values in grid.items():
        repeated = next((v for i, v in enumerate(values) if _is_plain(v) and v in values[:i]), None)
        if repeated is not None:
            raise ConfigError(
                f"the sweep lists {key}={repeated!r} twice: two identical trials; list each value once "
                "(repeat a point with different seeds: --grid seed=0,1,2)"
            )
    return grid


def _check_form(key: str, spec: Any) -> None:
    """A list, `tune.grid_search(list)` or a Tune domain; anything else (a string "1,2", a tuple, a number)
    would reach Tune as one constant that no trial can run."""
    if isinstance(spec, list):
        return
    if isinstance(spec, dict) and set(spec) == {"grid_search"}:
        if not isinstance(spec["grid_search"], list):
            raise ConfigError(
                f"the sweep gives {key} tune.grid_search({spec['grid_search']!r}); give it a list of values"
            )
        return
    if not _is_domain(spec):
        raise ConfigError(
            f"the sweep gives {key}={spec!r} ({type(spec).__name__}); give a list of values ({key}: [v1, v2]), "
            "tune.grid_search([...]) or a Tune domain (tune.choice, tune.uniform, ...); on the command line: "
            f"--grid {key}=v1,v2"
        )


def _is_domain(spec: Any) -> bool:
    if isinstance(spec, (str, bytes, int, float, bool, tuple, dict, type(None))):
        return False  # never a domain: no need to import Tune to say so
    from ray.tune.search.sample import Domain

    return isinstance(spec, Domain)


def _domain_values(spec: Any) -> list[Any]:
    """What a Tune domain can draw, as far as it is known: each category; a range's ends (a value
    inside a range lies between two allowed ones, and every field allows an interval)."""
    from ray.tune.search.sample import Categorical, Float, Integer, Quantized

    if isinstance(spec, Categorical):
        return list(spec.categories)
    quantized = isinstance(spec.get_sampler(), Quantized)  # can round up to its upper end
    if isinstance(spec, Integer):
        return [spec.lower, spec.upper if quantized else spec.upper - 1]
    if isinstance(spec, Float):
        upper = float(spec.upper)  # Tune draws floats: 1.0 for an integer field is refused as such
        return [float(spec.lower), upper if quantized or not math.isfinite(upper) else math.nextafter(upper, -math.inf)]
    return []  # tune.sample_from: only its trials know


def progress(total: int, what: str) -> Callable[[int], None]:
    """`done(i)` after each of `total` checks: logs how far they got every PROGRESS_S seconds, once the
    first PROGRESS_S have passed (checks that end sooner say nothing)."""
    start = last = time.monotonic()

    def done(i: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= PROGRESS_S and i < total:
            last = now
            LOGGER.info("checked %d of %d %s (%.0f s)", i, total, what, now - start)

    return done


def check_points(base: FedMDConfig, param_space: dict[str, Any]) -> list[FedMDConfig]:
    """Every grid point as a validated config (same messages as `run`), data checks included; each value
    a Tune domain can draw is checked too (`_domain_values`)."""
    grid = check_space(base, param_space)
    for key, spec in param_space.items():
        if key in grid:
            continue
        for value in _domain_values(spec):
            try:  # alone, statically: with the data, a value's fate can depend on the grid point it meets
                base.replace(**{key: value})
            except ConfigError as exc:
                raise ConfigError(
                    f"the sweep's {key} domain ({_domain_text(spec)}) can draw {key}={value!r}, which is refused: {exc}"
                ) from None
    configs, notes = [], {}
    total = math.prod(len(values) for values in grid.values())
    done = progress(total, "grid points")
    for i, combo in enumerate(itertools.product(*grid.values()), 1):
        config = base.replace(**dict(zip(grid, combo)))
        notes.update(dict.fromkeys(prepare(config).notes))  # every model and the strategy tried, data checked
        configs.append(config)
        done(i)
    _refuse_fields_no_strategy_takes(grid, configs)
    for note in notes:
        LOGGER.warning("%s", note)
    return configs


def _domain_text(spec: Any) -> str:
    if hasattr(spec, "categories"):
        return f"tune.choice({list(spec.categories)!r})"
    if hasattr(spec, "lower") and hasattr(spec, "upper"):
        return f"{type(spec).__name__} from {spec.lower!r} to {spec.upper!r}"
    return type(spec).__name__


def _refuse_fields_no_strategy_takes(grid: dict[str, list[Any]], configs: list[FedMDConfig]) -> None:
    """A swept strategy field that no grid point's strategy takes makes identical trials (`--grid kt_rho=...`
    with `fedmd`), as a value listed twice does."""
    fields = strategy_fields(configs[0])
    for key in grid:
        if key in fields and len(grid[key]) > 1 and not any(key in fields_taken(c.strategy, c) for c in configs):
            raise ConfigError(
                f"the sweep varies {key}, which no swept strategy takes ({who_takes(fields[key])}): its "
                f"trials would be identical; sweep it with a strategy that takes it (--set "
                f"strategy={fields[key][0]})"
            )
