"""The driver's side of a workflow instance: shipping the workflow to its actors, runs keeping it alive."""

from __future__ import annotations

import gc
import sys
import types

import pytest

pytestmark = pytest.mark.usefixtures("ray_env")

_MODULE_SOURCE = """
from rayflow import StartEvent, StopEvent, Workflow, step


class Doubler(Workflow):
    @step
    async def double(self, ev: StartEvent) -> StopEvent:
        return StopEvent(result=ev.n * 2)
"""


async def test_a_workflow_from_a_module_made_in_memory_travels_by_value() -> None:
    module = types.ModuleType("rayflow_test_made_in_memory")  # no file: a worker could never import it
    sys.modules[module.__name__] = module
    try:
        exec(compile(_MODULE_SOURCE, "<made in memory>", "exec"), module.__dict__)
        async with module.Doubler() as wf:
            assert await wf.run(n=21) == 42
    finally:
        del sys.modules[module.__name__]


async def test_a_running_handler_keeps_its_workflow_and_its_actors_alive() -> None:
    from rayflow import StartEvent, StopEvent, Workflow, step
    from rayflow.runtime.runtime import released

    class Echo(Workflow):
        @step
        async def echo(self, ev: StartEvent) -> StopEvent:
            return StopEvent(result=ev.text)

    handler = Echo().run(text="still here")  # nothing but the handler refers to the workflow
    gc.collect()
    assert await handler == "still here"
    del handler
    gc.collect()
    await released()
