"""What the caller's context and handler tell of a run, on both engines: ``ctx.running_steps()``,
``ctx.stream_events()``, the deprecated ``ctx.get_result()``, ``ctx.streaming_queue``, ``handler.cancel()`` and
``handler.cancelled()``; ``ctx.to_dict(include_state=False)``; ``Workflow(workflow_name=..., serializer=...)``.

A step that must still be running while the caller asks polls the store for the caller's go-ahead (the only signal
both engines carry from the caller into a running step), bounded so a failure never hangs.
"""

import asyncio
import warnings

import pytest


def _gated(engine):
    """A workflow whose one step streams ``Started``, then runs until the caller sets ``go`` in the store."""

    class Started(engine.Event):
        pass

    class Gated(engine.Workflow):
        @engine.step
        async def hold(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            ctx.write_event_to_stream(Started())
            for _ in range(3000):  # 30 s at most
                if await ctx.store.get("go", default=False):
                    return engine.StopEvent(result="released")
                await asyncio.sleep(0.01)
            return engine.StopEvent(result="never released")

    return Gated, Started


async def _gated_run_started(engine):
    """A gated run, once its step streamed ``Started``: (its workflow, its handler)."""
    Gated, Started = _gated(engine)
    workflow = Gated(timeout=60)
    handler = workflow.run()
    async for event in handler.stream_events():
        if isinstance(event, Started):
            break
    return workflow, handler


def _ticking(engine):
    """A workflow whose one step streams ``Tick(n=0)``, ``Tick(n=1)``, ``Tick(n=2)``, then returns "done"."""

    class Tick(engine.Event):
        n: int

    class Ticks(engine.Workflow):
        @engine.step
        async def go(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            for n in range(3):
                ctx.write_event_to_stream(Tick(n=n))
            return engine.StopEvent(result="done")

    return Ticks, Tick


async def test_running_steps_names_the_step_running_now_and_none_once_the_run_ended(engine):
    Gated, Started = _gated(engine)
    workflow = Gated(timeout=60)
    ctx = engine.Context(workflow)
    with pytest.raises(engine.ContextStateError):
        await ctx.running_steps()  # no run yet
    handler = workflow.run(ctx=ctx)
    async for event in handler.stream_events():
        if isinstance(event, Started):
            assert await ctx.running_steps() == ["hold"]
            await ctx.store.set("go", True)
    assert await handler == "released"
    assert await ctx.running_steps() == []


async def test_running_steps_inside_a_step_is_refused(engine):
    class Probe(engine.Workflow):
        @engine.step
        async def ask(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            try:
                await ctx.running_steps()
            except engine.ContextStateError:
                return engine.StopEvent(result="refused")
            return engine.StopEvent(result="answered")

    assert await Probe(timeout=30).run() == "refused"


async def test_the_contexts_stream_has_the_runs_events_in_order_then_its_stop_event(engine):
    Ticks, Tick = _ticking(engine)
    workflow = Ticks(timeout=30)
    ctx = engine.Context(workflow)
    with pytest.raises(engine.ContextStateError):
        ctx.stream_events()  # no run yet
    handler = workflow.run(ctx=ctx)
    events = [event async for event in ctx.stream_events()]
    assert [event.n for event in events if isinstance(event, Tick)] == [0, 1, 2]
    assert type(events[-1]) is engine.StopEvent
    assert any(isinstance(event, engine.StepStateChanged) for event in events)  # internal events included
    assert await handler == "done"


@pytest.mark.rayflow_only("reading a run's one stream twice: LlamaIndex's second reader waits forever")
async def test_the_handlers_stream_after_the_contexts_raises(engine):
    class Once(engine.Workflow):
        @engine.step
        async def go(self, ev: engine.StartEvent) -> engine.StopEvent:
            return engine.StopEvent(result=1)

    workflow = Once(timeout=30)
    ctx = engine.Context(workflow)
    handler = workflow.run(ctx=ctx)
    assert type([event async for event in ctx.stream_events()][-1]) is engine.StopEvent
    with pytest.raises(engine.WorkflowRuntimeError, match="already been consumed"):
        [event async for event in handler.stream_events()]
    assert await handler == 1


async def test_get_result_is_the_runs_result_once_it_ended(engine):
    Gated, Started = _gated(engine)
    workflow = Gated(timeout=60)
    ctx = engine.Context(workflow)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(engine.ContextStateError):
            ctx.get_result()  # no run yet
        handler = workflow.run(ctx=ctx)
        async for event in handler.stream_events():
            if isinstance(event, Started):
                with pytest.raises(engine.WorkflowRuntimeError):
                    ctx.get_result()  # running
                await ctx.store.set("go", True)
        await handler
        assert ctx.get_result() == "released"


async def test_streaming_queue_fills_with_the_runs_events(engine):
    Ticks, Tick = _ticking(engine)
    workflow = Ticks(timeout=30)
    ctx = engine.Context(workflow)
    handler = workflow.run(ctx=ctx)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        queue = ctx.streaming_queue
    seen = []
    while True:
        event = await asyncio.wait_for(queue.get(), 30)
        seen.append(event)
        if isinstance(event, engine.StopEvent):
            break
    assert [event.n for event in seen if isinstance(event, Tick)] == [0, 1, 2]
    assert await handler == "done"


async def test_cancel_stops_the_run_and_awaiting_the_handler_raises_cancelled_error(engine):
    _, handler = await _gated_run_started(engine)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        handler.cancel()
        with pytest.raises(asyncio.CancelledError):
            await handler
        assert handler.cancelled()
        assert handler.done()


async def test_cancelled_after_cancel_run_and_not_after_a_result(engine):
    workflow, handler = await _gated_run_started(engine)
    await handler.cancel_run()
    with pytest.raises(engine.WorkflowCancelledByUser):
        await handler
    ctx = engine.Context(workflow)
    finished = workflow.run(ctx=ctx)
    await ctx.store.set("go", True)
    assert await finished == "released"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert handler.cancelled()
        assert not finished.cancelled()


async def test_to_dict_without_the_state_gives_a_context_that_starts_empty(engine):
    class Counts(engine.Workflow):
        @engine.step
        async def go(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            await ctx.store.set("n", 1)
            return engine.StopEvent(result="ok")

    workflow = Counts(timeout=30)
    handler = workflow.run()
    await handler
    whole = engine.Context.from_dict(workflow, handler.ctx.to_dict())
    assert await whole.store.get("n") == 1
    empty = engine.Context.from_dict(workflow, handler.ctx.to_dict(include_state=False))
    assert await empty.store.get("n", default=None) is None


def test_workflow_name_is_given_or_the_classs_import_path(api):
    class Named(api.Workflow):
        @api.step
        async def go(self, ev: api.StartEvent) -> api.StopEvent:
            return api.StopEvent()

    assert Named(workflow_name="ingest").workflow_name == "ingest"
    assert Named().workflow_name == f"{Named.__module__}.{Named.__qualname__}"


async def test_the_workflows_serializer_is_its_snapshots_default(engine):
    class Sets(engine.Workflow):
        @engine.step
        async def go(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            await ctx.store.set("seen", {1, 2})  # a set: not JSON
            return engine.StopEvent(result="ok")

    workflow = Sets(timeout=30, serializer=engine.PickleSerializer())
    assert isinstance(workflow.serializer, engine.PickleSerializer)
    handler = workflow.run()
    await handler
    restored = engine.Context.from_dict(workflow, handler.ctx.to_dict())
    assert await restored.store.get("seen") == {1, 2}


def test_an_unknown_keyword_argument_is_a_type_error(api):
    class Plain(api.Workflow):
        @api.step
        async def go(self, ev: api.StartEvent) -> api.StopEvent:
            return api.StopEvent()

    with pytest.raises(TypeError, match="timout"):
        Plain(timout=5)


@pytest.mark.rayflow_only("rayflow has no resource manager and one runtime, Ray: both are refused by name")
def test_resource_manager_and_runtime_are_refused_saying_what_to_use(api):
    class Plain(api.Workflow):
        @api.step
        async def go(self, ev: api.StartEvent) -> api.StopEvent:
            return api.StopEvent()

    with pytest.raises(api.WorkflowValidationError, match="Resource"):
        Plain(resource_manager=object())
    with pytest.raises(api.WorkflowValidationError, match="RAY_ADDRESS"):
        Plain(runtime=object())
