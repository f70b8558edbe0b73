# Ported from LlamaIndex Workflows (run-llama/workflows-py), MIT License, Copyright (c) 2026 LlamaIndex Inc.
# ruff: noqa: UP007 - upstream routes with Union[...] / Optional[...] annotations, kept as written
# ruff: noqa: RUF043 - upstream's match= strings, kept verbatim
"""Port of ``packages/llama-index-workflows/tests/test_workflow.py`` (and ``test_workflow_cancelled_by_user``
of the older ``tests/test_workflow.py``): runs, custom start/stop events, validation, errors, timeouts,
``send_event(step=...)``, context continuation and snapshots, human in the loop, concurrent runs.

Changes beyond the imports, each marked ``# rayflow:`` where it happens:
- Steps run in Ray actors, so a step cannot append to a list or set an ``asyncio.Event`` of the test.
  Where a test only *observes* through such a closure, it observes through the public API instead
  (``ctx.store``, the stream, the result); the behaviour under test is unchanged.
- Checks through internals (``ctx._broker_run``, tick replays, ``_get_start_event_instance``,
  ``_validate`` with a mocked ``_get_steps``, ``WorkflowHandler(ctx=...)``) are rewritten through the public API.
- Left out: instrumentation tags (internal), ``wait_for_event`` waiters (their internal snapshot layout;
  tests/runtime/test_waits.py runs the same wait workflows on both engines), and the non-picklable start
  event (rayflow documents that events must pickle).
"""

import asyncio
import gc
import logging
import time
import weakref
from typing import Any, Union, cast

import pytest
from upstream_fixtures import AnotherTestEvent, LastEvent, OneTestEvent

from rayflow.context import Context, PickleSerializer
from rayflow.decorators import step
from rayflow.errors import (
    WorkflowCancelledByUser,
    WorkflowConfigurationError,
    WorkflowRuntimeError,
    WorkflowTimeoutError,
    WorkflowValidationError,
)
from rayflow.events import (
    Event,
    HumanResponseEvent,
    InputRequiredEvent,
    StartEvent,
    StopEvent,
)
from rayflow.handler import WorkflowHandler
from rayflow.testing import WorkflowTestRunner
from rayflow.workflow import Workflow

runs = pytest.mark.usefixtures("ray_env")


class EventWithName(Event):
    name: str


class MyStart(StartEvent):
    query: str


class MyStop(StopEvent):
    outcome: str


class ResumeStartEvent(StartEvent):
    topic: str


def test_fn() -> None:
    print("test_fn")


async def wait_for_key(ctx: Context, key: str, timeout: float = 10.0) -> None:
    """rayflow: stands in for an ``asyncio.Event`` shared by the test and a step (polls ``ctx.store``)."""
    deadline = time.monotonic() + timeout
    while not await ctx.store.get(key, default=False):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{key} was never set")
        await asyncio.sleep(0.01)


async def test_workflow_initialization(workflow: Workflow) -> None:
    assert workflow._timeout == 45
    assert not workflow._disable_validation
    assert not workflow._verbose


@runs
async def test_workflow_run(workflow: Workflow) -> None:
    r = await WorkflowTestRunner(workflow).run()
    assert r.result == "Workflow completed"


@runs
async def test_workflow_timeout() -> None:
    class SlowWorkflow(Workflow):
        @step
        async def slow_step(self, ev: StartEvent) -> StopEvent:
            await asyncio.sleep(2.0)
            return StopEvent(result="Done")

    with pytest.raises(WorkflowTimeoutError):
        await WorkflowTestRunner(SlowWorkflow(timeout=0.1)).run()


async def test_workflow_validation_unproduced_events() -> None:
    class InvalidWorkflow(Workflow):
        @step
        async def invalid_step(self, ev: StartEvent) -> None:
            pass

    with pytest.raises(
        WorkflowConfigurationError,
        match="At least one Event of type StopEvent must be returned by any step.",
    ):
        InvalidWorkflow()


async def test_workflow_validation_unconsumed_events() -> None:
    class InvalidWorkflow(Workflow):
        @step
        async def invalid_step(self, ev: StartEvent) -> OneTestEvent:
            return OneTestEvent()

        @step
        async def a_step(self, ev: StartEvent) -> StopEvent:
            return StopEvent()

    with pytest.raises(
        WorkflowValidationError,
        match="The following events are produced but never consumed: OneTestEvent",
    ):
        await WorkflowTestRunner(InvalidWorkflow()).run()


