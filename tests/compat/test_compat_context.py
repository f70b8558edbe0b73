# Ported from LlamaIndex Workflows (run-llama/workflows-py), MIT License, Copyright (c) 2026 LlamaIndex Inc.
# ruff: noqa: RUF043 - upstream's match= strings, kept verbatim
"""Port of ``packages/llama-index-workflows/tests/context/test_context.py``: ``collect_events``,
``send_event(step=...)`` checks, ``ctx.store`` get/set/clear before, during and after runs, snapshots.

Changes beyond the imports, each marked ``# rayflow:`` where it happens:
- Upstream's ``internal_ctx`` and ``ctx`` fixtures build contexts on internal brokers; these tests use
  the public equivalents (``Context(workflow)`` before a run, ``handler.ctx`` during one).
- Checks of the snapshot's internal layout (workers, waiters, JSON-encoded state) read ``ctx.store``.
- Left out: ``wait_for_event`` waiters (see tests/runtime/test_waits.py), ``get_step_context``,
  ``running_steps``, the deprecated ``get_result``/``stream_events`` on Context, warning caches, the state
  codec internals, and
  ``test_to_dict_before_run_raises`` (newer than LlamaIndex 2.26.1, which returns a snapshot there).
"""

import pytest
from pydantic import BaseModel
from upstream_fixtures import AnotherTestEvent, LastEvent, OneTestEvent

from rayflow.context import Context
from rayflow.decorators import step
from rayflow.errors import ContextSerdeError, ContextStateError, WorkflowRuntimeError
from rayflow.events import Event, HumanResponseEvent, InputRequiredEvent, StartEvent, StopEvent
from rayflow.testing import WorkflowTestRunner
from rayflow.workflow import Workflow

runs = pytest.mark.usefixtures("ray_env")


@runs
async def test_collect_events() -> None:
    ev1 = OneTestEvent()
    ev2 = AnotherTestEvent()

    class TestWorkflow(Workflow):
        @step
        async def step1(self, _: StartEvent) -> OneTestEvent:
            return ev1

        @step
        async def step2(self, _: StartEvent) -> AnotherTestEvent:
            return ev2

        @step
        async def step3(self, ctx: Context, ev: OneTestEvent | AnotherTestEvent) -> StopEvent | None:
            events = ctx.collect_events(ev, [OneTestEvent, AnotherTestEvent])
            if events is None:
                return None
            return StopEvent(result=events)

    r = await WorkflowTestRunner(TestWorkflow()).run()
    assert r.result == [ev1, ev2]


@runs
async def test_collect_events_empty_expected_list() -> None:
    """
    Test that collect_events returns an empty list (not None) when the
    expected list is empty. This edge case should immediately return []
    since there are no events to collect.
    """

    class TestWorkflow(Workflow):
        @step
        async def start_step(self, ctx: Context, ev: StartEvent) -> StopEvent:
            # Pass an empty list of expected events
            events = ctx.collect_events(ev, [])
            # Should return an empty list, not None
            return StopEvent(result=events)

    r = await WorkflowTestRunner(TestWorkflow()).run()
    assert r.result == []


