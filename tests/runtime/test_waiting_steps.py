"""A step that awaits I/O does not hold its actor: an actor runs the invocations of different runs at the same time,
one run has at most ``num_workers`` invocations of a step going at once, and ``max_in_flight`` caps a step across
every run of the instance."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rayflow import Context, Event, StartEvent, StopEvent, Workflow, step

pytestmark = pytest.mark.usefixtures("ray_env")


class Waits(Workflow):
    """One step, one actor: each run's invocation waits until every run's is in (as if on a slow API)."""

    def __init__(self, gauge: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gauge = gauge

    @step(num_workers=1)
    async def call(self, ev: StartEvent) -> StopEvent:
        await self.gauge.enter.remote()
        await self.gauge.leave.remote()
        return StopEvent(result=ev.i)


async def test_one_actor_serves_the_waiting_invocations_of_many_runs(gauge_factory: Any) -> None:
    runs = 8
    gauge = gauge_factory(hold=runs)  # no invocation ends before all eight are going: one actor runs them at once
    async with Waits(gauge, timeout=60) as wf:
        assert sorted(await asyncio.gather(*(wf.run(i=i) for i in range(runs)))) == list(range(runs))
    assert await gauge.peak.remote() == runs


class Item(Event):
    i: int


class Done(Event):
    i: int


class FanOut(Workflow):
    def __init__(self, gauge: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gauge = gauge

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> Item | None:
        for i in range(ev.n):
            ctx.send_event(Item(i=i))
        return None

    @step(num_workers=2)
    async def work(self, ev: Item) -> Done:
        await self.gauge.enter.remote()
        await self.gauge.leave.remote()
        return Done(i=ev.i)

    @step
    async def end(self, ctx: Context, ev: Done) -> StopEvent | None:
        done = ctx.collect_events(ev, [Done] * 6)
        return None if done is None else StopEvent(result=sorted(d.i for d in done))


async def test_a_run_has_at_most_num_workers_invocations_of_a_step_going(gauge_factory: Any) -> None:
    gauge = gauge_factory(hold=2)  # the first two wait for each other: a run does get its two at once
    async with FanOut(gauge, timeout=60) as wf:
        assert await wf.run(n=6) == list(range(6))
    assert await gauge.peak.remote() == 2


class Capped(Workflow):
    def __init__(self, gauge: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gauge = gauge

    @step(num_workers=4, max_in_flight=1)
    async def call(self, ev: StartEvent) -> StopEvent:
        await self.gauge.enter.remote()
        await asyncio.sleep(0.05)  # a slow API call: room for another run's invocation to overlap, were it let in
        await self.gauge.leave.remote()
        return StopEvent(result=ev.i)


async def test_max_in_flight_caps_a_step_across_runs(gauge_factory: Any) -> None:
    gauge = gauge_factory()
    async with Capped(gauge, timeout=60) as wf:
        assert sorted(await asyncio.gather(*(wf.run(i=i) for i in range(6)))) == list(range(6))
    assert await gauge.peak.remote() == 1


def test_max_in_flight_must_be_a_positive_integer() -> None:
    from rayflow.errors import WorkflowValidationError

    with pytest.raises(WorkflowValidationError, match="max_in_flight must be an integer greater than 0"):

        class Bad(Workflow):
            @step(max_in_flight=0)
            async def call(self, ev: StartEvent) -> StopEvent:
                return StopEvent()