async def test_workflow_validation_start_event_not_consumed() -> None:
    class InvalidWorkflow(Workflow):
        @step
        async def a_step(self, ev: OneTestEvent) -> StopEvent:
            return StopEvent()

        @step
        async def another_step(self, ev: OneTestEvent) -> OneTestEvent:
            return OneTestEvent()

    with pytest.raises(
        WorkflowConfigurationError,
        match="At least one Event of type StartEvent must be received by any step.",
    ):
        InvalidWorkflow()


@runs
async def test_workflow_event_propagation() -> None:
    # rayflow: the steps record their order in ctx.store instead of appending to a list of the test.
    class EventTrackingWorkflow(Workflow):
        @step
        async def step1(self, ctx: Context, ev: StartEvent) -> OneTestEvent:
            await ctx.store.set("events", [*await ctx.store.get("events", default=[]), "step1"])
            return OneTestEvent()

        @step
        async def step2(self, ctx: Context, ev: OneTestEvent) -> StopEvent:
            await ctx.store.set("events", [*await ctx.store.get("events", default=[]), "step2"])
            return StopEvent(result="Done")

    r = await WorkflowTestRunner(EventTrackingWorkflow()).run()
    assert await r.ctx.store.get("events") == ["step1", "step2"]


@runs
async def test_workflow_sync_async_steps() -> None:
    class SyncAsyncWorkflow(Workflow):
        @step
        async def async_step(self, ev: StartEvent) -> OneTestEvent:
            return OneTestEvent()

        @step
        def sync_step(self, ev: OneTestEvent) -> StopEvent:
            return StopEvent(result="Done")

    await WorkflowTestRunner(SyncAsyncWorkflow()).run()


@runs
async def test_workflow_sync_steps_only() -> None:
    class SyncWorkflow(Workflow):
        @step
        def step_one(self, ctx: Context, ev: StartEvent) -> OneTestEvent:
            ctx.collect_events(ev, [StartEvent])
            return OneTestEvent()

        @step
        def step_two(self, ctx: Context, ev: OneTestEvent) -> StopEvent:
            # ctx.collect_events(ev, [OneTestEvent])
            return StopEvent()

    await WorkflowTestRunner(SyncWorkflow()).run()


async def await_count(ctx: Context, count: int) -> None:
    """rayflow: the upstream barrier (a lock, a counter and an ``asyncio.Event`` of the test), kept in ctx.store."""
    async with ctx.store.edit_state() as state:
        state["waiting"] = state.get("waiting", 0) + 1
    while await ctx.store.get("waiting") < count:
        await asyncio.sleep(0.01)


@runs
@pytest.mark.xfail(
    reason="difference: N invocations at once need N actors; a pool grows to num_workers on demand and an actor "
    "takes ~0.5 s to start, so a first run cannot have them all within this test's 1 s",
    strict=True,
)
async def test_workflow_num_workers() -> None:
    class NumWorkersWorkflow(Workflow):
        @step
        async def original_step(self, ctx: Context, ev: StartEvent) -> Union[OneTestEvent, LastEvent]:
            await ctx.store.set("num_to_collect", 3)
            ctx.send_event(OneTestEvent(test_param="test1"))
            ctx.send_event(OneTestEvent(test_param="test2"))
            ctx.send_event(OneTestEvent(test_param="test3"))

            # send one extra event
            ctx.send_event(AnotherTestEvent(another_test_param="test4"))

            return LastEvent()

        @step(num_workers=3)
        async def test_step(self, ctx: Context, ev: OneTestEvent) -> AnotherTestEvent:
            await await_count(ctx, 3)  # wait for all 3 to be waiting

            return AnotherTestEvent(another_test_param=ev.test_param)

        @step
        async def final_step(self, ctx: Context, ev: Union[AnotherTestEvent, LastEvent]) -> StopEvent:
            n = await ctx.store.get("num_to_collect")
            events = ctx.collect_events(ev, [AnotherTestEvent] * n)
            if events is None:
                return None  # type: ignore
            return StopEvent(result=[ev.another_test_param for ev in events])

    workflow = NumWorkersWorkflow(timeout=1)
    r = await WorkflowTestRunner(workflow).run()

    assert "test4" in set(r.result)
    assert len({"test1", "test2", "test3"} - set(r.result)) == 1

    # Ensure ctx is serializable
    ctx = r.ctx
    assert ctx
    ctx.to_dict()