@runs
async def test_collect_events_with_extra_event_type() -> None:
    """
    Test that collect_events properly handles when an event of a different type
    arrives first, before the expected events.

    This validates that when collect_events is called with an event that's NOT
    in the expected types list, it returns None and waits for matching events.
    """

    class TestWorkflow(Workflow):
        @step
        async def start_step(self, ctx: Context, ev: StartEvent) -> OneTestEvent | AnotherTestEvent | LastEvent:
            await ctx.store.set("num_to_collect", 2)
            await ctx.store.set("calls", 0)
            # Send a LastEvent first (not in the expected collection types)
            ctx.send_event(LastEvent())
            # Then send the events we want to collect
            ctx.send_event(OneTestEvent(test_param="first"))
            ctx.send_event(AnotherTestEvent(another_test_param="second"))
            return None  # type: ignore

        @step
        async def collector(self, ctx: Context, ev: OneTestEvent | AnotherTestEvent | LastEvent) -> StopEvent | None:
            # Track how many times this step is called
            calls = await ctx.store.get("calls")
            await ctx.store.set("calls", calls + 1)

            # Try to collect OneTestEvent and AnotherTestEvent
            # LastEvent is NOT in this list
            events = ctx.collect_events(ev, [OneTestEvent, AnotherTestEvent])
            if events is None:
                # This happens when we receive LastEvent or haven't received all events yet
                return None

            # Verify we got the right events
            assert len(events) == 2
            assert isinstance(events[0], OneTestEvent)
            assert isinstance(events[1], AnotherTestEvent)
            assert events[0].test_param == "first"
            assert events[1].another_test_param == "second"

            return StopEvent(result="collected")

    r = await WorkflowTestRunner(TestWorkflow()).run()
    assert r.result == "collected"

    # Verify the collector was called multiple times (once for each event)
    ctx = r.ctx
    assert ctx is not None
    # rayflow: upstream decodes the snapshot's JSON layout (ctx.to_dict()["state"]["state_data"]...);
    # the store gives the same number.
    calls = await ctx.store.get("calls")
    # Should be called at least 3 times: once for LastEvent (returns None),
    # once for OneTestEvent (returns None), once for AnotherTestEvent (returns result)
    assert calls >= 3


# rayflow: upstream's internal_ctx fixture is a context on an internal broker; Context(workflow) is the
# public context whose store works before a run.


@runs
async def test_get_default(workflow: Workflow) -> None:
    assert await Context(workflow).store.get("test_key", default=42) == 42


@runs
async def test_get(workflow: Workflow) -> None:
    ctx = Context(workflow)
    await ctx.store.set("foo", 42)
    assert await ctx.store.get("foo") == 42


@runs
async def test_get_not_found(workflow: Workflow) -> None:
    with pytest.raises(ValueError):
        await Context(workflow).store.get("foo")


# rayflow: upstream's ctx fixture is the running context of an internal broker; handler.ctx of a run
# is the public one.


@runs
async def test_send_event_to_non_existent_step(workflow: Workflow) -> None:
    handler = workflow.run()
    with pytest.raises(WorkflowRuntimeError, match="Step does_not_exist does not exist"):
        handler.ctx.send_event(Event(), "does_not_exist")
    await handler


@runs
async def test_send_event_to_wrong_step(workflow: Workflow) -> None:
    handler = workflow.run()
    with pytest.raises(
        WorkflowRuntimeError,
        # rayflow: upstream spells the class <class 'workflows.events.Event'>; the package name differs.
        match=r"Step middle_step does not accept event of type <class '\w+\.events\.Event'>",
    ):
        handler.ctx.send_event(Event(), "middle_step")
    await handler


def test_context_from_dict_rejects_future_version_as_context_serde_error(
    workflow: Workflow,
) -> None:
    payload = {
        "version": 10**6,  # rayflow: upstream uses CURRENT_SERIALIZED_VERSION + 1 (an internal constant)
        "state": {},
        "is_running": False,
        "workers": {},
    }

    with pytest.raises(ContextSerdeError, match="newer version"):
        Context.from_dict(workflow, payload)


class TwoStepHITLWorkflow(Workflow):
    """The documented two-step HITL shape: emit InputRequiredEvent, consume HumanResponseEvent."""

    @step
    async def ask(self, ctx: Context, ev: StartEvent) -> InputRequiredEvent:
        return InputRequiredEvent()

    @step
    async def answer(self, ctx: Context, ev: HumanResponseEvent) -> StopEvent:
        return StopEvent(result=ev.response)


