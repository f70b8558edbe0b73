"""A step actor through its client (``rayflow.runtime.step_worker``): a batch of work items and their ``ItemDone``s,
events emitted while a step runs, ``end_run`` cancelling a running invocation, and ``matches`` reading an event's
fields against ``wait_for_event`` requirements. A recording actor stands in for the dispatcher."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import ray

from rayflow import Context, Event, StartEvent, StepFailedEvent, StopEvent, Workflow, WorkflowRuntimeError, step
from rayflow.core.commands import WorkItem
from rayflow.core.envelope import Envelope, Kind
from rayflow.core.stats import Invocation
from rayflow.core.ticks import ItemDone
from rayflow.runtime.actors import stop_actors
from rayflow.runtime.blob import workflow_blob
from rayflow.runtime.context_actor import ContextActor
from rayflow.runtime.placement import Placement
from rayflow.runtime.step_worker import StepWorker
from rayflow.spec import WorkflowSpec

# Ray workers cannot import this test module: the recorder below travels by value (the workflow does anyway).
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


class Progress(Event):
    n: int


class Out(Event):
    n: int


class Answer(Event):
    user: str = ""
    n: int = 0


class Steps(Workflow):
    @step
    async def work(self, ctx: Context, ev: StartEvent) -> Out | None:
        n = ev.get("n")
        ctx.write_event_to_stream(Progress(n=n))
        if ev.get("hang"):
            await asyncio.sleep(600)  # only a cancel ends this
        if ev.get("spin"):
            end = time.thread_time() + ev.get("spin")
            while time.thread_time() < end:  # computes in the event loop, awaiting nothing
                pass
        if n == 2:
            raise ValueError(f"bad input {n}")
        if n == 3:
            return "not an event"  # type: ignore[return-value]
        if n == 4:
            return None
        return Out(n=n)

    @step
    async def finish(self, ev: Out | Answer) -> StopEvent:
        return StopEvent(result=ev.n)


class _Recorder:
    """Stands in for the dispatcher: records each ``emit`` a step actor sends it, in arrival order."""

    def __init__(self) -> None:
        self._emits: list[tuple[str, str | None, list[Envelope]]] = []
        self._waiting: list[str] = []
        self._arrived: asyncio.Event | None = None

    async def call_waiting(self, step: str) -> None:
        self._waiting.append(step)
        if self._arrived is not None:
            self._arrived.set()

    async def waiting(self, count: int = 0) -> list[str]:
        """The steps said to be awaiting so far, once there are at least ``count``."""
        while len(self._waiting) < count:
            self._arrived = asyncio.Event()
            await self._arrived.wait()
        return list(self._waiting)

    async def emit(self, run_id: str, step: str | None, envelopes: list[Envelope], after: None = None) -> None:
        self._emits.append((run_id, step, envelopes))
        if self._arrived is not None:
            self._arrived.set()

    async def emits(self, count: int = 0) -> list[tuple[str, str | None, list[Envelope]]]:
        """The emits so far, once there are at least ``count``."""
        while len(self._emits) < count:
            self._arrived = asyncio.Event()
            await self._arrived.wait()
        return list(self._emits)


@dataclass
class Harness:
    spec: WorkflowSpec
    worker: StepWorker
    recorder: Any

    def item(self, run_id: str, event: Event) -> WorkItem:
        return WorkItem(run_id, f"ctx-{run_id}", self.spec.codec.encode(event))

    async def emits(self, count: int = 0) -> list[tuple[str, str | None, list[Envelope]]]:
        emits: list[tuple[str, str | None, list[Envelope]]] = await self.recorder.emits.remote(count)
        return emits


@pytest.fixture
async def harness(ray_env: None) -> AsyncIterator[Harness]:
    """A step actor running ``Steps.work``, with a real context actor and a recorder for its emits."""
    label = f"rayflow.test-step.{uuid.uuid4().hex[:8]}"
    spec = WorkflowSpec.of(Steps)
    recorder = ray.remote(_Recorder).options(name=f"{label}.recorder", num_cpus=0).remote()
    context = ContextActor.start(f"{label}.context")
    worker = StepWorker.start(
        blob=workflow_blob(Steps(), spec),
        step="work",
        dispatcher=recorder,
        context=context,
        name=f"{label}.work.0",
        verbose=False,
        placement=Placement(num_cpus=0, num_gpus=0, scheduling="SPREAD"),
    )
    await asyncio.gather(worker.ready(), context.ready())
    yield Harness(spec, worker, recorder)
    await stop_actors([worker.handle, context.handle, recorder])


async def test_a_batch_runs_in_order_with_one_item_done_each(harness: Harness) -> None:
    codec = harness.spec.codec
    items = [harness.item(f"r{n}", StartEvent(n=n)) for n in (1, 2, 3, 4)]
    results, elapsed, retire, _, rows = await harness.worker.run(items)
    records = [Invocation._make(row) for row in rows]
    assert retire is None
    # One record per invocation, for the statistics and the trace: how it ended, what it emitted.
    assert [(r.run_id, r.step, r.actor, r.outcome, r.emitted, r.returned) for r in records] == [
        ("r1", "work", "work.0", "done", 2, "Out"),
        ("r2", "work", "work.0", "failed", 1, None),
        ("r3", "work", "work.0", "failed", 1, None),
        ("r4", "work", "work.0", "done", 1, None),
    ]
    assert records[1].error == "ValueError: bad input 2"
    assert all(r.seconds >= 0 and r.event == "StartEvent" and len(r.node) == 8 for r in records)
    assert [done.run_id for done in results] == ["r1", "r2", "r3", "r4"]
    assert elapsed > 0

    returned, failed, not_an_event, nothing = results
    # The event the step returned comes back with the call.
    assert returned.failure is None and returned.waiting is None and returned.step is None
    assert returned.output is not None
    assert returned.output.type_keys == (harness.spec.event_keys[Out], harness.spec.event_keys[Event])
    assert (returned.output.kind, returned.output.target) == (Kind.EVENT, None)
    assert codec.loads(returned.output.payload) == Out(n=1)

    # A step that raised: the error as it was raised, and the StepFailedEvent a catch_error step would get.
    assert failed.output is None and failed.failure is not None
    failure = failed.failure
    assert (failure.step, failure.message, failure.attempts) == ("work", "ValueError: bad input 2", 1)
    error = codec.loads(failure.error)
    assert type(error) is ValueError
    assert error.args == ("bad input 2",)
    assert failure.failed_event is not None
    step_failed = codec.loads(failure.failed_event.payload)
    assert type(step_failed) is StepFailedEvent
    assert (step_failed.step_name, step_failed.attempts) == ("work", 1)
    assert step_failed.input_event.get("n") == 2
    assert type(step_failed.exception) is ValueError

    # A step that returned something other than an Event fails, naming the step.
    assert not_an_event.output is None and not_an_event.failure is not None
    wrong = codec.loads(not_an_event.failure.error)
    assert type(wrong) is WorkflowRuntimeError
    assert str(wrong) == "Step function work returned str instead of an Event instance."

    # A step that returned None emits nothing.
    assert nothing == ItemDone("r4")

    # Streamed events reached the dispatcher, in order, before the call returned.
    emits = await harness.emits()
    assert [(run_id, step) for run_id, step, _ in emits] == [
        ("r1", "work"),
        ("r2", "work"),
        ("r3", "work"),
        ("r4", "work"),
    ]
    streamed = [envelope for _, _, envelopes in emits for envelope in envelopes]
    assert [envelope.kind for envelope in streamed] == [Kind.STREAM] * 4
    assert [codec.loads(envelope.payload) for envelope in streamed] == [Progress(n=n) for n in (1, 2, 3, 4)]


async def test_a_first_call_awaiting_is_told_to_the_dispatcher_before_it_returns(harness: Harness) -> None:
    running = harness.worker.run([harness.item("slow", StartEvent(n=1, hang=True))])
    assert await asyncio.wait_for(harness.recorder.waiting.remote(1), timeout=60) == ["work"]
    harness.worker.end_run("slow")
    await asyncio.wait_for(running, timeout=60)


async def test_a_first_call_computing_in_the_event_loop_is_not_told_as_awaiting(harness: Harness) -> None:
    await harness.worker.run([harness.item("busy", StartEvent(n=1, spin=0.3))])
    await harness.worker.run([harness.item("next", StartEvent(n=1))])
    await harness.emits(2)  # what the actor sent before these emits has arrived too
    assert await harness.recorder.waiting.remote() == []


async def test_end_run_cancels_a_running_invocation(harness: Harness) -> None:
    running = harness.worker.run([harness.item("slow", StartEvent(n=1, hang=True))])
    await harness.emits(1)  # the step has streamed its progress: it is now in its long sleep
    harness.worker.end_run("slow")
    results, elapsed, _, _, _ = await asyncio.wait_for(running, timeout=60)
    assert results == [ItemDone("slow")]
    assert elapsed < 60

    # Items of the ended run still queued for the actor are skipped without running; other runs run.
    results, _, _, _, _ = await harness.worker.run(
        [harness.item("slow", StartEvent(n=1)), harness.item("next", StartEvent(n=1))]
    )
    skipped, ran = results
    assert skipped == ItemDone("slow")
    assert ran.output is not None and harness.spec.codec.loads(ran.output.payload) == Out(n=1)
    assert [run_id for run_id, _, _ in await harness.emits()] == ["slow", "next"]


async def test_matches_answers_which_requirements_an_event_meets(harness: Harness) -> None:
    payload = harness.spec.codec.encode(Answer(user="bob", n=2, topic="rag")).payload
    checks = (
        (0, (("user", "bob"),)),
        (1, (("user", "amy"),)),
        (2, ()),
        (3, (("n", 2), ("user", "bob"))),
        (4, (("n", 3), ("user", "bob"))),
        (7, (("topic", "rag"),)),  # a field the event class does not declare
        (9, (("topic", "ray"),)),
    )
    assert await harness.worker.matches(payload, checks) == (0, 2, 3, 7)
    assert await harness.worker.matches(payload, ()) == ()