@runs
async def test_workflow_step_send_event() -> None:
    class StepSendEventWorkflow(Workflow):
        @step
        async def step1(self, ctx: Context, ev: StartEvent) -> OneTestEvent:
            ctx.send_event(OneTestEvent(), step="step2")
            return None  # type: ignore

        @step
        async def step2(self, ev: OneTestEvent) -> StopEvent:
            return StopEvent(result="step2")

        @step
        async def step3(self, ev: OneTestEvent) -> StopEvent:
            return StopEvent(result="step3")

    workflow = StepSendEventWorkflow()
    r = await WorkflowTestRunner(workflow).run()
    # rayflow: upstream also finds the tick in the run's replay (internal); the result proves the routing.
    assert r.result == "step2"


@runs
async def test_workflow_step_send_event_to_None() -> None:
    class StepSendEventToNoneWorkflow(Workflow):
        @step
        async def step1(self, ctx: Context, ev: StartEvent) -> OneTestEvent:
            ctx.send_event(OneTestEvent(), step=None)
            return  # type:ignore

        @step
        async def step2(self, ev: OneTestEvent) -> StopEvent:
            return StopEvent(result="step2")

    workflow = StepSendEventToNoneWorkflow(verbose=True)
    result = await WorkflowTestRunner(workflow).run()
    # rayflow: upstream checks the tick replay (internal); the run reaching step2 is the public proof.
    assert result.result == "step2"


@runs
async def test_workflow_step_returning_bogus() -> None:
    class TestWorkflow(Workflow):
        @step
        async def step1(self, ctx: Context, ev: StartEvent) -> OneTestEvent:
            return "foo"  # type:ignore

        @step
        async def step2(self, ctx: Context, ev: StartEvent) -> OneTestEvent:
            return OneTestEvent()

        @step
        async def step3(self, ev: OneTestEvent) -> StopEvent:
            return StopEvent(result="step2")

    with pytest.raises(
        WorkflowRuntimeError,
        match="Step function step1 returned str instead of an Event instance.",
    ):
        await WorkflowTestRunner(TestWorkflow()).run()


@runs
async def test_workflow_multiple_runs() -> None:
    class DummyWorkflow(Workflow):
        @step
        async def step(self, ev: StartEvent) -> StopEvent:
            return StopEvent(result=ev.number * 2)

    runner = WorkflowTestRunner(DummyWorkflow())
    results = await asyncio.gather(
        runner.run(StartEvent(number=3)),  # type: ignore
        runner.run(StartEvent(number=42)),  # type: ignore
        runner.run(StartEvent(number=-99)),  # type: ignore
    )
    assert {r.result for r in results} == {6, 84, -198}


def test_add_step() -> None:
    class TestWorkflow(Workflow):
        @step
        def foo_step(self, ev: StartEvent) -> None:
            pass

    with pytest.raises(
        WorkflowValidationError,
        match="A step foo_step is already part of this workflow, please choose another name.",
    ):

        @step(workflow=TestWorkflow)
        def foo_step(ev: StartEvent) -> None:
            pass


def test_add_step_not_a_step() -> None:
    class TestWorkflow(Workflow):
        @step
        def a_ste(self, ev: StartEvent) -> None:
            pass

    def another_step(ev: StartEvent) -> None:
        pass

    with pytest.raises(
        WorkflowValidationError,
        match="Step function another_step is missing the `@step` decorator.",
    ):
        TestWorkflow.add_step(another_step)  # type: ignore


class FreeStepWorkflow(Workflow):
    @step
    async def start(self, ev: StartEvent) -> OneTestEvent:
        return OneTestEvent(test_param=ev.get("name", "free"))


@step(workflow=FreeStepWorkflow)
async def finish(ev: OneTestEvent) -> StopEvent:
    return StopEvent(result=f"finished by {ev.test_param}")


@runs
async def test_free_function_step_runs() -> None:
    # rayflow: public-API twin of test_decorate_free_function (upstream reads Workflow._step_functions).
    assert await FreeStepWorkflow().run(name="a free function") == "finished by a free function"


@runs
async def test_workflow_task_raises() -> None:
    class DummyWorkflow(Workflow):
        @step
        async def step(self, ev: StartEvent) -> StopEvent:
            raise ValueError("The step raised an error!")

    with pytest.raises(ValueError, match="The step raised an error!"):
        await WorkflowTestRunner(DummyWorkflow()).run()