@runs
async def test_to_dict_after_stream_events_break() -> None:
    """Regression for #668: to_dict() must not hang when called after breaking
    out of the stream_events() loop instead of inside it."""
    workflow = TwoStepHITLWorkflow()
    handler = workflow.run()

    async for ev in handler.stream_events():
        if isinstance(ev, InputRequiredEvent):
            break

    ctx_dict = handler.ctx.to_dict()
    assert ctx_dict["is_running"] is True
    # rayflow: upstream also checks ctx_dict["workers"], a LlamaIndex-internal part of the snapshot.
    await handler.cancel_run()


@runs
async def test_clear(workflow: Workflow) -> None:
    ctx = Context(workflow)  # rayflow: upstream's internal_ctx fixture
    await ctx.store.set("test_key", 42)
    await ctx.store.clear()
    res = await ctx.store.get("test_key", default=None)
    assert res is None


class ParentClearState(BaseModel):
    a: int = 0


class ChildClearState(ParentClearState):
    b: int = 0


class ParentClearStateWorkflow(Workflow):
    @step
    async def only(self, ctx: Context[ParentClearState], ev: StartEvent) -> StopEvent:
        return StopEvent()


@runs
async def test_clear_resets_subclass_fields() -> None:
    """Clear is a reset to the current state's type, not a merge."""
    # rayflow: upstream uses InMemoryStateStore(ParentClearState()); the public store of a workflow
    # whose state is ParentClearState is the same thing.
    store = Context(ParentClearStateWorkflow()).store
    await store.set_state(ChildClearState(a=1, b=7))

    await store.clear()

    state = await store.get_state()
    assert isinstance(state, ChildClearState)
    assert state.a == 0
    assert state.b == 0


@runs
async def test_store_access_outside_step_works() -> None:
    """Accessing ctx.store from handler code (outside step) should work."""

    class SimpleWorkflow(Workflow):
        @step
        async def only(self, ev: StartEvent) -> StopEvent:
            return StopEvent(result="done")

    wf = SimpleWorkflow()
    handler = wf.run()

    # Access store from external context (handler code) should work
    store = handler.ctx.store
    # rayflow: upstream also checks isinstance(store, InMemoryStateStore), an internal class.

    # Verify reads and writes work
    await store.set("key", "value")
    assert await store.get("key") == "value"

    await handler


@runs
async def test_store_access_before_run_works() -> None:
    """Accessing ctx.store before workflow.run() should return a staging store."""

    class SimpleWorkflow(Workflow):
        @step
        async def only(self, ev: StartEvent) -> StopEvent:
            return StopEvent(result="done")

    wf = SimpleWorkflow()
    ctx = Context(wf)

    store = ctx.store
    # rayflow: upstream also checks isinstance(store, InMemoryStateStore), an internal class.
    await store.set("key", "value")
    assert await store.get("key") == "value"


@runs
async def test_store_seed_before_run_visible_in_step() -> None:
    """State seeded via ctx.store before run should be visible inside steps."""

    class SeededWorkflow(Workflow):
        @step
        async def read_seed(self, ctx: Context, ev: StartEvent) -> StopEvent:
            val = await ctx.store.get("seeded_key")
            return StopEvent(result=val)

    wf = SeededWorkflow()
    ctx = Context(wf)
    await ctx.store.set("seeded_key", "hello")

    result = await wf.run(ctx=ctx)
    assert result == "hello"


@runs
async def test_store_seed_on_deserialized_context() -> None:
    """Seeding state on a deserialized context should merge with existing state."""

    class StatefulWorkflow(Workflow):
        @step
        async def first_step(self, ctx: Context, ev: StartEvent) -> StopEvent:
            # Just pass through; state is set externally
            return StopEvent(result="done")

    class ReadWorkflow(Workflow):
        @step
        async def check(self, ctx: Context, ev: StartEvent) -> StopEvent:
            old = await ctx.store.get("existing")
            new = await ctx.store.get("added")
            return StopEvent(result=f"{old}-{new}")

    wf = StatefulWorkflow()

    # First run to create some state
    ctx = Context(wf)
    await ctx.store.set("existing", "orig")
    handler = wf.run(ctx=ctx)
    await handler

    # Serialize and restore (use ReadWorkflow for second run)
    ctx_dict = ctx.to_dict()
    read_wf = ReadWorkflow()
    restored_ctx = Context.from_dict(read_wf, ctx_dict)

    # Seed additional state before next run
    await restored_ctx.store.set("added", "new")

    result = await read_wf.run(ctx=restored_ctx)
    assert result == "orig-new"


