"""Fixtures of the LlamaIndex compatibility suite: LlamaIndex Workflows' own tests, ported to rayflow.

Each ``test_compat_*.py`` module ports one upstream test file of ``run-llama/workflows-py`` by changing
its imports (``workflows`` -> ``rayflow``); its docstring names the file and says what else changed.
``run_on_llamaindex.py`` runs the same modules against LlamaIndex Workflows to prove they are faithful.

A test that starts runs asks for ``ray_env`` (one Ray cluster per session, no rayflow actor may survive
the test). For those tests every ``Workflow`` created during the test is closed when it ends, so the
ported test bodies need no ``close()`` call that LlamaIndex would not understand.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any

import pytest
from upstream_fixtures import events, workflow  # noqa: F401 - the upstream tests' shared fixtures

#: Seconds to wait for rayflow to release the actors of workflows that were garbage-collected.
_RELEASE_WAIT_S = 10.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "rayflow_only: a 1.x call the tutorial uses that LlamaIndex 2.26 removed; not run on LlamaIndex",
    )


def _rayflow_actors() -> list[str]:
    import ray

    return [name for name in ray.util.list_named_actors() if name.startswith("rayflow")]


@pytest.fixture(autouse=True)
async def _close_workflows(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """For a test using ``ray_env``: close the workflows the test created, before the actor check.

    Workflows are tracked by weak reference (a test may check that finished workflows are collected);
    the actors of one that was collected are released by rayflow itself, which is waited for here.
    """
    if "ray_env" not in request.fixturenames:
        yield
        return
    request.getfixturevalue("ray_env")  # set up first, so that its leak check runs after the closing
    from rayflow.workflow import Workflow

    created: list[weakref.ReferenceType[Workflow]] = []
    original = Workflow.__init__

    @functools.wraps(original)
    def tracking_init(self: Workflow, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        created.append(weakref.ref(self))

    monkeypatch.setattr(Workflow, "__init__", tracking_init)
    yield
    monkeypatch.undo()
    for ref in created:
        alive = ref()
        if alive is not None:
            await alive.close()
        alive = None
    gc.collect()
    deadline = time.monotonic() + _RELEASE_WAIT_S
    while _rayflow_actors() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
