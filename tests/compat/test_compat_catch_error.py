# Ported from LlamaIndex Workflows (run-llama/workflows-py), MIT License, Copyright (c) 2026 LlamaIndex Inc.
"""Port of ``packages/llama-index-workflows/tests/test_catch_error.py``: ``@catch_error`` validation,
recovery routing, ``StepFailedEvent`` fields, ``for_steps`` scoping and the ``max_recoveries`` budget.

Changes beyond the imports, each marked ``# rayflow:`` where it happens:
- ``_retry(n)`` builds ``retry_policy(retry=retry_always(), wait=wait_fixed(0), stop=stop_after_attempt(n))``
  upstream; here it is ``ConstantDelayRetryPolicy(maximum_attempts=n, delay=0)``, the same policy through
  the API both libraries share (LlamaIndex 2.26.1 builds that class from exactly those three parts).
- Steps run in Ray actors: what upstream records in a list or dict of the test (calls, captured events,
  "handler invoked") is recorded in ``ctx.store`` or returned as the result.
- Left out: ``ctx.retry_info()`` (not in rayflow) and the broker-state serialization round trips (internal).
"""

from datetime import datetime
from typing import Any

import pytest

from rayflow import (
    Context,
    Workflow,
    catch_error,
    step,
)
from rayflow.errors import WorkflowTimeoutError, WorkflowValidationError
from rayflow.events import (
    Event,
    StartEvent,
    StepFailedEvent,
    StopEvent,
    WorkflowFailedEvent,
)
from rayflow.retry_policy import ConstantDelayRetryPolicy

runs = pytest.mark.usefixtures("ray_env")


def _retry(attempts: int) -> Any:
    return ConstantDelayRetryPolicy(maximum_attempts=attempts, delay=0)


class _InputStart(StartEvent):
    query: str = "hello"


async def _record(ctx: Context, name: str) -> None:
    """rayflow: ``calls.append(name)`` of the upstream tests, kept in ctx.store."""
    await ctx.store.set("calls", [*await ctx.store.get("calls", default=[]), name])


def test_catch_error_wrong_event_type_invalid() -> None:
    with pytest.raises(WorkflowValidationError, match="must accept StepFailedEvent"):

        @catch_error
        async def bad_handler(self: Any, ctx: Context, ev: StartEvent) -> StopEvent:
            return StopEvent()


@runs
async def test_catch_error_returning_stop_completes_workflow() -> None:
    class Flow(Workflow):
        @step(retry_policy=_retry(1))
        async def flaky(self, ev: StartEvent) -> StopEvent:
            raise RuntimeError("transient")

        @catch_error
        async def handler(self, ctx: Context, ev: StepFailedEvent) -> StopEvent:
            return StopEvent(result={"recovered_from": ev.step_name})

    handler = Flow(timeout=5).run()
    events: list[Event] = []
    async for ev in handler.stream_events():
        events.append(ev)
    result = await handler
    assert result == {"recovered_from": "flaky"}
    assert not any(isinstance(ev, WorkflowFailedEvent) for ev in events)


@runs
async def test_catch_error_raising_fails_workflow() -> None:
    class Flow(Workflow):
        @step(retry_policy=_retry(1))
        async def flaky(self, ev: StartEvent) -> StopEvent:
            raise RuntimeError("primary")

        @catch_error
        async def handler(self, ctx: Context, ev: StepFailedEvent) -> StopEvent:
            raise ValueError("handler-failed")

    handler_run = Flow(timeout=5).run()
    events: list[Event] = []
    async for ev in handler_run.stream_events():
        events.append(ev)
    with pytest.raises(ValueError, match="handler-failed"):
        await handler_run
    failed_events = [ev for ev in events if isinstance(ev, WorkflowFailedEvent)]
    assert len(failed_events) == 1
    assert failed_events[0].step_name == "handler"
    assert str(failed_events[0].exception) == "handler-failed"


@runs
async def test_catch_error_not_invoked_on_recoverable_retry() -> None:
    class Flow(Workflow):
        attempts = 0

        @step(retry_policy=_retry(3))
        async def flaky(self, ev: StartEvent) -> StopEvent:
            self.attempts += 1
            if self.attempts < 2:
                raise ValueError("transient")
            return StopEvent(result="recovered")

        @catch_error
        async def handler(self, ctx: Context, ev: StepFailedEvent) -> StopEvent:
            await ctx.store.set("handler_invoked", True)  # rayflow: was handler_invoked.append(True)
            return StopEvent(result="caught")

    handler = Flow(timeout=5).run()
    result = await handler
    assert result == "recovered"
    assert await handler.ctx.store.get("handler_invoked", default=False) is False


