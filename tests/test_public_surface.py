"""The public surface is explicit: ``rayflow.__all__`` and each public module's ``__all__`` name what the module
defines for users, every listed name exists, and what a port from LlamaIndex imports is where it looks for it."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import rayflow

ROOT = Path(rayflow.__file__).parent

#: The modules users import from (LlamaIndex's public module names, and rayflow's own).
PUBLIC = [
    "rayflow",
    "rayflow.workflow",
    "rayflow.decorators",
    "rayflow.events",
    "rayflow.context",
    "rayflow.errors",
    "rayflow.handler",
    "rayflow.retry_policy",
    "rayflow.resource",
    "rayflow.testing",
    "rayflow.collect",
    "rayflow.stats",
]


def _defined_public_names(module: str) -> set[str]:
    """Classes and functions the module's own file defines at top level, without a leading underscore."""
    path = Path(importlib.import_module(module).__file__ or "")
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and not node.name.startswith("_")
    }


@pytest.mark.parametrize("module", PUBLIC)
def test_every_listed_name_exists(module: str) -> None:
    loaded = importlib.import_module(module)
    listed = getattr(loaded, "__all__", None)
    assert listed, f"{module} has no __all__"
    assert len(listed) == len(set(listed)), f"{module}.__all__ lists a name twice"
    assert [n for n in listed if not hasattr(loaded, n)] == []


@pytest.mark.parametrize("module", [m for m in PUBLIC if m != "rayflow"])
def test_every_public_class_and_function_a_module_defines_is_listed(module: str) -> None:
    listed = set(importlib.import_module(module).__all__)
    assert sorted(_defined_public_names(module) - listed) == []


def test_the_package_exports_what_llamaindex_users_import_from_the_top():
    import workflows

    assert sorted(set(workflows.__all__) - set(rayflow.__all__)) == []


#: Names LlamaIndex Workflows 2.26.1's public modules hold that rayflow leaves out, and why (the README's list).
LEFT_OUT = {
    "ResourceManager": "resources set on the driver would reach each actor as pickled copies",
    "WorkflowMeta": "rayflow's Workflow has no metaclass: its steps are read when the class is compiled",
    "CollectionReleaseEvent": "a join's events travel as its work item's members, not as an event",
    "IdleReleasedEvent": "the result of LlamaIndex's server releasing an idle run; rayflow has none",
    "SerializableEvent": "LlamaIndex's JSON form of events in its snapshots",
    "UnreconstructedException": "LlamaIndex's JSON form of exceptions in its snapshots",
    "JsonSerializer": "in rayflow.context (and the package), not rayflow.events: the serializers import the events",
}

#: Internal helpers and type variables LlamaIndex's modules import or define for themselves.
INTERNAL = {
    "step_accepts_event",
    "CatchErrorHandler",
    "inspect_signature",
    "is_free_function",
    "make_step_function",
    "validate_step_signature",
    "import_module_from_qualified_name",
    "ExternalRunAdapter",
    "as_v2_runtime_compatibility_shim",
    "B",
    "P",
    "R",
    "R_co",
    "T",
}


@pytest.mark.parametrize(
    "module",
    [
        "workflow",
        "decorators",
        "events",
        "context",
        "errors",
        "handler",
        "retry_policy",
        "resource",
        "testing",
        "collect",
    ],
)
def test_every_public_name_of_a_llamaindex_module_is_ported_or_listed_as_left_out(module: str) -> None:
    theirs = importlib.import_module(f"workflows.{module}")
    ours = importlib.import_module(f"rayflow.{module}")
    names = getattr(theirs, "__all__", None) or [
        n
        for n in dir(theirs)
        if not n.startswith("_") and getattr(getattr(theirs, n), "__module__", "").startswith("workflows")
    ]
    assert sorted(n for n in names if not hasattr(ours, n) and n not in LEFT_OUT and n not in INTERNAL) == []


def test_the_readme_lists_every_name_left_out() -> None:
    readme = (ROOT.parent / "README.md").read_text()
    assert [name for name in LEFT_OUT if f"`{name}`" not in readme] == []
