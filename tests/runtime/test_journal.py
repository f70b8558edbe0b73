"""Durable runs on a real Ray: a journaled run goes on from its last checkpoint when its dispatcher or context actor
dies, with exactly the result of an undisturbed run; ``resume(run_id)`` gives a finished run's stored end, refuses an
unknown run and a record naming a class outside the workflow; a snapshot taken mid-collect resumes exactly."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import ray

from rayflow import (
    Context,
    Event,
    Journal,
    JournalError,
    StartEvent,
    StopEvent,
    Workflow,
    WorkflowCancelledByUser,
    WorkflowRuntimeError,
    step,
)
from rayflow.journal import RunRecord, RunStatus
from tests.conftest import live_rayflow_actors

pytestmark = pytest.mark.usefixtures("ray_env")


class Unit(Event):
    i: int
    n: int
    delay: float = 0.0


class Late(Event):
    i: int
    n: int


class Finished(Event):
    i: int
    n: int


class Progress(Event):
    i: int


class Gather(Workflow):
    """Fans ``n`` units of work (each taking ``delay`` seconds) out to two workers and collects them back, streaming
    ``Progress`` for each one collected; the result is the sorted ids collected. Units from ``hold_from`` on go to
    ``late``, which holds them until the store's ``hold`` is False. Only ``late`` uses the store: a dead context
    actor fails no other step."""

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> Unit | Late | None:
        for i in range(ev.n):
            ctx.send_event(
                Late(i=i, n=ev.n) if i >= ev.get("hold_from", ev.n) else Unit(i=i, n=ev.n, delay=ev.get("delay", 0.0))
            )
        return None

    @step(num_workers=2)
    async def work(self, ev: Unit) -> Finished:
        await asyncio.sleep(ev.delay)  # the work itself
        return Finished(i=ev.i, n=ev.n)

    @step
    async def late(self, ctx: Context, ev: Late) -> Finished:
        if await ctx.store.get("hold", default=True):
            await asyncio.Event().wait()
        return Finished(i=ev.i, n=ev.n)

    @step
    async def gather(self, ctx: Context, ev: Finished) -> StopEvent | None:
        done = ctx.collect_events(ev, [Finished] * ev.n)
        if done is None:
            ctx.write_event_to_stream(Progress(i=ev.i))
            return None
        return StopEvent(result=sorted(d.i for d in done))


class Echo(Workflow):
    @step
    async def echo(self, ev: StartEvent) -> StopEvent:
        return StopEvent(result=ev.get("x"))


def _collected(record: RunRecord) -> int:
    """How many events the run's collecting step had collected at its checkpoint (its collect log)."""
    pending = (record.checkpoint or {}).get("pending") or {}
    return sum(1 for item in pending.get("items", ()) if item["step"] == "gather")


async def _checkpoint_with(journal: Journal, run_id: str, collected: int) -> RunRecord:
    """The run's record once a checkpoint shows ``collected`` events collected: the journal is a file, nothing to
    await, so it is read every 20 ms, for at most 60 s."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if run_id in journal.runs():
            record = journal.read(run_id)
            if _collected(record) >= collected:
                return record
            assert record.status is RunStatus.RUNNING, f"run {run_id} ended {record.status} before the checkpoint"
        await asyncio.sleep(0.02)
    raise AssertionError(f"no checkpoint of run {run_id} with {collected} events collected within 60 s")


def _actor(wf: Workflow, role: str) -> Any:
    dispatcher = wf._session.runtime.dispatcher
    assert dispatcher is not None
    return ray.get_actor(f"{dispatcher.label}.{role}")


@pytest.mark.parametrize("role", ["dispatcher", "context"])
async def test_a_journaled_run_goes_on_from_its_checkpoint_when_its_dispatcher_or_context_actor_dies(
    role: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = Journal(tmp_path / "journal", interval_s=0.05)
    async with Gather(timeout=120, journal=journal) as wf:
        label = wf._session.runtime.label
        handler = wf.run(n=60, delay=0.05)
        await _checkpoint_with(journal, handler.run_id, 5)
        ray.kill(_actor(wf, role), no_restart=True)

        assert await handler == list(range(60))  # each unit collected once, none lost
        record = journal.read(handler.run_id)
        assert (record.status, record.recoveries, record.checkpoint) == (RunStatus.DONE, 1, None)
        assert journal.stop_event(record, wf._spec).result == list(range(60))
        assert f"rayflow: run {handler.run_id} goes on from its last checkpoint (recovery 1 of 3)" in (
            capsys.readouterr().out
        )
    assert not [name for name in live_rayflow_actors() if name.startswith(label)]


async def test_every_journaled_run_of_a_dead_dispatcher_goes_on_on_one_new_set_of_actors(tmp_path: Path) -> None:
    journal = Journal(tmp_path, interval_s=0.05)
    async with Gather(timeout=120, journal=journal) as wf:
        label = wf._session.runtime.label
        handlers = [wf.run(n=n, delay=0.05) for n in (30, 40)]
        for handler in handlers:
            await _checkpoint_with(journal, handler.run_id, 3)
        ray.kill(_actor(wf, "dispatcher"), no_restart=True)
        assert await asyncio.gather(*handlers) == [list(range(30)), list(range(40))]
        assert wf._session.runtime.dispatcher.label == f"{label}-1"


async def test_a_run_recovered_in_place_streams_each_event_once(tmp_path: Path) -> None:
    journal = Journal(tmp_path, interval_s=0.05)
    async with Gather(timeout=120, journal=journal) as wf:
        handler = wf.run(n=30, delay=0.05)
        streamed: list[int] = []
        async for event in handler.stream_events():
            if isinstance(event, Progress):
                streamed.append(event.i)
                if len(streamed) == 10:
                    await _checkpoint_with(journal, handler.run_id, 10)
                    ray.kill(_actor(wf, "dispatcher"), no_restart=True)
        assert await handler == list(range(30))
        # Each Progress once. Which event completes the collect (and streams no Progress) can change: events after
        # the checkpoint run again, maybe in another order, so one already streamed may be the last collected now.
        assert len(streamed) == len(set(streamed)) and set(streamed) <= set(range(30)) and len(streamed) >= 29


async def test_resume_gives_a_finished_run_its_stored_result_from_a_new_instance(tmp_path: Path) -> None:
    async with Gather(timeout=60, journal=tmp_path) as wf:
        handler = wf.run(n=3)
        assert await handler == [0, 1, 2]
    assert Journal(tmp_path).runs() == [handler.run_id]

    again = Gather(journal=str(tmp_path))  # another instance, as a new process would make: starts no actor
    resumed = again.resume(handler.run_id)
    assert resumed.run_id == handler.run_id
    events = [event async for event in resumed.stream_events()]
    assert await resumed == [0, 1, 2]
    assert len(events) == 1 and isinstance(events[0], StopEvent)
    assert not again._session.runtime.started


async def test_resume_of_a_cancelled_run_raises_its_stored_error(tmp_path: Path) -> None:
    async with Gather(timeout=60, journal=tmp_path) as wf:
        handler = wf.run(n=2, hold_from=0)
        await _record_written(wf.journal, handler.run_id)
        await handler.cancel_run()
        with pytest.raises(WorkflowCancelledByUser):
            await handler
        record = wf.journal.read(handler.run_id)
        assert record.status is RunStatus.CANCELLED and record.checkpoint is not None
        with pytest.raises(
            WorkflowRuntimeError, match=f"^Run {handler.run_id} ended cancelled: WorkflowCancelledByUser"
        ):
            await wf.resume(handler.run_id)


async def _record_written(journal: Journal | None, run_id: str) -> None:
    """Wait (reading the journal every 20 ms, at most 60 s) until the run's first checkpoint is written."""
    assert journal is not None
    deadline = time.monotonic() + 60
    while run_id not in journal.runs():
        assert time.monotonic() < deadline, f"run {run_id} was never journaled"
        await asyncio.sleep(0.02)


