"""The code stays readable in one sitting: no function of the package is longer than 50 lines of code."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fedmd_ray"
MAX_LINES = 50  # of code: the signature and the docstring aside


def _code_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    first = function.body[0]
    docstring = (
        isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)
    )
    start = first.end_lineno + 1 if docstring and len(function.body) > 1 else first.lineno
    return function.end_lineno - start + 1


def test_no_function_is_longer_than_50_lines():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _code_lines(node) > MAX_LINES:
                long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({_code_lines(node)})")
    assert long == []
