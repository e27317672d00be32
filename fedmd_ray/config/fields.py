"""Declaring a config field: its role, its range, what plug-in it names (`setting`, `Bounds`).

Each field of `FedMDConfig` declares its role once, in its `setting(...)`:

- `transfer` (the default): changes the transfer-learned models, hence everything:
  part of the run's fingerprint and of the transfer-cache key;
- `result`: changes the rounds' results but not transfer learning: in the
  fingerprint, not in the cache key (sweeps over it share one transfer phase);
- `execution`: where and how the run executes, not what it computes: in neither,
  and it may change when a run is resumed.

and its allowed range (`Bounds`). The fingerprint, the cache key, the fields a resume
may change and the range checks are all derived from these declarations, so a new field
that changes results is in the fingerprint and the cache key unless it says otherwise.
A new field's default must keep the behaviour from before it existed, or say with `absent`
what does: runs and sweeps saved without it then resume as they ran (`identity.changed_fields`).
Strategies declare their own fields the same way (`strategy.FedMDFields`, `methods.FamilyFields`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

Role = Literal["transfer", "result", "execution"]
Group = Literal["data", "transfer", "rounds", "strategy", "execution"]
GROUPS: tuple[Group, ...] = ("data", "transfer", "rounds", "strategy", "execution")
PluginKind = Literal["model", "source", "strategy"]


@dataclass(frozen=True)
class Bounds:
    """The numbers a field allows: `low`/`high` (None: unbounded), open or closed; `zero`: 0 too, besides
    the range (a resource share: none at all, or at least what Ray can count).

    Every numeric field declares a `high` that what consumes it handles (a timeout that Ray's waits and
    the socket layer can convert, a seed that numpy and torch accept, a count that sizes arrays of sane
    memory, a temperature whose square and quotients stay finite), so that a value the check accepts
    never fails later, after files were written (tests/test_hostile_inputs.py checks each consumer)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    noun: str | None = None  # "a probability"; default by the field's type
    zero: bool = False

    def allows(self, value: float) -> bool:
        if self.zero and value == 0:
            return True
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self, integer: bool) -> str:
        noun = self.noun or ("an integer" if integer else "a number")
        zero = "0 or " if self.zero else ""
        if self.high is None:
            return f"{zero}{noun} {'>' if self.low_open else '>='} {_number(self.low, integer)}"
        return (
            f"{zero}{noun} in {'(' if self.low_open else '['}{_number(self.low, integer)}, "
            f"{_number(self.high, integer)}{')' if self.high_open else ']'}"
        )


def _number(value: float | None, integer: bool) -> str:
    """A bound as a message shows it: whole numbers in full (4294967295, 100000), others as %g (1e+07)."""
    if value is None:
        return "-inf"
    if value == int(value) and (integer or abs(value) < 1e6):
        return str(int(value))
    return f"{value:g}"


PROBABILITY = Bounds(0, 1, high_open=True, noun="a probability")
# Upper bounds, each one what its consumers handle (and far beyond any sensible value):
MAX_PARTIES = 100_000  # a party is an object, a share of the data and a model: 1000 are measured on 2 cores
MAX_IMAGES = 10**9  # counts of images (subsets, sizes): a billion images would not fit in memory as floats
MAX_COUNT = 10**6  # epochs, rounds, patience, samples per class, batch sizes, shifts: Python loops and slices
MAX_TIMEOUT_S = 1e7  # 116 days; Ray's waits take milliseconds in int64, sockets and threads ~9.2e9 s
MAX_SEED = 2**32 - 1  # numpy's and most libraries' seed range; numpy's SeedSequence derives every stream
MAX_SHARE = 4096.0  # CPUs or GPUs of one party or actor (Ray counts them in 1/10000 units of int64)
MIN_SHARE = 0.0001  # Ray refuses fractions below 1/10000 of a CPU or GPU
COUNT = Bounds(0, MAX_COUNT)
POSITIVE_COUNT = Bounds(1, MAX_COUNT)
IMAGES = Bounds(1, MAX_IMAGES)
TIMEOUT = Bounds(0, MAX_TIMEOUT_S, low_open=True)
LEARNING_RATE = Bounds(0, 10, low_open=True)  # Adam's steps are ~lr per weight: 10 already diverges
TEMPERATURE = Bounds(1e-3, 1e3)  # z / T and T**2 stay finite in float32 for any logit a model gives


_NO_VALUE = object()


def setting(
    default: Any,
    *,
    role: Role = "transfer",
    bounds: Bounds | None = None,
    plugin: PluginKind | None = None,
    absent: Any = _NO_VALUE,
    group: Group | None = None,
) -> Any:
    """A config field with its role (see the module docstring), range and plug-in kind. `absent`: the
    value that reproduces what runs did before the field existed, when that is not its default (a
    saved config without the field means it). `group`: where `fedmd-ray presets --fields` lists it
    (default: by its role: transfer, rounds, execution)."""
    metadata = {
        "role": role,
        "bounds": bounds,
        "plugin": plugin,
        "group": group or {"transfer": "transfer", "result": "rounds", "execution": "execution"}[role],
    }
    if absent is not _NO_VALUE:
        metadata["absent"] = absent
    return dataclasses.field(default=default, metadata=metadata)


def field_docs(cls: type) -> dict[str, str]:
    """Each field's docstring (the string after it in its class body; Python keeps none at run time), read
    from the source of `cls` and of the dataclasses it inherits fields from."""
    import ast
    import inspect
    import textwrap

    docs: dict[str, str] = {}
    for owner in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(owner):
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(owner))).body[0].body  # type: ignore[attr-defined]
        for node, after in zip(body, body[1:]):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr) \
                    and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str):  # fmt: skip
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs
