"""Plug-ins by name, by import path, or by object: one resolver for models, data sources and strategies.

A plug-in entry in a config is either

- a registered name (`register_model("resnet8", factory)`; the built-ins are registered
  the same way, so nothing has a private path),
- an import path `"package.module:attribute"` (uvicorn's `"main:app"`), imported in
  whichever process needs it, or
- (Python API) the object itself.

How plug-ins travel: the runner resolves every entry once, before Ray starts, and ships
the resolved objects to the processes that run them. Objects defined in an importable
module are pickled *by reference* (the receiving process imports the module: install
it on every node of a cluster, or use Ray's `runtime_env`); objects defined in a script
(`__main__`) or inside a function travel *by value* with Ray's cloudpickle. Registered
names exist only in the process that registered them; sweeps hand a snapshot of the
registries to their trials.

Identity: `object_identity` names an object by its import path plus a hash of its
source code where `inspect` can read it (a `functools.partial`: its function's identity
and its bound arguments; an instance: its class's and its attributes). It enters the run's fingerprint, so changing
a factory's own code changes the run id (a resume refuses it, a transfer cache misses).
A class's identity includes its base classes that are the user's code. It cannot see other
code the object calls, global values it reads, closures' captured
values, or compiled extensions: change one of those and the fingerprint stays the same.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import hashlib
import importlib
import inspect
import os
import pickle
import re
import sys
import sysconfig
from typing import Any, Callable, Generic, Iterator, TypeVar

from fedmd_ray.errors import ConfigError, Overdue, PluginExit

T = TypeVar("T")

IMPORT_PATH = re.compile(r"[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")


def is_import_path(entry: str) -> bool:
    """`"pkg.mod:attr"` (dots allowed on both sides)."""
    return IMPORT_PATH.fullmatch(entry) is not None


# Never plug-ins: the standard library and the packages fedmd_ray itself runs on. A config string
# `"os:rmdir"` or `"torch:save"` names a function that does something to the disk when called with a
# loader's or a factory's arguments; no one writes a plug-in there. Refused before anything is
# imported (importing some standard modules has effects of its own).
NOT_PLUGINS = frozenset(sys.stdlib_module_names) | {
    "builtins",
    "torch",
    "torchvision",
    "numpy",
    "pyarrow",
    "pandas",
    "ray",
    "sklearn",
    "scipy",
    "matplotlib",
    "PIL",
}


def load_object(path: str, what: str, check: Callable[[Any], None] | None = None) -> Any:
    """Import `"pkg.mod:attr"` and return the object, or ConfigError naming `what` (e.g. "model 'x:y'").

    The trust rule (docs/extending.md, "Config files are code"): an import path names the user's
    own code. A module of the standard library or of the packages fedmd_ray runs on (`NOT_PLUGINS`)
    is refused before it is imported; the attribute path may not pass through a module (`mypkg:os.rmdir`);
    `check` then looks at what the object is before anyone calls it (a model factory, a data loader,
    a strategy: see their resolvers). Only here does the current directory take part in imports, and
    after everything installed: a `torch.py` lying there never shadows torch.
    """
    module_name, _, attribute = path.partition(":")
    if module_name.partition(".")[0] in NOT_PLUGINS:
        raise ConfigError(
            f"{what}: {module_name!r} is part of Python or of a package fedmd_ray runs on, not a plug-in; an import "
            "path names your own code, e.g. 'mypkg.nets:resnet8' (see docs/extending.md)"
        )
    _current_directory_last()
    try:
        with plugin_code():
            module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module's own code raising (or exiting)
        raise ConfigError(
            f"{what}: cannot import module {module_name!r} ({type(exc).__name__}: {exc}); install it or run from "
            "the directory that holds it (the current directory is importable)"
        ) from exc
    target: Any = module
    for part in attribute.split("."):
        if inspect.ismodule(target) and target is not module:
            raise ConfigError(
                f"{what}: {attribute!r} passes through the module {target.__name__!r}; name the object "
                "in the module that defines it"
            )
        try:
            target = getattr(target, part)
        except AttributeError:
            names = [n for n in dir(target) if not n.startswith("_")]
            close = difflib.get_close_matches(part, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{what}: {module_name!r} has no attribute {attribute!r}{hint}") from None
    if check is not None:
        check(target)
    return target


def check_users_code(obj: Any, what: str) -> None:
    """ConfigError unless `obj` is Python code of the user's: not built in (C functions such as
    `os.rmdir`), not defined in the standard library or the packages fedmd_ray runs on (a re-export
    `from shutil import rmtree` in the user's module still names shutil's function), not a module."""
    defined_in = getattr(obj if inspect.isclass(obj) or inspect.isroutine(obj) else type(obj), "__module__", None)
    if inspect.ismodule(obj) or inspect.isbuiltin(obj) or not isinstance(defined_in, str) \
            or defined_in.partition(".")[0] in NOT_PLUGINS | {"fedmd_ray"}:  # fmt: skip
        raise ConfigError(
            f"{what} names {describe(obj)!r} (defined in {defined_in or 'C'}), which is not a plug-in: an import path "
            "names your own loader, factory or strategy (see docs/extending.md)"
        )


def takes_arguments(obj: Any, count: int) -> bool:
    """Whether `obj(*count positional arguments)` matches its signature (True when it has none to read)."""
    try:
        inspect.signature(obj).bind(*range(count))
    except TypeError:
        return False
    except ValueError:  # no signature (some C callables): nothing to check here
        return True
    return True


@contextlib.contextmanager
def plugin_code() -> Iterator[None]:
    """Around a call into a plug-in's code: `sys.exit()` there (or any BaseException other than an
    interrupt from the user) is a failure of the plug-in, raised as `PluginExit` (an Exception, so the
    caller's usual handling names the plug-in), never the end of the run with its exit status."""
    try:
        yield
    except (Exception, KeyboardInterrupt, Overdue):
        raise
    except BaseException as exc:
        raise PluginExit(
            f"{type(exc).__name__}({', '.join(map(repr, exc.args))}): the plug-in tried to end the process"
        ) from exc


def current_directory_last() -> None:
    """Move the current directory ('' or its path) behind every installed package on `sys.path`. The
    CLI does this first (`python -m` puts it first), and so does every Ray worker importing fedmd_ray:
    Ray puts the driver's working directory first on its workers' paths, where a stray `torch.py` would
    be imported in place of torch."""
    cwd = os.getcwd()
    here = [p for p in sys.path if p in ("", ".", cwd)]
    if here:
        sys.path[:] = [p for p in sys.path if p not in here] + here


def in_ray_worker() -> bool:
    """This process is a Ray worker (an actor or a task), without importing Ray."""
    return os.path.basename(sys.argv[0] if sys.argv else "") == "default_worker.py"


def _current_directory_last() -> None:
    """User import paths resolve against the current directory too, as `python -m` users expect, but
    after every installed package."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)


def import_path_of(obj: Any) -> str | None:
    """`"module:qualname"` when importing that gives back `obj` (a module-level function or class,
    or an instance bound to a module-level name is not enough: instances have no qualname)."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<" in qualname:
        return None
    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except Exception:
        return None
    return f"{module}:{qualname}" if found is obj else None


def object_identity(obj: Any) -> str:
    """What names `obj` in a fingerprint: its import path (or module and qualified name) and a hash
    of its source; a `functools.partial` its function's identity and a hash of the bound arguments;
    an instance adds a hash of its attributes (e.g. a strategy's parameters); a class also hashes its
    base classes that are the user's code (`_users_bases`)."""
    if isinstance(obj, functools.partial):
        return f"partial({object_identity(obj.func)})#{_hash_of((obj.args, sorted(obj.keywords.items())))}"
    if not (inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismethod(obj)):
        attributes = _hash_of(sorted(vars(obj).items())) if hasattr(obj, "__dict__") else "?"
        return f"{object_identity(type(obj))}#{attributes}"
    name = import_path_of(obj) or f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"
    try:
        source = inspect.getsource(obj)
    except (OSError, TypeError):  # built in, or defined where inspect cannot read (a REPL)
        return name
    for base in _users_bases(obj) if inspect.isclass(obj) else ():  # what `super()` runs is the object's code too
        with contextlib.suppress(OSError, TypeError):
            source += inspect.getsource(base)
    return f"{name}@{hashlib.sha256(source.encode()).hexdigest()[:12]}"


def _users_bases(cls: type) -> list[type]:
    """The base classes of `cls` that are the user's code: not fedmd_ray's (a built-in is named by its
    name), not Python's or an installed library's (torch's `nn.Module`: versioned by its package)."""
    installed = tuple(
        filter(None, {sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")})
    )
    bases = []
    for base in cls.__mro__[1:]:
        module = sys.modules.get(base.__module__)
        path = getattr(module, "__file__", None)
        if base.__module__.partition(".")[0] in ("builtins", "fedmd_ray") or path is None:
            continue
        if not os.path.abspath(path).startswith(installed):
            bases.append(base)
    return bases


def _hash_of(values: Any) -> str:
    """A short hash of picklable values; "?" when they are not (the class alone then names the object)."""
    try:
        return hashlib.sha256(pickle.dumps(values)).hexdigest()[:12]
    except Exception:
        return "?"


def describe(obj: Any) -> str:
    """A short human name of an object entry, for messages, the `model` column and sweep tables: its
    import path or name, with its bound arguments (a partial) or plain attributes (an instance)
    so that two grid points of one class read differently: `Rho(rho=0.1)`, `mlp(width=8)`."""
    if isinstance(obj, str):
        return obj
    if isinstance(obj, functools.partial):
        return _with_arguments(describe(obj.func), obj.args, obj.keywords)
    path = import_path_of(obj)
    if path:
        return path
    name = getattr(obj, "__qualname__", None)
    if name is not None:
        return str(name)
    attributes = {k: v for k, v in getattr(obj, "__dict__", {}).items() if not k.startswith("_")}
    return _with_arguments(type(obj).__qualname__, (), attributes)


def _with_arguments(name: str, args: tuple[Any, ...], keywords: dict[str, Any]) -> str:
    """`name(1, k=2)` with the values that read well (numbers, strings, ...); `name` alone when none do."""
    plain = (bool, int, float, str, type(None))
    shown = [repr(a) for a in args if isinstance(a, plain)]
    shown += [f"{k}={v!r}" for k, v in keywords.items() if isinstance(v, plain)]
    return f"{name}({', '.join(shown)})" if shown else name


class Registry(Generic[T]):
    """Names -> plug-in objects of one kind, in registration order; process-local."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._builtin: set[str] = set()

    def register(self, name: str, obj: T, *, builtin: bool = False) -> None:
        if not isinstance(name, str) or not name or name != name.strip() or "," in name or ";" in name:
            raise ConfigError(f"{self.kind} name {name!r} must be a non-empty string without spaces, ',' or ';'")
        if is_import_path(name):
            raise ConfigError(f"{self.kind} name {name!r} looks like an import path; register it under a plain name")
        if name in self._builtin:
            raise ConfigError(f"{self.kind} name {name!r} is built in; register yours under another name")
        self._items[name] = obj
        if builtin:
            self._builtin.add(name)

    def get(self, name: str) -> T | None:
        return self._items.get(name)

    def names(self) -> list[str]:
        return list(self._items)

    def is_builtin(self, name: str) -> bool:
        return name in self._builtin

    def user_entries(self) -> dict[str, T]:
        """What users registered (sweeps ship it to their trials)."""
        return {k: v for k, v in self._items.items() if k not in self._builtin}

    def install(self, entries: dict[str, T]) -> None:
        for name, obj in entries.items():
            self._items[name] = obj

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def close_match(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.names(), n=1)
        return f" (did you mean {close[0]!r}?)" if close else ""
