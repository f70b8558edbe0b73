"""Supervision on a real Ray: step actors killed mid-run, poison events, steps past their timeout, runs that end while
a step is blocked. Every result arrives exactly once; no run fails for another run's trouble."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from rayflow import Context, Event, StartEvent, StopEvent, Workflow, catch_error, step
from rayflow.errors import StepTimeoutError, WorkflowRuntimeError, WorkflowTimeoutError
from rayflow.events import StepFailedEvent

pytestmark = pytest.mark.usefixtures("ray_env")


class Work(Event):
    i: int
    n: int
    delay: float = 0.0
    poison: bool = False


class Done(Event):
    i: int
    n: int


class Seen(Event):
    """Streamed by a step: which process ran it (so a test can kill that process)."""

    pid: int
    step: str


class FanOut(Workflow):
    @step
    async def start(self, ctx: Context, ev: StartEvent) -> Work | None:
        for i in range(ev.n):
            ctx.send_event(Work(i=i, n=ev.n, delay=ev.get("delay", 0.0), poison=i == ev.get("poison", -1)))
        return None

    @step(num_workers=4)
    async def work(self, ctx: Context, ev: Work) -> Done:
        if ev.poison:
            os.kill(os.getpid(), signal.SIGKILL)
        ctx.write_event_to_stream(Seen(pid=os.getpid(), step="work"))
        await asyncio.sleep(ev.delay)
        return Done(i=ev.i, n=ev.n)

    @step
    async def gather(self, ctx: Context, ev: Done) -> StopEvent | None:
        if ev.i % 50 == 0:
            ctx.write_event_to_stream(Seen(pid=os.getpid(), step="gather"))
        got = ctx.collect_events(ev, [Done] * ev.n)
        return None if got is None else StopEvent(result=[d.i for d in got])


async def _kill_after(handler, step: str, seen: int, kills: int = 1) -> list[int]:
    """Read the run's stream; once ``seen`` events of ``step`` came by, SIGKILL the process that ran the last one, and
    again every ``seen`` events, ``kills`` times. The pids killed."""
    killed: list[int] = []
    count = 0
    async for ev in handler.stream_events():
        if isinstance(ev, Seen) and ev.step == step and ev.pid not in killed:
            count += 1
            if count % seen == 0 and len(killed) < kills:
                os.kill(ev.pid, signal.SIGKILL)
                killed.append(ev.pid)
    return killed


async def test_a_step_actor_killed_mid_run_loses_nothing_and_duplicates_nothing():
    wf = FanOut(timeout=120)
    try:
        first = wf.run(n=200, delay=0.05)
        second = wf.run(n=200, delay=0.05)  # started before the kill: it shares the pool
        killed = await _kill_after(first, "work", seen=60)
        assert len(killed) == 1
        assert sorted(await first) == list(range(200))
        assert sorted(await second) == list(range(200))
        assert sorted(await wf.run(n=50)) == list(range(50))  # the pool works on, without the dead actor
    finally:
        await wf.close()


async def test_the_collecting_steps_actor_killed_mid_collect_still_gives_the_exact_result():
    wf = FanOut(timeout=120)
    try:
        handler = wf.run(n=300, delay=0.02)
        killed = await _kill_after(handler, "gather", seen=2)
        assert len(killed) == 1
        assert sorted(await handler) == list(range(300))
    finally:
        await wf.close()


@pytest.mark.slow
async def test_ten_thousand_events_through_five_kills_arrive_exactly_once():
    wf = FanOut(timeout=600)
    try:
        handler = wf.run(n=10_000, delay=0.001)
        killed = await _kill_after(handler, "work", seen=1500, kills=5)
        assert len(killed) == 5
        result = await handler
        assert len(result) == 10_000 and set(result) == set(range(10_000))
    finally:
        await wf.close()


async def test_an_event_that_kills_its_actor_every_time_fails_its_run_only():
    wf = FanOut(timeout=120)
    try:
        began = time.monotonic()
        poisoned = wf.run(n=20, poison=7)
        healthy = wf.run(n=20, delay=0.01)
        with pytest.raises(WorkflowRuntimeError) as failed:
            await poisoned
        message = str(failed.value)
        assert "Step 'work' lost its actor 3 times" in message and "Work event" in message
        assert time.monotonic() - began < 60
        assert sorted(await healthy) == list(range(20))
    finally:
        await wf.close()


class Nap(Workflow):
    @step(timeout=1)
    def nap(self, ev: StartEvent) -> StopEvent:
        time.sleep(ev.get("seconds", 0.0))
        return StopEvent(result="woke")

    @catch_error
    async def caught(self, ev: StepFailedEvent) -> StopEvent:
        return StopEvent(result=f"caught {type(ev.exception).__name__}: {ev.exception}")


class Hog(Workflow):
    @step(timeout=1)
    async def hog(self, ev: StartEvent) -> StopEvent:
        time.sleep(ev.get("seconds", 0.0))  # blocks the actor's event loop: nothing inside it can stop this
        return StopEvent(result="woke")

    @catch_error
    async def caught(self, ev: StepFailedEvent) -> StopEvent:
        return StopEvent(result=f"caught {type(ev.exception).__name__}")


async def test_a_sync_step_past_its_timeout_fails_in_time_and_catch_error_sees_it():
    wf = Nap(timeout=60)
    try:
        assert await wf.run() == "woke"  # actors started
        began = time.monotonic()
        result = await wf.run(seconds=30)
        took = time.monotonic() - began
        assert result == "caught StepTimeoutError: Step 'nap' ran past its timeout of 1.0 s handling a StartEvent event"
        assert 1.0 <= took < 3.0
        began = time.monotonic()
        assert await wf.run() == "woke"  # a new actor: the blocked one was replaced
    finally:
        await wf.close()


async def test_an_async_step_blocking_its_loop_past_its_timeout_is_stopped_by_replacing_its_actor():
    wf = Hog(timeout=60)
    try:
        assert await wf.run() == "woke"
        began = time.monotonic()
        assert await wf.run(seconds=30) == "caught StepTimeoutError"
        assert time.monotonic() - began < 15  # timeout + grace to notice, then a new actor to count the attempt
        assert await wf.run() == "woke"
    finally:
        await wf.close()


async def test_a_workflow_timeout_stops_a_blocked_sync_step_and_the_next_run_is_not_held_up():
    class Stuck(Workflow):
        @step
        def nap(self, ev: StartEvent) -> StopEvent:
            time.sleep(ev.get("seconds", 0.0))
            return StopEvent(result="woke")

    wf = Stuck(timeout=1)
    try:
        assert await wf.run() == "woke"
        began = time.monotonic()
        with pytest.raises(WorkflowTimeoutError):
            await wf.run(seconds=30)
        assert 1.0 <= time.monotonic() - began < 3.0
        began = time.monotonic()
        assert await wf.run() == "woke"
        assert time.monotonic() - began < 1.0  # not behind the 30 s sleep
    finally:
        await wf.close()


def test_a_step_timeout_must_be_a_positive_number():
    from rayflow.errors import WorkflowValidationError

    with pytest.raises(WorkflowValidationError, match="timeout must be a number of seconds greater than 0"):

        class Bad(Workflow):
            @step(timeout=0)
            async def s(self, ev: StartEvent) -> StopEvent:
                return StopEvent()

    assert issubclass(StepTimeoutError, TimeoutError)
