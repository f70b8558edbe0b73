"""A run that can never finish ends at once, as a timeout error that says what its steps still wait for."""

from __future__ import annotations

import pytest

from rayflow import Context, Event, StartEvent, StopEvent, Workflow, WorkflowFailedEvent, WorkflowRuntimeError, step

pytestmark = pytest.mark.usefixtures("ray_env")


class Idle(Workflow):
    @step
    async def start(self, ev: StartEvent) -> StopEvent | None:
        return None


async def test_a_run_that_can_never_end_fails_instead_of_hanging():
    async with Idle(timeout=None) as wf:
        with pytest.raises(WorkflowRuntimeError, match="no StopEvent was returned"):
            await wf.run()


class Part(Event):
    source: str


class ThreeParts(Workflow):
    @step(num_workers=3)
    async def search(self, ev: StartEvent) -> Part:
        return Part(source="one")

    @step
    async def merge(self, ctx: Context, ev: Part) -> StopEvent | None:
        parts = ctx.collect_events(ev, [Part] * 3)
        return None if parts is None else StopEvent(result=len(parts))


async def test_a_stuck_run_is_a_timeout_error_at_once_naming_what_its_collecting_step_waits_for():
    from rayflow.errors import WorkflowStuckError, WorkflowTimeoutError

    async with ThreeParts(timeout=60) as wf:
        handler = wf.run()
        streamed = [ev async for ev in handler.stream_events()]
        with pytest.raises(WorkflowTimeoutError) as caught:  # what code written for LlamaIndex catches
            await handler
    assert isinstance(caught.value, WorkflowStuckError)
    assert "step 'merge' waits in collect_events for 2 more Part (has 1 of 3)" in str(caught.value)
    assert isinstance(streamed[-1], WorkflowFailedEvent) and streamed[-1].exception is not None