@runs
async def test_step_failed_event_fields() -> None:
    class Flow(Workflow):
        @step(retry_policy=_retry(2))
        async def flaky(self, ev: _InputStart) -> StopEvent:
            raise RuntimeError(f"bad:{ev.query}")

        @catch_error
        async def handler(self, ctx: Context, ev: StepFailedEvent) -> StopEvent:
            return StopEvent(result=ev)  # rayflow: was captured["ev"] = ev

    ev = await Flow(timeout=5).run(start_event=_InputStart(query="hello"))
    assert ev.step_name == "flaky"
    assert isinstance(ev.input_event, _InputStart)
    assert ev.input_event.query == "hello"
    assert isinstance(ev.exception, RuntimeError)
    assert str(ev.exception) == "bad:hello"
    assert ev.attempts == 2
    assert ev.elapsed_seconds >= 0.0
    assert isinstance(ev.failed_at, datetime)
    assert ev.failed_at.tzinfo is not None


@runs
async def test_catch_error_not_invoked_on_timeout() -> None:
    import asyncio

    class Flow(Workflow):
        @step
        async def slow(self, ev: StartEvent) -> StopEvent:
            await asyncio.sleep(5)
            return StopEvent(result="unreachable")

        @catch_error
        async def handler(self, ctx: Context, ev: StepFailedEvent) -> StopEvent:
            await ctx.store.set("handler_invoked", True)  # rayflow: was handler_invoked.append(True)
            return StopEvent(result="caught")

    handler = Flow(timeout=0.1).run()
    with pytest.raises(WorkflowTimeoutError):
        await handler
    assert await handler.ctx.store.get("handler_invoked", default=False) is False


@runs
async def test_baseline_without_catch_error_still_fails() -> None:
    class Flow(Workflow):
        @step(retry_policy=_retry(1))
        async def flaky(self, ev: StartEvent) -> StopEvent:
            raise ValueError("boom")

    handler = Flow(timeout=5).run()
    events: list[Event] = []
    async for ev in handler.stream_events():
        events.append(ev)
    with pytest.raises(ValueError, match="boom"):
        await handler
    assert any(isinstance(ev, WorkflowFailedEvent) for ev in events)


@runs
async def test_catch_error_can_read_context_state() -> None:
    class Flow(Workflow):
        @step(retry_policy=_retry(1))
        async def flaky(self, ctx: Context, ev: StartEvent) -> StopEvent:
            await ctx.store.set("progress", "halfway")
            raise RuntimeError("boom")

        @catch_error
        async def handler(self, ctx: Context, ev: StepFailedEvent) -> StopEvent:
            progress = await ctx.store.get("progress", default="unset")
            return StopEvent(result={"progress": progress, "step": ev.step_name})

    result = await Flow(timeout=5).run()
    assert result == {"progress": "halfway", "step": "flaky"}


# ---------------------------------------------------------------------------
# Scoping: for_steps + wildcard interaction
# ---------------------------------------------------------------------------


class _BEvent(Event):
    pass


@runs
async def test_scoped_handler_catches_listed_step() -> None:
    class Flow(Workflow):
        @step(retry_policy=_retry(1))
        async def a(self, ev: StartEvent) -> _BEvent:
            raise RuntimeError("a failed")

        @step
        async def b(self, ev: _BEvent) -> StopEvent:
            return StopEvent(result="b-ran")

        @catch_error(for_steps=["a"])
        async def handle_a(self, ctx: Context, ev: StepFailedEvent) -> StopEvent:
            return StopEvent(result={"caught": ev.step_name})

    result = await Flow(timeout=5).run()
    assert result == {"caught": "a"}


@runs
async def test_scoped_handler_does_not_catch_other_step() -> None:
    class Flow(Workflow):
        @step(retry_policy=_retry(1))
        async def a(self, ev: StartEvent) -> _BEvent:
            return _BEvent()

        @step(retry_policy=_retry(1))
        async def b(self, ev: _BEvent) -> StopEvent:
            raise ValueError("b failed")

        @catch_error(for_steps=["a"])
        async def handle_a(self, ctx: Context, ev: StepFailedEvent) -> StopEvent:
            return StopEvent(result="caught")

    handler_run = Flow(timeout=5).run()
    with pytest.raises(ValueError, match="b failed"):
        await handler_run


class _AFailedMarker(Event):
    pass


class _BFailedMarker(Event):
    pass


