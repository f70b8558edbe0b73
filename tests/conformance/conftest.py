"""The conformance suite's engine switch: every test here runs on rayflow and on LlamaIndex Workflows.

A test takes the ``engine`` fixture and writes its workflow against it (``engine.Workflow``, ``engine.step``,
``engine.Event``, ``engine.errors.WorkflowTimeoutError``, ...): the same code and the same assertions on both
engines, only the modules differ. A test of plain objects that runs no workflow takes ``api`` instead (the same
names, and no Ray started). ``pytest tests/conformance --engine llamaindex`` (or ``rayflow``) runs one.

Three markers say where the engines are allowed to part, each with its reason:

- ``@pytest.mark.differs("why")``: rayflow differs on purpose (listed in the README's "Where rayflow differs");
  the test pins LlamaIndex's behaviour, and on rayflow it must fail (a strict xfail): once it passes, the mark goes.
- ``@pytest.mark.rayflow_bug("what")``: rayflow should behave as LlamaIndex does and does not yet; a strict xfail
  on rayflow that names the bug, until it is fixed.
- ``@pytest.mark.rayflow_only("why")``: LlamaIndex 2.26 no longer has the API (a 1.x call the tutorial uses) or
  the behaviour is rayflow's own; skipped on LlamaIndex with the reason.

On rayflow a test uses the session's Ray (``ray_env``): every workflow it created is closed when it ends, and no
rayflow actor may outlive it.
"""

from __future__ import annotations

import functools
import gc
import importlib
import weakref
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import pytest

ENGINES = {"rayflow": "rayflow", "llamaindex": "workflows"}
#: The public modules a port touches: ``workflows.<name>`` -> ``rayflow.<name>``.
MODULES = ("workflow", "decorators", "events", "context", "errors", "handler", "retry_policy", "resource", "testing")


class Engine:
    """One engine's public API: its modules by name, and its everyday names as attributes.

    ``engine.events`` is ``rayflow.events`` or ``workflows.events``; ``engine.Workflow``, ``engine.StartEvent``,
    ``engine.WorkflowTimeoutError``... are found in the package, then in its events, errors, context and
    decorators modules, as a user would import them.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.package = importlib.import_module(ENGINES[name])
        self.modules: dict[str, ModuleType] = {m: importlib.import_module(f"{ENGINES[name]}.{m}") for m in MODULES}

    @property
    def is_rayflow(self) -> bool:
        return self.name == "rayflow"

    def __getattr__(self, attr: str) -> Any:
        modules = self.__dict__.get("modules", {})
        if attr in modules:
            return modules[attr]
        for module in (self.package, *(modules[m] for m in ("events", "errors", "context", "decorators"))):
            if hasattr(module, attr):
                return getattr(module, attr)
        raise AttributeError(f"{self.name} has no public name {attr!r} in its package or its everyday modules")

    def __repr__(self) -> str:
        return f"Engine({self.name})"

    def __reduce__(self) -> tuple[Any, ...]:
        """A step body that names ``engine`` travels to rayflow's actors, where this conftest cannot be imported:
        it arrives as a plain namespace of the same names (modules and classes, each pickled by reference).

        The namespace is a module object, not a ``SimpleNamespace``: pydantic keeps the locals of the function
        that defined an event class (``engine`` among them) behind weak references, and rebuilds those when
        the class is unpickled on an actor; a ``SimpleNamespace`` cannot be weakly referenced."""
        names: dict[str, Any] = {}
        for module in (self.modules["decorators"], self.modules["context"], self.modules["errors"]):
            names.update((n, getattr(module, n)) for n in dir(module) if not n.startswith("_"))
        names.update((n, getattr(self.modules["events"], n)) for n in dir(self.modules["events"]) if n[:1].isupper())
        names.update((n, getattr(self.package, n)) for n in dir(self.package) if not n.startswith("_"))
        names.update(self.modules, name=self.name, is_rayflow=self.is_rayflow, package=self.package)
        return (ModuleType, (f"engine[{self.name}]",), names)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "differs(reason): rayflow differs from LlamaIndex on purpose (strict xfail)")
    config.addinivalue_line("markers", "rayflow_bug(reason): a rayflow bug, not a difference (strict xfail)")
    config.addinivalue_line("markers", "rayflow_only(reason): not run on LlamaIndex, for the reason given")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "engine_name" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("--engine")
        names = list(ENGINES) if chosen == "both" else [chosen]
        metafunc.parametrize("engine_name", names, scope="session")


def _reason(marker: pytest.Mark) -> str:
    return str(marker.args[0] if marker.args else marker.kwargs.get("reason", ""))


@functools.cache
def _engine(name: str) -> Engine:
    return Engine(name)


def _apply_marks(request: pytest.FixtureRequest, engine_name: str) -> None:
    """Skip a ``rayflow_only`` test on LlamaIndex; make ``differs`` and ``rayflow_bug`` strict xfails on rayflow."""
    only = request.node.get_closest_marker("rayflow_only")
    if only is not None and engine_name != "rayflow":
        pytest.skip(f"rayflow only: {_reason(only)}")
    if only is not None and not _reason(only):
        raise pytest.UsageError(f"{request.node.nodeid}: rayflow_only needs a reason")
    for mark, label in (("differs", "rayflow differs"), ("rayflow_bug", "rayflow bug")):
        marker = request.node.get_closest_marker(mark)
        if marker is None:
            continue
        if not _reason(marker):
            raise pytest.UsageError(f"{request.node.nodeid}: {mark} needs a reason")
        if engine_name == "rayflow":
            request.applymarker(pytest.mark.xfail(reason=f"{label}: {_reason(marker)}", strict=True))


@pytest.fixture
def api(request: pytest.FixtureRequest, engine_name: str) -> Engine:
    """The engine's modules for a test that runs no workflow (plain objects: retry policies, ...): on rayflow
    nothing is started, no Ray. The marks work as with ``engine``."""
    _apply_marks(request, engine_name)
    return _engine(engine_name)


@pytest.fixture
async def engine(
    request: pytest.FixtureRequest, engine_name: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Engine]:
    """The engine this run of the test is on; on rayflow, its workflows are closed when the test ends."""
    _apply_marks(request, engine_name)
    found = _engine(engine_name)
    if not found.is_rayflow:
        yield found
        return
    request.getfixturevalue("ray_env")  # set up first: its leak check runs after the closing below
    created = _track_workflows(found, monkeypatch)
    yield found
    monkeypatch.undo()
    for ref in created:
        workflow = ref()
        if workflow is not None:
            await workflow.close()
        del workflow
    from rayflow.runtime.runtime import released

    gc.collect()
    await released()


def _track_workflows(found: Engine, monkeypatch: pytest.MonkeyPatch) -> list[weakref.ReferenceType[Any]]:
    """Weak references to every rayflow ``Workflow`` made during the test (a test may check they are collected)."""
    workflow_class = found.package.Workflow
    created: list[weakref.ReferenceType[Any]] = []
    original = workflow_class.__init__

    @functools.wraps(original)
    def tracking_init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        created.append(weakref.ref(self))

    monkeypatch.setattr(workflow_class, "__init__", tracking_init)
    return created