@runs
async def test_store_continuation_with_pre_run_seeding() -> None:
    """Continuation runs with pre-run seeding should carry state through."""

    class CountWorkflow(Workflow):
        @step
        async def increment(self, ctx: Context, ev: StartEvent) -> StopEvent:
            count = await ctx.store.get("count", default=0)
            count += 1
            await ctx.store.set("count", count)
            return StopEvent(result=count)

    wf = CountWorkflow()
    ctx = Context(wf)

    # Seed initial count
    await ctx.store.set("count", 10)

    # First run: 10 + 1 = 11
    result = await wf.run(ctx=ctx)
    assert result == 11

    # Second run (continuation): 11 + 1 = 12
    result = await wf.run(ctx=ctx)
    assert result == 12


async def test_send_event_before_start_raises(workflow: Workflow) -> None:
    """Sending event before run() should raise ContextStateError."""
    ctx = Context(workflow)
    with pytest.raises(ContextStateError, match="send_event.*called before workflow started"):
        ctx.send_event(Event())


# The 1.x calls the tutorial uses: ``await ctx.set(key, value)`` and ``await ctx.get(key, default=...)``,
# from the 1.x ``tests/test_context.py`` of workflows-py. LlamaIndex 2.26 removed them, so these run on
# rayflow only; DESIGN.md asks for a DeprecationWarning pointing to ctx.store, checked with pytest.warns.


@runs
@pytest.mark.rayflow_only
async def test_legacy_get_default(workflow: Workflow) -> None:
    c1 = Context(workflow)
    with pytest.warns(DeprecationWarning, match=r"ctx\.store"):
        assert await c1.get(key="test_key", default=42) == 42


@runs
@pytest.mark.rayflow_only
async def test_legacy_data(workflow: Workflow) -> None:
    c1 = Context(workflow)
    with pytest.warns(DeprecationWarning, match=r"ctx\.store"):
        await c1.set(key="test_key", value=42)
    with pytest.warns(DeprecationWarning, match=r"ctx\.store"):
        assert await c1.get("test_key") == 42


@runs
@pytest.mark.rayflow_only
async def test_legacy_get_not_found(workflow: Workflow) -> None:
    with pytest.raises(ValueError), pytest.warns(DeprecationWarning):
        await Context(workflow).get("foo")


@runs
@pytest.mark.rayflow_only
async def test_legacy_workflow_continue_context() -> None:
    # The 1.x test_workflow_continue_context of tests/test_workflow.py, with ctx.get/ctx.set in a step.
    class DummyWorkflow(Workflow):
        @step
        async def step(self, ctx: Context, ev: StartEvent) -> StopEvent:
            cur_number = await ctx.get("number", default=0)
            await ctx.set("number", cur_number + 1)
            return StopEvent(result="Done")

    wf = DummyWorkflow()

    # first run
    r = wf.run()
    result = await r
    assert r.ctx
    assert result == "Done"
    with pytest.warns(DeprecationWarning):
        assert await r.ctx.get("number") == 1

    # second run -- independent from the first
    r = wf.run()
    result = await r
    assert r.ctx
    assert result == "Done"
    with pytest.warns(DeprecationWarning):
        assert await r.ctx.get("number") == 1

    # third run -- continue from the second run
    r = wf.run(ctx=r.ctx)
    result = await r
    assert r.ctx
    assert result == "Done"
    with pytest.warns(DeprecationWarning):
        assert await r.ctx.get("number") == 2