async def test_resume_refuses_an_unknown_run_naming_the_journal_and_needs_a_journal(tmp_path: Path) -> None:
    wf = Gather(journal=tmp_path)
    with pytest.raises(JournalError, match=f"^The journal {tmp_path} has no run 'nope'$"):
        wf.resume("nope")
    with pytest.raises(JournalError, match="is not a run id"):
        wf.resume("../secrets")
    with pytest.raises(WorkflowRuntimeError, match=r"needs a journal: Workflow\(journal=path\)"):
        Gather().resume("nope")


async def test_a_record_naming_a_class_outside_the_workflow_is_refused_and_never_imported(tmp_path: Path) -> None:
    planted = tmp_path / "planted_module.py"
    planted.write_text("from rayflow import StopEvent\n\nclass Evil(StopEvent):\n    pass\n")
    sys.path.insert(0, str(tmp_path))
    try:
        async with Gather(timeout=60, journal=tmp_path / "journal") as wf:
            handler = wf.run(n=2)
            assert await handler == [0, 1]
        path = tmp_path / "journal" / f"{handler.run_id}.json"
        data = json.loads(path.read_text())
        data["result"]["stop"]["qualified_name"] = "planted_module.Evil"
        path.write_text(json.dumps(data))

        with pytest.raises(JournalError, match=r"'planted_module\.Evil', which is not among the allowed types"):
            Gather(journal=tmp_path / "journal").resume(handler.run_id)
        assert "planted_module" not in sys.modules
    finally:
        sys.path.remove(str(tmp_path))


async def test_a_record_of_another_workflow_class_is_refused(tmp_path: Path) -> None:
    async with Gather(timeout=60, journal=tmp_path) as wf:
        handler = wf.run(n=1)
        await handler
    with pytest.raises(JournalError, match=f"is a run of {Gather.__module__}.Gather, not of .*Echo$"):
        Echo(journal=tmp_path).resume(handler.run_id)


async def test_a_snapshot_taken_mid_collect_and_cancelled_resumes_with_exactly_its_result() -> None:
    async with Gather(timeout=60) as wf:
        ctx = Context(wf)
        handler = wf.run(ctx=ctx, n=10, hold_from=6)  # units 6.. wait: 6 of 10 are collected, then the run stands
        streamed = 0
        async for event in handler.stream_events():
            streamed += isinstance(event, Progress)
            if streamed == 6:
                break
        data = json.loads(json.dumps(ctx.to_dict()))
        assert sum(1 for item in data["pending"]["items"] if item["step"] == "gather") == 6
        await handler.cancel_run()
        with pytest.raises(WorkflowCancelledByUser):
            await handler

        restored = Context.from_dict(wf, data)
        await restored.store.set("hold", False)
        assert await wf.run(ctx=restored) == list(range(10))


class Holds(Workflow):
    @step
    async def hold(self, ev: StartEvent) -> StopEvent:
        await asyncio.Event().wait()
        return StopEvent()


async def test_a_run_whose_checkpoint_cannot_be_written_stops_with_a_journal_error(tmp_path: Path) -> None:
    async with Holds(timeout=60, journal=tmp_path) as wf:
        handler = wf.run(thing={1, 2})  # a set: pickles, but JSON cannot hold it
        with pytest.raises(JournalError, match=f"^Run {handler.run_id} could not be journaled in {tmp_path}, so it"):
            await handler
        record = Journal(tmp_path).read(handler.run_id)
        assert record.status is RunStatus.FAILED and record.error_type == "JournalError"
