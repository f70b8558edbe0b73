"""The workflow as step actors receive it: its spec and the instance, pickled once by the driver."""

from __future__ import annotations

import sys
import types

from ray import cloudpickle

from rayflow.spec import WorkflowSpec

__all__ = ["workflow_blob"]


def _user_modules(classes: list[type]) -> list[types.ModuleType]:
    """Modules of ``classes`` that a Ray worker may not import: the user's files and modules made in memory."""
    found = []
    for name in sorted({c.__module__ for c in classes}):
        module = sys.modules.get(name)
        if module is None or name == "__main__" or name.split(".")[0] == "rayflow" or name in sys.builtin_module_names:
            continue  # (cloudpickle sends ``__main__``'s classes by value already)
        path = getattr(module, "__file__", None) or ""
        if path and ("site-packages" in path or "dist-packages" in path or path.startswith(sys.base_prefix)):
            continue  # installed: workers import it
        found.append(module)  # a file of the user's, or a module made in memory (no file at all)
    return found


def workflow_blob(workflow: object, spec: WorkflowSpec) -> bytes:
    """The spec and the workflow instance as step actors receive them.

    Modules of the workflow's classes that a Ray worker may not import (a script, a test module) are
    registered to travel by value from this process, for good: state models and results defined there
    cross between actors too.
    """
    registered = cloudpickle.list_registry_pickle_by_value()
    for module in _user_modules([*type(workflow).__mro__, *spec.event_keys]):
        if module.__name__ not in registered:
            cloudpickle.register_pickle_by_value(module)
    return cloudpickle.dumps((spec, workflow))
