"""Fan-out streams on real actors: a returned list's events spread over the pool of the step that takes them, and
its join gets every event's result exactly once even when an actor running one of them dies."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from rayflow import Event, StartEvent, StopEvent, Workflow, step

pytestmark = pytest.mark.usefixtures("ray_env")


class Part(Event):
    i: int
    crash_mark: str = ""


class Done(Event):
    i: int
    pid: int


class Spread(Workflow):
    """A list of 8 parts; with a ``gauge``, each part's work waits until two are going at once (so on two actors:
    one run's invocations run one after the other on an actor)."""

    def __init__(self, gauge: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gauge = gauge

    @step
    async def split(self, ev: StartEvent) -> list[Part]:
        return [Part(i=i, crash_mark=ev.get("crash_mark", "")) for i in range(8)]

    @step(num_workers=4)
    async def work(self, ev: Part) -> Done:
        mark = Path(ev.crash_mark) if ev.crash_mark else None
        if ev.i == 3 and mark is not None and not mark.exists():
            mark.write_text("crashed once")
            os._exit(1)  # the actor dies with this event's call: it goes to another actor
        if self.gauge is not None:
            await self.gauge.enter.remote()
            await self.gauge.leave.remote()
        return Done(i=ev.i, pid=os.getpid())

    @step
    async def join(self, done: list[Done]) -> StopEvent:
        return StopEvent(result=(sorted(d.i for d in done), len({d.pid for d in done})))


async def test_a_lists_events_run_on_several_actors_and_join_once_each(gauge_factory: Any) -> None:
    async with Spread(gauge_factory(hold=2), timeout=120) as workflow:
        ids, actors = await workflow.run()
    assert ids == list(range(8))
    assert actors >= 2


async def test_a_join_gets_each_result_once_when_an_actor_dies_mid_stream(tmp_path: Path) -> None:
    mark = tmp_path / "crashed"
    async with Spread(timeout=120) as workflow:
        ids, _ = await workflow.run(crash_mark=str(mark))
    assert mark.exists()  # the actor did die
    assert ids == list(range(8))