@runs
async def test_workflow_disable_validation() -> None:
    # rayflow: upstream mocks _get_steps and calls _validate; the public effect of disable_validation
    # is that a graph the validation would refuse (an event produced, never consumed) still runs.
    class DummyWorkflow(Workflow):
        @step
        async def step(self, ev: StartEvent) -> Union[OneTestEvent, StopEvent]:
            return StopEvent(result="ran")

    with pytest.raises(WorkflowValidationError):
        DummyWorkflow().validate()
    assert await DummyWorkflow(disable_validation=True).run() == "ran"


@runs
async def test_workflow_continue_context() -> None:
    class DummyWorkflow(Workflow):
        @step
        async def step(self, ctx: Context, ev: StartEvent) -> StopEvent:
            cur_number = await ctx.store.get("number", default=0)
            await ctx.store.set("number", cur_number + 1)
            return StopEvent(result="Done")

    wf = DummyWorkflow()

    # first run
    r = await WorkflowTestRunner(wf).run()
    assert r.result == "Done"
    ctx = r.ctx
    assert ctx
    assert await ctx.store.get("number") == 1

    # second run -- independent from the first
    r = await WorkflowTestRunner(wf).run()
    assert r.result == "Done"
    ctx = r.ctx
    assert ctx
    assert await ctx.store.get("number") == 1

    # third run -- continue from the second run
    handler = wf.run(ctx=ctx)
    result = await handler
    assert handler.ctx
    assert result == "Done"
    assert await handler.ctx.store.get("number") == 2


@runs
async def test_workflow_pickle() -> None:
    class DummyWorkflow(Workflow):
        @step
        async def step(self, ctx: Context, ev: StartEvent) -> StopEvent:
            cur_step = await ctx.store.get("step", default=0)
            await ctx.store.set("step", cur_step + 1)
            await ctx.store.set("test_fn", test_fn)
            return StopEvent(result="Done")

    wf = DummyWorkflow(timeout=1)
    r = await WorkflowTestRunner(wf).run()
    ctx = r.ctx
    assert ctx

    # by default, we can't pickle the LLM/embedding object
    with pytest.raises(ValueError):
        state_dict = ctx.to_dict()

    # if we allow pickle, then we can pickle the LLM/embedding object
    state_dict = ctx.to_dict(serializer=PickleSerializer())
    new_ctx = Context.from_dict(wf, state_dict, serializer=PickleSerializer())
    assert await new_ctx.store.get("step") == 1
    # rayflow: upstream wraps new_ctx in WorkflowHandler(ctx=new_ctx), an internal constructor; the
    # checks below read new_ctx directly, which is what that handler's .ctx returns.

    # check that the step count is the same
    cur_step = await ctx.store.get("step")
    new_step = await new_ctx.store.get("step")
    assert new_step == cur_step
    await WorkflowTestRunner(wf).run(ctx=new_ctx)

    # check that the step count is incremented
    assert await new_ctx.store.get("step") == cur_step + 1


@runs
async def test_workflow_context_to_dict() -> None:
    # rayflow: the two asyncio.Events and the run counter of the test live in ctx.store.
    class StallableWorkflow(Workflow):
        @step
        async def step1(self, ctx: Context, ev: StartEvent) -> EventWithName:
            run_count = await ctx.store.get("run_count", default=0) + 1
            await ctx.store.set("run_count", run_count)
            if run_count > 1:
                raise ValueError("Start ran more than once")
            return EventWithName(name="test")

        @step
        async def step2(self, ctx: Context, ev: EventWithName) -> StopEvent:
            await ctx.store.set("signal_ready", True)
            await wait_for_key(ctx, "signal_continue")
            return StopEvent(result="Done")

    workflow = StallableWorkflow()
    handler = workflow.run()
    ctx = handler.ctx
    await wait_for_key(ctx, "signal_ready")
    # get the context dict
    data = ctx.to_dict()  # type:ignore

    await handler.cancel_run()

    new_ctx = Context.from_dict(workflow, data)
    handler2 = workflow.run(ctx=new_ctx)
    await new_ctx.store.set("signal_continue", True)
    await handler2


