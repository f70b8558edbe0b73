"""Bounding and steering runs: the timeout (its error and its stream event), ``cancel_run()``, several runs of one
instance at once, ``num_workers`` and ``num_concurrent_runs``.

Steps that must be seen running at the same time stream when they started and ended (wall clock, one machine),
or meet at a barrier kept in ``ctx.store``: steps may run in other processes, so they share nothing else.
"""

import asyncio
import time

import pytest
from run_helpers import whole_stream


async def test_a_run_past_its_timeout_fails_naming_the_step_still_active(engine):
    class Nap(engine.Workflow):
        @engine.step
        async def doze(self, ev: engine.StartEvent) -> engine.StopEvent:
            await asyncio.sleep(ev.minutes * 60)
            return engine.StopEvent(result="rested")

    handler = Nap(timeout=1.5).run(minutes=1)
    streamed = await whole_stream(handler)
    timed_out = streamed[-1]
    assert type(timed_out) is engine.WorkflowTimedOutEvent
    assert timed_out.timeout == 1.5
    assert timed_out.active_steps == ["doze"]
    with pytest.raises(engine.WorkflowTimeoutError) as caught:
        await handler
    assert "timed out after 1.5 seconds" in str(caught.value)
    assert "doze" in str(caught.value)


async def test_cancel_run_ends_the_run_with_workflow_cancelled_by_user(engine):
    class Waiting(engine.Event):
        pass

    class Vigil(engine.Workflow):
        @engine.step
        async def keep_watch(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            ctx.write_event_to_stream(Waiting())
            await asyncio.sleep(60)
            return engine.StopEvent(result="dawn")

    handler = Vigil(timeout=30).run()
    async for ev in handler.stream_events():
        assert type(ev) is Waiting  # the step is running
        break
    await handler.cancel_run()
    assert handler.is_done()
    with pytest.raises(engine.WorkflowCancelledByUser):
        await handler


async def test_runs_of_one_instance_at_the_same_time_each_get_their_own_result(engine):
    class Doubler(engine.Workflow):
        @engine.step
        async def double(self, ev: engine.StartEvent) -> engine.StopEvent:
            await asyncio.sleep(0.05)
            return engine.StopEvent(result=ev.n * 2)

    doubler = Doubler()
    assert await asyncio.gather(*(doubler.run(n=n) for n in (3, 42, -99))) == [6, 84, -198]


async def test_num_workers_lets_that_many_calls_of_a_step_run_at_once(engine):
    class Guest(engine.Event):
        name: str

    class Seated(engine.Event):
        name: str

    class Dinner(engine.Workflow):
        @engine.step
        async def invite(self, ctx: engine.Context, ev: engine.StartEvent) -> Guest | None:
            for name in ("ann", "bob", "cy"):
                ctx.send_event(Guest(name=name))
            return None

        @engine.step(num_workers=3)
        async def sit(self, ctx: engine.Context, ev: Guest) -> Seated:
            async with ctx.store.edit_state() as state:
                state["seated"] = state.get("seated", 0) + 1
            while await ctx.store.get("seated") < 3:  # nobody eats until all three sit at once
                await asyncio.sleep(0.01)
            return Seated(name=ev.name)

        @engine.step
        async def serve(self, ctx: engine.Context, ev: Seated) -> engine.StopEvent | None:
            table = ctx.collect_events(ev, [Seated] * 3)
            if table is None:
                return None
            return engine.StopEvent(result=sorted(s.name for s in table))

    # 5 s: time for rayflow to start the step's three actors within the run.
    assert await Dinner(timeout=5).run() == ["ann", "bob", "cy"]


def _timed_workflow(engine, **options):
    class Span(engine.Event):
        started: float
        ended: float

    class Shift(engine.Workflow):
        @engine.step
        async def work(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            started = time.time()
            await asyncio.sleep(ev.hold)
            ctx.write_event_to_stream(Span(started=started, ended=time.time()))
            return engine.StopEvent(result=ev.worker)

    return Shift(**options)


async def _most_at_once(workflow, runs, hold):
    """How many of ``runs`` runs of ``workflow`` were inside their step at the same moment, and their results."""
    handlers = [workflow.run(worker=n, hold=hold) for n in range(runs)]
    spans = [ev for handler in handlers for ev in (await whole_stream(handler))[:-1]]
    results = await asyncio.gather(*handlers)
    most = max(sum(1 for other in spans if other.started <= span.started < other.ended) for span in spans)
    return most, results


async def test_num_concurrent_runs_one_runs_one_run_at_a_time(engine):
    most, results = await _most_at_once(_timed_workflow(engine, num_concurrent_runs=1), runs=3, hold=0.2)
    assert most == 1
    assert results == [0, 1, 2]


async def test_without_num_concurrent_runs_runs_overlap(engine):
    shift = _timed_workflow(engine)
    # A first round lets rayflow start the step's actors (a pool grows while events wait); the second is measured.
    await _most_at_once(shift, runs=3, hold=0.5)
    most, results = await _most_at_once(shift, runs=3, hold=0.5)
    assert most > 1
    assert results == [0, 1, 2]
