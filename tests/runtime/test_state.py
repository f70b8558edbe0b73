"""Run state on a real Ray cluster: ``ctx.store`` paths, typed state, atomic edits, contexts across runs."""

from __future__ import annotations

import pytest
from pydantic import BaseModel
from work_events import Done, Work

from rayflow import Context, StartEvent, StopEvent, Workflow, step

pytestmark = pytest.mark.usefixtures("ray_env")


class Counter(BaseModel):
    count: int = 0
    names: list[str] = []


class Shared(Workflow):
    @step
    async def start(self, ctx: Context[Counter], ev: StartEvent) -> Work | None:
        await ctx.store.set("names", ["a"])
        for i in range(ev.n):
            ctx.send_event(Work(i=i, n=ev.n))
        return None

    @step(num_workers=3)
    async def bump(self, ctx: Context[Counter], ev: Work) -> Done:
        async with ctx.store.edit_state() as state:
            state.count += 1
        return Done(i=ev.i, n=ev.n)

    @step
    async def finish(self, ctx: Context[Counter], ev: Done) -> StopEvent | None:
        if ctx.collect_events(ev, [Done] * ev.n) is None:
            return None
        state = await ctx.store.get_state()
        return StopEvent(result=(state.count, await ctx.store.get("names"), type(state).__name__))


async def test_typed_state_and_atomic_edits_across_actors():
    async with Shared() as wf:
        assert await wf.run(n=60) == (60, ["a"], "Counter")


class Dotted(Workflow):
    @step
    async def start(self, ctx: Context, ev: StartEvent) -> StopEvent:
        await ctx.store.set("user.profile.name", "ada")
        missing = await ctx.store.get("user.nothing", default="fallback")
        try:
            await ctx.store.get("user.nothing")
        except ValueError as err:
            error = str(err)
        return StopEvent(result=(await ctx.store.get("user.profile.name"), missing, error))


async def test_store_dotted_paths_and_missing_paths():
    async with Dotted() as wf:
        handler = wf.run()
        assert await handler == ("ada", "fallback", "Path 'user.nothing' not found in state")
        assert await handler.ctx.store.get("user.profile") == {"name": "ada"}
        with pytest.warns(DeprecationWarning):
            assert await handler.ctx.get("user.profile.name") == "ada"


async def test_context_carries_state_across_runs_and_snapshots():
    async with Dotted() as wf:
        ctx = Context(wf)
        await ctx.store.set("runs", 1)
        await wf.run(ctx=ctx)
        assert await ctx.store.get("runs") == 1
        snapshot = ctx.to_dict()
        restored = Context.from_dict(wf, snapshot)
        assert await restored.store.get("user.profile.name") == "ada"
