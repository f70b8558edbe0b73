"""Equal instances of one class share a live set of actors (``rayflow.runtime.sharing``): the second starts no
process, each keeps its own runs, contexts and statistics, the set lives while one of them holds it, and one that
died is replaced for all of them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import ray

from rayflow import Context, Event, StartEvent, StopEvent, Workflow, step
from rayflow.config import settings
from rayflow.runtime.sharing import shared
from tests.conftest import live_rayflow_actors

pytestmark = pytest.mark.usefixtures("ray_env")


class Half(Event):
    x: int


class Doubling(Workflow):
    def __init__(self, factor: int = 2, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.factor = factor

    @step
    async def begin(self, ctx: Context, ev: StartEvent) -> Half:
        await ctx.store.set("seen", await ctx.store.get("seen", default=0) + 1)
        return Half(x=int(ev.get("x")))

    @step
    async def finish(self, ctx: Context, ev: Half) -> StopEvent:
        return StopEvent(result=(ev.x * self.factor, await ctx.store.get("seen")))


@pytest.fixture
def sharing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("RAYFLOW_SHARE_SETS", "1")
    settings.cache_clear()
    yield
    settings.cache_clear()


def _label(wf: Workflow) -> str:
    dispatcher = wf._session.runtime.dispatcher
    assert dispatcher is not None
    return dispatcher.label


@pytest.mark.usefixtures("sharing")
async def test_an_equal_instance_runs_on_the_live_set_and_keeps_its_runs_contexts_and_stats_apart() -> None:
    first, second = Doubling(timeout=60), Doubling(timeout=60)
    ctx1 = Context(first)
    assert await first.run(ctx=ctx1, x=1) == (2, 1)
    started = live_rayflow_actors()

    ctx2 = Context(second)
    assert await second.run(ctx=ctx2, x=5) == (10, 1)  # its own context: the first's counter is not seen
    assert live_rayflow_actors() == started  # no process started for it
    assert _label(second) == _label(first)

    # Both at once, on the one set: each run in its own context.
    got = await asyncio.gather(first.run(ctx=ctx1, x=2), second.run(ctx=ctx2, x=3), second.run(x=4))
    assert got == [(4, 2), (6, 2), (8, 1)]

    stats1, stats2 = await first.stats(), await second.stats()
    assert (stats1.runs, stats2.runs) == (2, 3)  # each instance counts its own runs only
    assert (stats1["finish"].events_in, stats2["finish"].events_in) == (2, 3)
    await first.close()
    await second.close()
    assert live_rayflow_actors() == []


@pytest.mark.usefixtures("sharing")
async def test_instances_that_differ_get_sets_of_their_own() -> None:
    base = Doubling(timeout=60)
    other_factor, other_timeout = Doubling(factor=3, timeout=60), Doubling(timeout=61)
    results = [await wf.run(x=1) for wf in (base, other_factor, other_timeout)]
    assert results == [(2, 1), (3, 1), (2, 1)]
    assert len({_label(wf) for wf in (base, other_factor, other_timeout)}) == 3
    for wf in (base, other_factor, other_timeout):
        await wf.close()


async def test_sharing_off_gives_each_instance_its_own_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYFLOW_SHARE_SETS", "0")
    settings.cache_clear()
    try:
        first, second = Doubling(timeout=60), Doubling(timeout=60)
        assert [await first.run(x=1), await second.run(x=1)] == [(2, 1), (2, 1)]
        assert _label(first) != _label(second)
        await first.close()
        await second.close()
    finally:
        settings.cache_clear()


@pytest.mark.usefixtures("sharing")
async def test_the_set_lives_while_one_sharer_holds_it_and_a_closed_one_keeps_its_contexts() -> None:
    first, second = Doubling(timeout=60), Doubling(timeout=60)
    ctx, held = Context(first), Context(second)  # held: a collected context's state leaves the context actor
    assert await first.run(ctx=ctx, x=1) == (2, 1)
    assert await second.run(ctx=held, x=1) == (2, 1)
    context = first._session.runtime.context
    assert context is not None
    assert await context.count() == 2

    await first.close()  # the second still holds the set: it goes on, without the first's context in it
    assert shared().holders(second._session.runtime._holder[0]) == 1
    assert await context.count() == 1
    assert await second.run(ctx=held, x=2) == (4, 2)

    assert await first.run(ctx=ctx, x=3) == (6, 2)  # joins again, its context's state brought back
    assert _label(first) == _label(second)
    await second.close()
    assert await first.run(ctx=ctx, x=4) == (8, 3)
    await first.close()
    assert live_rayflow_actors() == []


@pytest.mark.usefixtures("sharing")
async def test_a_garbage_collected_sharer_lets_go_and_the_last_one_stops_the_set() -> None:
    import gc

    keeper = Doubling(timeout=60)
    assert await keeper.run(x=1) == (2, 1)
    dropped = Doubling(timeout=60)
    assert await dropped.run(x=1) == (2, 1)
    del dropped
    gc.collect()
    assert await keeper.run(x=2) == (4, 1)  # the collected sharer did not take the set with it
    await keeper.close()
    assert live_rayflow_actors() == []


@pytest.mark.usefixtures("sharing")
async def test_a_shared_set_that_died_is_replaced_for_every_sharer() -> None:
    first, second = Doubling(timeout=60), Doubling(timeout=60)
    assert [await first.run(x=1), await second.run(x=1)] == [(2, 1), (2, 1)]
    dead = _label(first)
    ray.kill(ray.get_actor(f"{dead}.dispatcher"), no_restart=True)

    # Each sharer's next run finds the set gone; both go on, on one new set.
    async def run_after_death(wf: Workflow, x: int) -> object:
        for _ in range(2):
            try:
                return await wf.run(x=x)
            except Exception as err:  # the run that met the dead dispatcher
                assert "died" in str(err)
        raise AssertionError("no run went on after the death")

    assert await run_after_death(first, 2) == (4, 1)
    assert await run_after_death(second, 3) == (6, 1)
    assert _label(first) == _label(second) != dead
    await first.close()
    await second.close()
    assert live_rayflow_actors() == []