@runs
async def test_multiple_scoped_handlers_each_own_step() -> None:
    class Flow(Workflow):
        @step(retry_policy=_retry(1))
        async def a(self, ev: StartEvent) -> _BEvent:
            raise RuntimeError("a")

        @step(retry_policy=_retry(1))
        async def b(self, ev: _BEvent) -> StopEvent:
            raise RuntimeError("b")

        @catch_error(for_steps=["a"])
        async def handle_a(self, ctx: Context, ev: StepFailedEvent) -> _AFailedMarker:
            return _AFailedMarker()

        @catch_error(for_steps=["b"])
        async def handle_b(self, ctx: Context, ev: StepFailedEvent) -> StopEvent:
            return StopEvent(result={"recovered": ev.step_name})

        @step
        async def finish_a(self, ev: _AFailedMarker) -> _BEvent:
            return _BEvent()

    result = await Flow(timeout=5).run()
    assert result == {"recovered": "b"}


@runs
async def test_scoped_and_wildcard_mix() -> None:
    class Flow(Workflow):
        @step(retry_policy=_retry(1))
        async def a(self, ev: StartEvent) -> _BEvent:
            raise RuntimeError("a-fail")

        @step(retry_policy=_retry(1))
        async def b(self, ev: _BEvent) -> StopEvent:
            raise RuntimeError("b-fail")

        @catch_error(for_steps=["a"])
        async def handle_a(self, ctx: Context, ev: StepFailedEvent) -> StopEvent:
            return StopEvent(result={"via": "scoped", "step": ev.step_name})

        @catch_error
        async def wildcard(self, ctx: Context, ev: StepFailedEvent) -> StopEvent:
            return StopEvent(result={"via": "wildcard", "step": ev.step_name})

    result = await Flow(timeout=5).run()
    assert result == {"via": "scoped", "step": "a"}


# ---------------------------------------------------------------------------
# max_recoveries budget
# ---------------------------------------------------------------------------


class _RetryEvent(Event):
    pass


@runs
async def test_max_recoveries_default_fails_on_second_entry() -> None:
    class Flow(Workflow):
        @step(retry_policy=_retry(1))
        async def a(self, ctx: Context, ev: StartEvent) -> StopEvent:
            await _record(ctx, "a")
            raise RuntimeError("a-fail")

        @catch_error(for_steps=["a"])
        async def handle_a(self, ctx: Context, ev: StepFailedEvent) -> _RetryEvent:
            await _record(ctx, "handle_a")
            return _RetryEvent()

        @step(retry_policy=_retry(1))
        async def retry_a(self, ctx: Context, ev: _RetryEvent) -> StopEvent:
            await _record(ctx, "retry_a")
            raise RuntimeError("retry_a-fail")

    handler = Flow(timeout=5).run()
    with pytest.raises(RuntimeError):
        await handler
    calls = await handler.ctx.store.get("calls")
    # a runs once, handle_a runs once (count=1, <= 1 allowed), retry_a runs
    # once and fails. On its failure, handle_a would be entered a 2nd time
    # (count would be 2, > 1) → workflow fails instead.
    assert calls.count("handle_a") == 1


@runs
async def test_max_recoveries_two_allows_second_entry() -> None:
    class Flow(Workflow):
        @step(retry_policy=_retry(1))
        async def a(self, ctx: Context, ev: StartEvent) -> StopEvent:
            await _record(ctx, "a")
            raise RuntimeError("a-fail")

        @catch_error(for_steps=["a", "retry_a"], max_recoveries=2)
        async def handle_a(self, ctx: Context, ev: StepFailedEvent) -> _RetryEvent:
            await _record(ctx, "handle_a")
            calls = await ctx.store.get("calls")
            if len([c for c in calls if c == "handle_a"]) >= 2:
                # stop re-trying on the 2nd invocation
                raise RuntimeError("giving up")
            return _RetryEvent()

        @step(retry_policy=_retry(1))
        async def retry_a(self, ctx: Context, ev: _RetryEvent) -> StopEvent:
            await _record(ctx, "retry_a")
            raise RuntimeError("retry_a-fail")

    handler = Flow(timeout=5).run()
    with pytest.raises(RuntimeError):
        await handler
    calls = await handler.ctx.store.get("calls")
    assert calls.count("handle_a") == 2


# ---------------------------------------------------------------------------
# Handler's own failure falls through
# ---------------------------------------------------------------------------


@runs
async def test_handler_own_failure_falls_through() -> None:
    events: list[Event] = []

    class Flow(Workflow):
        @step(retry_policy=_retry(1))
        async def a(self, ev: StartEvent) -> StopEvent:
            raise RuntimeError("a-fail")

        @catch_error
        async def handler(self, ctx: Context, ev: StepFailedEvent) -> StopEvent:
            raise ValueError("handler-fail")

    handler_run = Flow(timeout=5).run()
    async for ev in handler_run.stream_events():
        events.append(ev)
    with pytest.raises(ValueError, match="handler-fail"):
        await handler_run
    failed = [ev for ev in events if isinstance(ev, WorkflowFailedEvent)]
    assert len(failed) == 1
    assert failed[0].step_name == "handler"