class HumanInTheLoopWorkflow(Workflow):
    @step
    async def step1(self, ctx: Context, ev: StartEvent) -> InputRequiredEvent:
        cur_runs = await ctx.store.get("step1_runs", default=0)
        await ctx.store.set("step1_runs", cur_runs + 1)
        return InputRequiredEvent(prefix="Enter a number: ")  # type:ignore

    @step
    async def step2(self, ctx: Context, ev: HumanResponseEvent) -> StopEvent:
        cur_runs = await ctx.store.get("step2_runs", default=0)
        await ctx.store.set("step2_runs", cur_runs + 1)
        return StopEvent(result=ev.response)


@runs
async def test_human_in_the_loop() -> None:
    # workflow should raise a timeout error because hitl only works with streaming
    with pytest.raises(WorkflowTimeoutError):
        await WorkflowTestRunner(HumanInTheLoopWorkflow(timeout=0.01)).run()

    # workflow should work with streaming
    workflow = HumanInTheLoopWorkflow()

    handler = workflow.run()
    assert handler.ctx
    async for event in handler.stream_events():
        if isinstance(event, InputRequiredEvent):
            assert event.prefix == "Enter a number: "
            handler.ctx.send_event(HumanResponseEvent(response="42"))  # type:ignore

    final_result = await handler
    assert final_result == "42"


@runs
async def test_human_in_the_loop_with_resume() -> None:
    # workflow should work with streaming
    workflow = HumanInTheLoopWorkflow()

    handler: WorkflowHandler = workflow.run()
    assert handler.ctx

    ctx_dict = None
    async for event in handler.stream_events():
        if isinstance(event, InputRequiredEvent):
            ctx_dict = handler.ctx.to_dict()
            await handler.cancel_run()
            await asyncio.sleep(0.01)
            break

    assert handler.exception()
    new_handler = workflow.run(ctx=Context.from_dict(workflow, ctx_dict))  # type:ignore
    new_handler.ctx.send_event(HumanResponseEvent(response="42"))  # type:ignore

    # rayflow: bounded, so that a lost event would cost 5 s here rather than the workflow's 45 s timeout
    final_result = await asyncio.wait_for(new_handler, timeout=5)
    assert final_result == "42"

    # ensure the workflow ran each step once
    step1_runs = await new_handler.ctx.store.get("step1_runs")  # type:ignore
    step2_runs = await new_handler.ctx.store.get("step2_runs")  # type:ignore
    assert step1_runs == 1
    assert step2_runs == 1


@runs
async def test_human_in_the_loop_resume_custom_start_event_inactive_ctx() -> None:
    class CustomHumanWorkflow(Workflow):
        @step
        async def ask(self, ctx: Context, ev: ResumeStartEvent) -> InputRequiredEvent:
            runs = await ctx.store.get("ask_runs", default=0)
            await ctx.store.set("ask_runs", runs + 1)
            return InputRequiredEvent(prefix=ev.topic)  # type: ignore[arg-type]

        @step
        async def complete(self, ctx: Context, ev: HumanResponseEvent) -> StopEvent:
            runs = await ctx.store.get("complete_runs", default=0)
            await ctx.store.set("complete_runs", runs + 1)
            return StopEvent(result=ev.response)

    workflow = CustomHumanWorkflow()
    handler: WorkflowHandler = workflow.run(topic="pizza")
    assert handler.ctx

    async for event in handler.stream_events():
        if isinstance(event, InputRequiredEvent):
            break

    await handler.cancel_run()
    ctx_dict = handler.ctx.to_dict()
    assert ctx_dict["is_running"]

    resumed_ctx = Context.from_dict(workflow, ctx_dict)
    resumed_handler = workflow.run(ctx=resumed_ctx)
    resumed_handler.ctx.send_event(HumanResponseEvent(response="42"))  # type: ignore[arg-type]

    events = []
    async for event in resumed_handler.stream_events():
        events.append(event)

    assert events == [StopEvent(result="42")]

    final_result = await resumed_handler
    assert final_result == "42"

    ask_runs = await resumed_handler.ctx.store.get("ask_runs")  # type: ignore[arg-type]
    complete_runs = await resumed_handler.ctx.store.get("complete_runs")  # type: ignore[arg-type]
    assert ask_runs == 1
    assert complete_runs == 1


