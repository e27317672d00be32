"""Starting the command line (or a Python snippet) from a test, one way for every test: no stdin, a bound
on time, captured text output, and never an outside cluster (`RAY_ADDRESS` dropped: the test's own)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CLI = (sys.executable, "-m", "fedmd_ray.cli")


def sets(*fields: str) -> list[str]:
    """`--set` before each `key=value`."""
    return [arg for field in fields for arg in ("--set", field)]


def environment(**extra: str) -> dict[str, str]:
    """This process's environment with `extra` and without `RAY_ADDRESS`."""
    env = {**os.environ, **extra}
    env.pop("RAY_ADDRESS", None)
    return env


def run_python(
    *argv: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 240
) -> subprocess.CompletedProcess:
    """`python *argv` to its end (at most `timeout` seconds); `env`: extra variables."""
    return _run([sys.executable, *argv], env, cwd, timeout)


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 240
) -> subprocess.CompletedProcess:
    """`fedmd-ray *args` as a user types it (through `python -m`, this interpreter)."""
    return _run([*CLI, *args], env, cwd, timeout)


def _run(
    command: list[str], env: dict[str, str] | None, cwd: Path | None, timeout: float
) -> subprocess.CompletedProcess:
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment(**(env or {})),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )
