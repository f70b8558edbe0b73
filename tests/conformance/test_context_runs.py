"""Contexts across runs: a run starts from a fresh context unless given one; ``run(ctx=...)`` continues a context;
``ctx.to_dict()`` / ``Context.from_dict`` snapshot a context (JSON by default, pickle on request) and resume a run
cut short, without running its finished steps again."""

import asyncio

import pytest
from run_helpers import at_module_level


def shout(text):
    """A value JSON cannot hold, kept in a run's state."""
    return text.upper()


def _counter(engine, **options):
    class Counter(engine.Workflow):
        @engine.step
        async def count(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            seen = await ctx.store.get("seen", default=0) + 1
            await ctx.store.set("seen", seen)
            if ev.get("keep_a_function"):
                await ctx.store.set("formatter", shout)
            return engine.StopEvent(result=seen)

    return Counter(**options)


async def test_each_run_starts_afresh_unless_it_is_given_the_context_of_an_earlier_one(engine):
    counter = _counter(engine)
    first = counter.run()
    assert await first == 1
    assert await counter.run() == 1  # a new context: the first run's state is not there
    assert await first.ctx.store.get("seen") == 1

    continued = counter.run(ctx=first.ctx)
    assert await continued == 2
    assert await continued.ctx.store.get("seen") == 2


async def test_a_state_json_cannot_hold_is_snapshotted_with_the_pickle_serializer(engine):
    counter = _counter(engine)
    handler = counter.run(keep_a_function=True)
    assert await handler == 1

    with pytest.raises(ValueError):
        handler.ctx.to_dict()

    pickled = engine.context.PickleSerializer()
    snapshot = handler.ctx.to_dict(serializer=pickled)
    restored = engine.Context.from_dict(counter, snapshot, serializer=pickled)
    assert await restored.store.get("seen") == 1
    assert (await restored.store.get("formatter"))("again") == "AGAIN"

    assert await counter.run(ctx=restored) == 2
    assert await restored.store.get("seen") == 2


async def test_a_run_cut_short_resumes_from_its_snapshot_without_rerunning_finished_steps(engine):
    class Prepared(engine.Event):
        batch: int

    at_module_level(Prepared, engine)  # named by the snapshot of the run's unfinished work

    class Ready(engine.Event):
        pass

    class Bakery(engine.Workflow):
        @engine.step
        async def prepare(self, ctx: engine.Context, ev: engine.StartEvent) -> Prepared:
            await ctx.store.set("prepared", await ctx.store.get("prepared", default=0) + 1)
            return Prepared(batch=7)

        @engine.step
        async def bake(self, ctx: engine.Context, ev: Prepared) -> engine.StopEvent:
            ctx.write_event_to_stream(Ready())
            while not await ctx.store.get("oven_hot", default=False):  # set by the caller
                await asyncio.sleep(0.01)
            return engine.StopEvent(result=f"batch {ev.batch} baked")

    bakery = Bakery(timeout=10)
    handler = bakery.run()
    async for ev in handler.stream_events():
        assert type(ev) is Ready  # bake is running, prepare is done
        break
    snapshot = handler.ctx.to_dict()
    await handler.cancel_run()

    resumed_ctx = engine.Context.from_dict(bakery, snapshot)
    resumed = bakery.run(ctx=resumed_ctx)
    await resumed_ctx.store.set("oven_hot", True)
    assert await asyncio.wait_for(resumed, timeout=20) == "batch 7 baked"
    assert await resumed_ctx.store.get("prepared") == 1