@runs
async def test_workflow_cancelled_by_user() -> None:
    # rayflow: from the older tests/test_workflow.py, which drove the run with stepwise=True (gone in 2.x);
    # here a step waits on a key nobody sets, and the run is cancelled while it waits.
    class StuckWorkflow(Workflow):
        @step
        async def stuck(self, ctx: Context, ev: StartEvent) -> StopEvent:
            await ctx.store.set("started", True)
            await wait_for_key(ctx, "never_set", timeout=60)
            return StopEvent(result="unreachable")

    handler = StuckWorkflow().run()
    await wait_for_key(handler.ctx, "started")
    await handler.cancel_run()
    await asyncio.sleep(0.1)  # let workflow get cancelled
    assert handler.is_done()
    assert type(handler.exception()) is WorkflowCancelledByUser


class DummyWorkflowForConcurrentRunsTest(Workflow):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lock = asyncio.Lock()
        self.num_active_runs = 0
        self.num_active_runs_history: list[int] = []

    @step
    async def step_one(self, ev: StartEvent) -> StopEvent:
        run_num = ev.get("run_num")
        async with self._lock:
            self.num_active_runs += 1
            self.num_active_runs_history.append(self.num_active_runs)
        await asyncio.sleep(0.01)
        async with self._lock:
            self.num_active_runs -= 1
        return StopEvent(result=f"Run {run_num}: Done")

    async def get_active_runs(self) -> list[int]:
        return self.num_active_runs_history


@runs
@pytest.mark.xfail(
    reason="difference: self is copied into each step actor; the driver's instance sees no change", strict=True
)
@pytest.mark.parametrize(
    ("workflow_factory", "validate_max_concurrent_runs"),
    [
        (
            lambda: DummyWorkflowForConcurrentRunsTest(num_concurrent_runs=1),
            lambda actual_max_concurrent_runs: actual_max_concurrent_runs == 1,
        ),
        # This workflow is not protected, and so NumConcurrentRunsException is raised
        (
            lambda: DummyWorkflowForConcurrentRunsTest(),
            lambda actual_max_concurrent_runs: actual_max_concurrent_runs > 1,
        ),
    ],
)
async def test_workflow_run_num_concurrent(workflow_factory: Any, validate_max_concurrent_runs: Any) -> None:
    workflow = workflow_factory()
    results = await asyncio.gather(*[workflow.run(run_num=ix) for ix in range(1, 5)])
    max_concurrent_runs = max(workflow.num_active_runs_history)
    assert validate_max_concurrent_runs(max_concurrent_runs)
    assert results == [f"Run {ix}: Done" for ix in range(1, 5)]


class TimedConcurrentRunsWorkflow(DummyWorkflowForConcurrentRunsTest):
    """rayflow: DummyWorkflowForConcurrentRunsTest (its custom ``__init__`` and lock included), observed
    through the stream instead of ``self``: each run streams when its step started and ended."""

    @step
    async def step_one(self, ctx: Context, ev: StartEvent) -> StopEvent:
        run_num = ev.get("run_num")
        started = time.time()
        async with self._lock:
            self.num_active_runs += 1
        await asyncio.sleep(0.01)
        async with self._lock:
            self.num_active_runs -= 1
        ctx.write_event_to_stream(Event(started=started, ended=time.time()))
        return StopEvent(result=f"Run {run_num}: Done")


async def _max_overlap(workflow: Workflow, n: int) -> tuple[int, list[Any]]:
    handlers = [workflow.run(run_num=ix) for ix in range(1, n + 1)]
    spans = []
    for handler in handlers:
        async for ev in handler.stream_events():
            if not isinstance(ev, StopEvent):
                spans.append((ev.started, ev.ended))
    results = await asyncio.gather(*handlers)
    overlap = max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)
    return overlap, results


@runs
async def test_workflow_run_num_concurrent_limited() -> None:
    # rayflow: num_concurrent_runs=1 holds each run until the previous one ended.
    overlap, results = await _max_overlap(TimedConcurrentRunsWorkflow(num_concurrent_runs=1), 4)
    assert overlap == 1
    assert results == [f"Run {ix}: Done" for ix in range(1, 5)]


@runs
@pytest.mark.xfail(
    reason="difference: N invocations at once need N actors; a pool grows to num_workers on demand and an actor "
    "takes ~0.5 s to start, so a first run cannot have them all within this test's 1 s",
    strict=True,
)
async def test_workflow_run_num_concurrent_unlimited() -> None:
    workflow = TimedConcurrentRunsWorkflow()
    await workflow.run(run_num=0)  # rayflow: start the actors first, so the runs below can overlap
    overlap, results = await _max_overlap(workflow, 4)
    assert overlap > 1
    assert results == [f"Run {ix}: Done" for ix in range(1, 5)]


