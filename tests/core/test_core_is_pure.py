"""The routing core is pure: its modules import only the standard library and each other, never Ray."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import rayflow.core

CORE = Path(rayflow.core.__file__).parent


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_core_imports_only_stdlib_and_itself():
    files = sorted(CORE.glob("*.py"))
    assert len(files) >= 8
    for path in files:
        for name in imported_modules(path):
            top = name.split(".")[0]
            allowed = name.startswith("rayflow.core") or top in sys.stdlib_module_names or top == "__future__"
            assert allowed, f"{path.name} imports {name}"
