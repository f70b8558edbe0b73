"""The dispatcher actor through its client (``rayflow.runtime.dispatcher``), driven as the session drives it: runs
started on it end with their ``EndRun`` on their stream; it routes by the routes alone and never opens the workflow it
hands to its step actors; ``close()`` leaves no actor; a cancelled run ends CANCELLED and frees its step actor."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from rayflow import Context, Event, StartEvent, StopEvent, Workflow, step
from rayflow.core.commands import EndRun, Outcome
from rayflow.core.envelope import Envelope, Kind
from rayflow.core.stats import RunStats, StepsDone, StepStarted
from rayflow.runtime.blob import workflow_blob
from rayflow.runtime.context_actor import ContextActor
from rayflow.runtime.dispatcher import Dispatcher
from rayflow.spec import WorkflowSpec
from tests.conftest import live_rayflow_actors

pytestmark = pytest.mark.usefixtures("ray_env")


class Progress(Event):
    n: int


class Middle(Event):
    n: int


class Steps(Workflow):
    @step(num_workers=1)  # one actor: a run cancelled while it runs must free it for the next run
    async def start(self, ctx: Context, ev: StartEvent) -> Middle:
        ctx.write_event_to_stream(Progress(n=ev.n))
        if ev.get("hang"):
            await asyncio.sleep(600)  # only a cancel ends this
        return Middle(n=ev.n + 1)

    @step
    async def finish(self, ev: Middle) -> StopEvent:
        return StopEvent(result=ev.n * 10)


SPEC = WorkflowSpec.of(Steps)


@asynccontextmanager
async def _dispatcher(blob: bytes) -> AsyncIterator[tuple[Dispatcher, ContextActor]]:
    """A started dispatcher of ``Steps``'s routes handing ``blob`` to its step actors, and its context actor."""
    dispatcher = Dispatcher.create(blob, list(SPEC.routes), f"rayflow.test-dispatcher.{uuid.uuid4().hex[:8]}", False)
    try:
        context = await asyncio.to_thread(dispatcher.ready_sync)
        yield dispatcher, context
    finally:
        await dispatcher.close()


async def _start(dispatcher: Dispatcher, run_id: str, event: StartEvent) -> None:
    await dispatcher.start_run(run_id, f"ctx-{run_id}", SPEC.codec.encode(event), None)


async def _stream(dispatcher: Dispatcher, run_id: str, until_end: bool = True) -> tuple[list[Any], EndRun | None]:
    """A run's stream items as the driver reads them: the decoded events of the envelopes, and the ``EndRun`` that
    came last (None with ``until_end=False``: only the first batch is read); records of step invocations and the
    run's book are left out."""
    events: list[Any] = []
    while True:
        items = await asyncio.wait_for(dispatcher.next_items(run_id), timeout=60)
        assert items, "next_items answers only with items"
        items = [item for item in items if not isinstance(item, RunStats | StepsDone | StepStarted)]  # observations
        if not items:
            continue
        end = items.pop() if isinstance(items[-1], EndRun) else None
        assert not [item for item in items if isinstance(item, EndRun)], "the EndRun comes last"
        events.extend(SPEC.codec.loads(item.payload) for item in items)
        if end is not None or not until_end:
            return events, end


async def test_runs_end_with_their_stop_event_and_close_leaves_no_actor() -> None:
    async with _dispatcher(workflow_blob(Steps(), SPEC)) as (dispatcher, context):
        label = dispatcher.label
        assert await context.get("ctx-a", "anything") == (False, None)  # the context actor answers
        live = set(live_rayflow_actors())
        assert {f"{label}.dispatcher", f"{label}.context", f"{label}.start.0", f"{label}.finish.0"} <= live

        await _start(dispatcher, "a", StartEvent(n=4))
        events, end = await _stream(dispatcher, "a")
        assert events == [Progress(n=4)]
        assert end is not None
        assert (end.outcome, end.step, end.message, end.active_steps) == (Outcome.DONE, "finish", "", ())
        assert isinstance(end.payload, Envelope) and end.payload.kind is Kind.STOP
        assert SPEC.codec.loads(end.payload.payload).result == 50

        # The ended run's stream is gone.
        assert await dispatcher.next_items("a") == [
            EndRun("a", Outcome.FAILED, message="Run a is not known to the dispatcher")
        ]

        # Runs going on at once each end with their own StopEvent.
        await asyncio.gather(*(_start(dispatcher, run_id, StartEvent(n=n)) for run_id, n in (("b", 1), ("c", 2))))
        (b_events, b_end), (c_events, c_end) = await asyncio.gather(_stream(dispatcher, "b"), _stream(dispatcher, "c"))
        assert (b_events, c_events) == ([Progress(n=1)], [Progress(n=2)])
        assert b_end is not None and c_end is not None
        assert [SPEC.codec.loads(e.payload.payload).result for e in (b_end, c_end)] == [20, 30]

    assert not [name for name in live_rayflow_actors() if name.startswith(label)]


async def test_the_dispatcher_never_unpickles_the_workflow() -> None:
    """Given bytes that are no pickle at all, the dispatcher starts and serves runs: it never opened them. Only its
    step actors do, and they cannot start, which fails the run naming the step."""
    async with _dispatcher(b"not a pickle: the dispatcher must never open this") as (dispatcher, context):
        assert await context.get("ctx-a", "anything") == (False, None)
        await _start(dispatcher, "a", StartEvent(n=1))
        events, end = await _stream(dispatcher, "a")
        assert events == []
        assert end is not None
        assert (end.outcome, end.step) == (Outcome.FAILED, "start")
        assert end.message.startswith("Step 'start' could not start an actor: ")
        assert "invalid load key" in end.message  # the step actor's unpickling error
        label = dispatcher.label
        assert f"{label}.dispatcher" in live_rayflow_actors()
    assert not [name for name in live_rayflow_actors() if name.startswith(label)]


async def test_cancel_ends_a_run_with_the_cancelled_outcome() -> None:
    async with _dispatcher(workflow_blob(Steps(), SPEC)) as (dispatcher, _):
        await _start(dispatcher, "slow", StartEvent(n=1, hang=True))
        events, end = await _stream(dispatcher, "slow", until_end=False)
        assert events == [Progress(n=1)]  # the step streamed this, then went to sleep
        dispatcher.cancel("slow")
        if end is None:
            events, end = await _stream(dispatcher, "slow")
            assert events == []
        assert end is not None
        assert (end.outcome, end.message, end.payload) == (Outcome.CANCELLED, "Workflow run cancelled by user", None)

        # The cancelled invocation let go of the step's only actor: the next run goes through it.
        await _start(dispatcher, "after", StartEvent(n=2))
        events, end = await _stream(dispatcher, "after")
        assert events == [Progress(n=2)]
        assert end is not None and end.outcome is Outcome.DONE
        assert SPEC.codec.loads(end.payload.payload).result == 30
