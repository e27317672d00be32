"""Plug-in objects across process boundaries: pickled here, unpickled there after the imports can work.

Ray unpickles an actor's arguments before its code runs, and gives its workers only the
driver script's directory and the current directory as extra import paths. A plug-in
from a module the caller made importable some other way (`sys.path.insert`, a test
runner, a notebook's path) would fail there with "No module named ...", before any of
our code could say why. So what carries plug-ins into another process (a party host's
setup, the driver actor's strategy, a sweep trial's base config) travels as a
`Portable`: bytes (Ray's cloudpickle) plus the caller's import paths, unpickled on first
use after the paths that exist on that machine are appended to `sys.path`. On other nodes
the module must still exist at the same path or be installed (see docs/extending.md).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Portable:
    """An object as bytes, with the import paths of the process that packed it."""

    payload: bytes
    paths: tuple[str, ...]
    _value: list[Any] = field(default_factory=list, compare=False, repr=False)

    @classmethod
    def wrap(cls, value: Any) -> Portable:
        from ray import cloudpickle

        paths = tuple(p for p in sys.path if p and os.path.isdir(p))
        return cls(cloudpickle.dumps(value), paths, [value])

    def unwrap(self) -> Any:
        """The object (unpickled once per process, after adding the missing import paths)."""
        if not self._value:
            import pickle

            for path in self.paths:
                if path not in sys.path and os.path.isdir(path):
                    sys.path.append(path)
            self._value.append(pickle.loads(self.payload))
        return self._value[0]

    def __getstate__(self) -> dict[str, Any]:
        return {"payload": self.payload, "paths": self.paths, "_value": []}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)
