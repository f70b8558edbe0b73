# Ported from LlamaIndex Workflows (run-llama/workflows-py), MIT License, Copyright (c) 2026 LlamaIndex Inc.
# ruff: noqa: UP007, UP045 - upstream routes with Union[...] / Optional[...] annotations, kept as written
"""Port of ``packages/llama-index-workflows/tests/test_workflow_typed_state.py``: ``Context[MyState]``
with a pydantic state, ``get_state``/``set_state``, and ``edit_state`` as a lock across parallel steps.

Change beyond the imports: ``test_typed_state`` decodes LlamaIndex's snapshot layout
(``json.loads(ctx.to_dict()["state"]["state_data"])["value"]``); here it reads the same values through
``ctx.store.get_state()``, and through a ``to_dict``/``from_dict`` round trip.
"""

import asyncio
from typing import Optional, Union

import pytest
from pydantic import BaseModel, Field

from rayflow import Context, Workflow
from rayflow.decorators import step
from rayflow.events import Event, StartEvent, StopEvent
from rayflow.testing import WorkflowTestRunner

runs = pytest.mark.usefixtures("ray_env")


class MyState(BaseModel):
    name: str = Field(default="Jane")
    age: int = Field(default=25)


class MyWorkflow(Workflow):
    @step
    async def step(self, ctx: Context[MyState], ev: StartEvent) -> StopEvent:
        # Modify state attributes
        await ctx.store.set("name", "John")
        await ctx.store.set("age", 30)

        # Get and update entire state
        state = await ctx.store.get_state()
        state.age += 1
        await ctx.store.set_state(state)

        return StopEvent()


@runs
async def test_typed_state() -> None:
    wf = MyWorkflow()
    test_runner = WorkflowTestRunner(wf)

    result = await test_runner.run()

    # Check final state via to_dict()
    ctx = result.ctx
    assert ctx is not None
    # rayflow: the state itself, instead of LlamaIndex's JSON layout of the snapshot.
    state = await ctx.store.get_state()
    assert isinstance(state, MyState)
    assert state.name == "John"
    assert state.age == 31
    restored = await Context.from_dict(wf, ctx.to_dict()).store.get_state()
    assert isinstance(restored, MyState)
    assert (restored.name, restored.age) == ("John", 31)


class SomeState(BaseModel):
    val: int = Field(default=0)


class WorkerEvent(Event):
    pass


class ResultEvent(Event):
    pass


class GatherEvent(Event):
    pass


class ParallelWorkflow(Workflow):
    @step
    async def init(self, ctx: Context[SomeState], ev: StartEvent) -> Union[WorkerEvent, GatherEvent]:
        for _ in range(10):
            ctx.send_event(WorkerEvent())

        return GatherEvent()

    @step
    async def worker(self, ctx: Context[SomeState], ev: WorkerEvent) -> ResultEvent:
        async with ctx.store.edit_state() as state:
            state.val += 1
            await asyncio.sleep(0.01)
            if state.val % 2 == 0:
                state.val -= 1

        return ResultEvent()

    @step
    async def gather(self, ctx: Context[SomeState], ev: Union[GatherEvent, ResultEvent]) -> Optional[StopEvent]:
        results = ctx.collect_events(ev, [ResultEvent] * 10)
        if not results:
            return None

        state = await ctx.store.get_state()
        return StopEvent(result=state.val)


@runs
async def test_typed_state_with_context_manager() -> None:
    test_runner = WorkflowTestRunner(ParallelWorkflow())

    result = await test_runner.run()

    # Should only be 1 since the context manager locks the state
    assert result.result == 1
