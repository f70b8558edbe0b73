# Ported from LlamaIndex Workflows (run-llama/workflows-py), MIT License, Copyright (c) 2026 LlamaIndex Inc.
# ruff: noqa: RUF043 - upstream's match= strings, kept verbatim
"""Port of ``packages/llama-index-workflows/tests/test_streaming.py``: ``write_event_to_stream``,
``stream_events`` ending on errors and timeouts, reading a stream once, concurrent streams.
Imports changed only.

``test_termination_events`` is not an upstream test: it checks the termination events of LlamaIndex's
streaming guide ("Handling workflow termination"), and runs on LlamaIndex too.
"""

import asyncio
from collections.abc import AsyncGenerator

import pytest
from upstream_fixtures import OneTestEvent

from rayflow.context import Context
from rayflow.decorators import step
from rayflow.errors import WorkflowCancelledByUser, WorkflowRuntimeError, WorkflowTimeoutError
from rayflow.events import (
    Event,
    StartEvent,
    StopEvent,
    WorkflowCancelledEvent,
    WorkflowFailedEvent,
    WorkflowTimedOutEvent,
)
from rayflow.testing import WorkflowTestRunner
from rayflow.workflow import Workflow

runs = pytest.mark.usefixtures("ray_env")


class StreamingWorkflow(Workflow):
    @step
    async def chat(self, ctx: Context, ev: StartEvent) -> StopEvent:
        async def stream_messages() -> AsyncGenerator[str, None]:
            resp = "Paul Graham is a British-American computer scientist, entrepreneur, vc, and writer."
            for word in resp.split():
                yield word

        async for w in stream_messages():
            ctx.write_event_to_stream(Event(msg=w))

        return StopEvent(result=None)


@runs
async def test_e2e() -> None:
    test_runner = WorkflowTestRunner(StreamingWorkflow())
    r = await test_runner.run(expose_internal=False, exclude_events=[StopEvent])

    assert all("msg" in ev for ev in r.collected)


@runs
async def test_task_raised() -> None:
    class DummyWorkflow(Workflow):
        @step
        async def step(self, ctx: Context, ev: StartEvent) -> StopEvent:
            ctx.write_event_to_stream(OneTestEvent(test_param="foo"))
            raise ValueError("The step raised an error!")

    wf = DummyWorkflow()
    r = wf.run()

    # Make sure we don't block indefinitely here because the step raised
    async for ev in r.stream_events():
        if not isinstance(ev, StopEvent):
            assert ev.test_param == "foo"

    # Make sure the await actually caught the exception
    with pytest.raises(ValueError, match="The step raised an error!"):
        await r


@runs
async def test_task_timeout() -> None:
    class DummyWorkflow(Workflow):
        @step
        async def step(self, ctx: Context, ev: StartEvent) -> StopEvent:
            ctx.write_event_to_stream(OneTestEvent(test_param="foo"))
            await asyncio.sleep(2)
            return StopEvent()

    wf = DummyWorkflow(timeout=0.1)
    r = wf.run()

    # Make sure we don't block indefinitely here because the step raised
    async for ev in r.stream_events():
        if not isinstance(ev, StopEvent):
            assert ev.test_param == "foo"

    # Make sure the await actually caught the exception
    with pytest.raises(WorkflowTimeoutError, match="Operation timed out"):
        await r


@runs
async def test_multiple_sequential_streams() -> None:
    test_runner = WorkflowTestRunner(StreamingWorkflow())
    # stream 1
    await test_runner.run(StartEvent())
    # stream 2 -- should not raise an error
    await test_runner.run(StartEvent())


@runs
async def test_consume_only_once() -> None:
    wf = StreamingWorkflow()
    handler = wf.run()

    async for _ in handler.stream_events():
        pass

    with pytest.raises(
        WorkflowRuntimeError,
        match="All the streamed events have already been consumed.",
    ):
        async for _ in handler.stream_events():
            pass

    await handler


@runs
async def test_multiple_ongoing_streams() -> None:
    wf = StreamingWorkflow()
    stream_1 = wf.run()
    stream_2 = wf.run()

    async for ev in stream_1.stream_events():
        if not isinstance(ev, StopEvent):
            assert "msg" in ev

    async for ev in stream_2.stream_events():
        if not isinstance(ev, StopEvent):
            assert "msg" in ev

    await asyncio.gather(stream_1, stream_2)


@runs
async def test_resume_streams() -> None:
    class CounterWorkflow(Workflow):
        @step
        async def count(self, ctx: Context, ev: StartEvent) -> StopEvent:
            ctx.write_event_to_stream(Event(msg="hello!"))

            cur_count = await ctx.store.get("cur_count", default=0)
            await ctx.store.set("cur_count", cur_count + 1)
            return StopEvent(result="done")

    wf = CounterWorkflow()
    result = await WorkflowTestRunner(wf).run()
    ctx1 = result.ctx
    assert ctx1

    result2 = await WorkflowTestRunner(wf).run(ctx=ctx1)

    ctx2 = result2.ctx

    assert ctx2
    assert await ctx2.store.get("cur_count") == 2


class EndingWorkflow(Workflow):
    @step
    async def work(self, ctx: Context, ev: StartEvent) -> StopEvent:
        if ev.how == "fail":
            raise ValueError("boom")
        await ctx.store.set("started", True)
        await asyncio.sleep(5)
        return StopEvent(result="unreachable")


async def _events_and_error(handler: object) -> tuple[list[Event], BaseException]:
    events = [ev async for ev in handler.stream_events()]  # type: ignore[attr-defined]
    try:
        await handler  # type: ignore[misc]
    except BaseException as err:
        return events, err
    raise AssertionError("the run did not fail")


@runs
async def test_termination_events() -> None:
    # The last streamed event says how a run ended abnormally, then awaiting the handler raises.
    events, err = await _events_and_error(EndingWorkflow(timeout=0.2).run(how="sleep"))
    assert isinstance(err, WorkflowTimeoutError)
    assert isinstance(events[-1], WorkflowTimedOutEvent)
    assert events[-1].timeout == 0.2

    wf = EndingWorkflow()
    events, err = await _events_and_error(wf.run(how="fail"))
    assert isinstance(err, ValueError)
    assert isinstance(events[-1], WorkflowFailedEvent)
    assert events[-1].step_name == "work"

    handler = wf.run(how="sleep")
    while not await handler.ctx.store.get("started", default=False):
        await asyncio.sleep(0.01)
    await handler.cancel_run()
    events, err = await _events_and_error(handler)
    assert isinstance(err, WorkflowCancelledByUser)
    assert isinstance(events[-1], WorkflowCancelledEvent)