@runs
async def test_custom_stop_event() -> None:
    class CustomEventsWorkflow(Workflow):
        @step
        async def start_step(self, ev: MyStart) -> OneTestEvent:
            return OneTestEvent()

        @step
        async def middle_step(self, ev: OneTestEvent) -> LastEvent:
            return LastEvent()

        @step
        async def end_step(self, ev: LastEvent) -> MyStop:
            return MyStop(outcome="Workflow completed")

    wf = CustomEventsWorkflow()
    assert wf._start_event_class == MyStart
    assert wf.start_event_class == wf._start_event_class
    assert wf._stop_event_class == MyStop
    assert wf.stop_event_class == wf._stop_event_class
    result: MyStop = await wf.run(query="foo")
    assert result.outcome == "Workflow completed"

    # Ensure the event types can be inferred when not passed to the init
    wf = CustomEventsWorkflow()
    assert wf._start_event_class == MyStart
    assert wf._stop_event_class == MyStop
    result = await wf.run(query="foo")
    assert result.outcome == "Workflow completed"

    # ensure that streaming exits
    r = await WorkflowTestRunner(wf).run(MyStart(query="foo"))
    assert len(r.collected) > 0


class CustomEventsWorkflow(Workflow):
    @step
    async def start_step(self, ev: MyStart) -> OneTestEvent:
        return OneTestEvent()

    @step
    async def middle_step(self, ev: OneTestEvent) -> LastEvent:
        return LastEvent()

    @step
    async def end_step(self, ev: LastEvent) -> MyStop:
        return MyStop(outcome="Workflow completed")


@runs
async def test_custom_stop_event_without_class_properties() -> None:
    # rayflow: test_custom_stop_event without its start_event_class/stop_event_class lines, so the
    # custom start and stop events are checked although those properties are missing.
    wf = CustomEventsWorkflow()
    assert wf._start_event_class == MyStart
    assert wf._stop_event_class == MyStop
    result: MyStop = await wf.run(query="foo")
    assert result.outcome == "Workflow completed"

    # ensure that streaming exits
    r = await WorkflowTestRunner(wf).run(MyStart(query="foo"))
    assert len(r.collected) > 0


@runs
async def test_workflow_stream_events_exits() -> None:
    wf = CustomEventsWorkflow()
    await wf.run(query="warm")  # rayflow: start the actors first; the 1 s bound is for the stream's exit
    handler = wf.run(query="foo")

    async def _stream_events() -> Any:
        async for _ in handler.stream_events():
            continue

        return await handler

    stream_task = asyncio.create_task(_stream_events())

    result = await asyncio.wait_for(
        stream_task,
        timeout=1,
    )
    assert result.outcome == "Workflow completed"


class RandomEvent(Event):
    pass


class InvalidStopWorkflow(Workflow):
    @step
    async def a_step(self, ev: MyStart) -> RandomEvent:
        return RandomEvent()


class InvalidStartWorkflow(Workflow):
    @step
    async def a_step(self, ev: RandomEvent) -> StopEvent:
        return StopEvent()


def test_wrong_event_types() -> None:
    with pytest.raises(
        WorkflowConfigurationError,
        match="At least one Event of type StopEvent must be returned by any step.",
    ):
        InvalidStopWorkflow()

    with pytest.raises(
        WorkflowConfigurationError,
        match="At least one Event of type StartEvent must be received by any step.",
    ):
        InvalidStartWorkflow()


class CustomEvent(StartEvent):
    field: str


class CustomStartWorkflow(Workflow):
    @step
    async def echo(self, ev: CustomEvent) -> StopEvent:
        return StopEvent(result=ev)


# rayflow: test__get_start_event_instance calls the internal _get_start_event_instance; its three
# checks are made through run() here, one test each.


@runs
async def test__get_start_event_instance_kwargs_with_start_event(caplog: Any) -> None:
    e = CustomEvent(field="test")
    # Invoke run() passing a legit start event but with additional kwargs
    with caplog.at_level(logging.WARN):
        assert await CustomStartWorkflow().run(start_event=e, this_will_be_ignored=True) == e
        assert (
            "Keyword arguments are not supported when 'run()' is invoked with the 'start_event' parameter."
            in caplog.text
        )


