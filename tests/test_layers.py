"""Imports flow one way: each rayflow module sits in a layer and imports only from its own layer or those below.

    core  <-  base (events, errors, config, codec, spec, context...)  <-  runtime  <-  public  <-  apps (rag, cli)

Every import counts: at the top of a module, under ``TYPE_CHECKING``, or inside a function. The routing core imports
only the standard library; no two modules import each other, directly or around a circle.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import rayflow

ROOT = Path(rayflow.__file__).parent

#: The layers, lowest first, each with the modules it holds (a package name covers its submodules).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("rayflow.core",)),
    (
        "base",
        (
            "rayflow.errors",
            "rayflow.config",
            "rayflow.events",
            "rayflow.resource",
            "rayflow.retry_policy",
            "rayflow.collect",
            "rayflow._retry",
            "rayflow.codec",
            "rayflow.payloads",
            "rayflow.spec",
            "rayflow.context",
            "rayflow.journal",
        ),
    ),
    ("runtime", ("rayflow.runtime",)),
    (
        "public",
        (
            "rayflow.decorators",
            "rayflow.validation",
            "rayflow.handler",
            "rayflow.workflow",
            "rayflow.testing",
            "rayflow.stats",
        ),
    ),
    ("apps", ("rayflow.rag", "rayflow.draw", "rayflow.cli", "rayflow.commands", "rayflow.serve")),
]
_TOP = len(LAYERS)  # the package itself (``rayflow/__init__.py``) re-exports from every layer but the apps


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def layer_of(module: str) -> int:
    if module == "rayflow":
        return _TOP
    for rank, (_, names) in enumerate(LAYERS):
        if any(module == n or module.startswith(n + ".") for n in names):
            return rank
    raise LookupError(module)


def imports_of(module: str, path: Path, known: dict[str, Path]) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import of a rayflow module in ``path``, wherever it stands."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from rayflow.x import y`` imports the module rayflow.x.y when there is one, else rayflow.x
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != module:
                yield node.lineno, target


def graph() -> dict[str, list[tuple[int, str]]]:
    known = modules()
    return {name: list(imports_of(name, path, known)) for name, path in known.items()}


def test_every_module_has_a_layer():
    unplaced = []
    for name in modules():
        try:
            layer_of(name)
        except LookupError:
            unplaced.append(name)
    assert not unplaced, f"modules in no layer (add them to LAYERS in {Path(__file__).name}): {unplaced}"


def test_no_module_imports_from_a_layer_above_its_own():
    upward = []
    for name, found in graph().items():
        for line, target in found:
            if layer_of(target) > layer_of(name):
                upward.append(
                    f"{modules()[name].relative_to(ROOT.parent)}:{line}: {name} ({LAYERS[layer_of(name)][0]}) "
                    f"imports {target} ({LAYERS[layer_of(target)][0] if layer_of(target) < _TOP else 'package'})"
                )
    assert not upward, "imports must flow down the layers:\n" + "\n".join(upward)


def test_the_core_imports_only_the_standard_library_and_itself():
    for name, path in modules().items():
        if layer_of(name) != 0:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            for imported in names:
                top = imported.split(".")[0]
                assert imported.startswith("rayflow.core") or top in sys.stdlib_module_names or top == "__future__", (
                    f"{path.name}:{node.lineno} imports {imported}"
                )


def _circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_no_import_circles():
    edges = {name: {target for _, target in found if target != "rayflow"} for name, found in graph().items()}
    assert not _circles(edges)


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"b"}, "b": set()}, []),
    ],
)
def test_the_circle_finder_finds_circles(edges: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert _circles(edges) == expected