@runs
async def test__get_start_event_instance_kwargs() -> None:
    # Old style kwargs passed to the designed StartEvent
    assert type(await CustomStartWorkflow().run(field="test")) is CustomEvent


async def test__get_start_event_instance_wrong_kwargs() -> None:
    # Old style but wrong kwargs passed to the designed StartEvent
    err = "Failed creating a start event of type 'CustomEvent' with the keyword arguments: {'wrong_field': 'test'}"
    with pytest.raises(WorkflowRuntimeError, match=err):
        await CustomStartWorkflow().run(wrong_field="test")


def test__ensure_start_event_class_multiple_types() -> None:
    class DummyWorkflow(Workflow):
        @step
        def one(self, ev: MyStart) -> None:
            pass

        @step
        def two(self, ev: StartEvent) -> StopEvent:
            return StopEvent()

    with pytest.raises(
        WorkflowConfigurationError,
        match="Only one type of StartEvent is allowed per workflow, found 2",
    ):
        DummyWorkflow()


def test__ensure_stop_event_class_multiple_types() -> None:
    class DummyWorkflow(Workflow):
        @step
        def one(self, ev: MyStart) -> MyStop:
            return MyStop(outcome="nope")

        @step
        def two(self, ev: MyStart) -> StopEvent:
            return StopEvent()

    with pytest.raises(
        WorkflowConfigurationError,
        match="Only one type of StopEvent is allowed per workflow, found 2",
    ):
        DummyWorkflow()


async def test_workflow_validation_steps_cannot_accept_stop_event() -> None:
    # Test single step that incorrectly accepts StopEvent
    class InvalidWorkflowSingleStep(Workflow):
        @step
        async def start_step(self, ev: StartEvent) -> StopEvent:
            return StopEvent()

        @step
        async def bad_step(self, ev: StopEvent) -> StopEvent:
            return StopEvent()

    with pytest.raises(
        WorkflowValidationError,
        match="Step 'bad_step' cannot accept StopEvent. StopEvent signals the end of the workflow. "
        "Use a different Event type instead.",
    ):
        await WorkflowTestRunner(InvalidWorkflowSingleStep()).run()


def test_get_workflow_events() -> None:
    class DummyWorkflow(Workflow):
        @step
        def one(self, ev: MyStart) -> MyStop:
            return MyStop(outcome="nope")

    events = DummyWorkflow().events
    assert len(events) == 2
    event_names = [e.__name__ for e in events]
    assert "MyStop" in event_names
    assert "MyStart" in event_names


@runs
async def test_workflow_instances_garbage_collected_after_completion() -> None:
    # test for memory leaks
    class TinyWorkflow(Workflow):
        @step
        async def only(self, ev: StartEvent) -> StopEvent:
            return StopEvent(result="done")

    refs: list[weakref.ReferenceType[Workflow]] = []

    for _ in range(3):  # rayflow: 3 instead of 10, each new workflow starts its actors (about 2 s here)
        wf = TinyWorkflow()
        wf_ref: weakref.ReferenceType[Workflow] = cast(weakref.ReferenceType[Workflow], weakref.ref(wf))
        refs.append(wf_ref)
        await WorkflowTestRunner(wf).run()
        # Drop strong reference before next iteration
        del wf

    # Force GC to clear weakly-referenced registry entries
    for _ in range(3):
        gc.collect()
        await asyncio.sleep(0)

    # All weakrefs should be cleared
    assert all(r() is None for r in refs)


# rayflow: the tests below replace wf._get_steps and call wf._validate(); the same workflows are built
# here from steps that lack the StartEvent or the StopEvent, and constructed. (Upstream's
# test_workflow_error_no_steps_configured_message is left out: a workflow without steps fails the
# StartEvent check first, so its message cannot be reached through the public API.)


def test_missing_start_event_error_includes_class_name() -> None:
    class Dummy(Workflow):
        @step
        def bad(self, ev: Event) -> StopEvent:
            return StopEvent()

    with pytest.raises(WorkflowConfigurationError, match=r"Workflow 'Dummy' has no @step that accepts StartEvent"):
        Dummy()


def test_missing_stop_event_error_includes_class_name() -> None:
    class Dummy(Workflow):
        @step
        def bad(self, ev: StartEvent) -> None:
            return None  # type: ignore[return-value]

    with pytest.raises(WorkflowConfigurationError, match=r"Workflow 'Dummy' has no @step that returns StopEvent"):
        Dummy()
