"""Chains of small steps: a fast step's call borrows the next step's slot and runs the chain on one actor."""

from __future__ import annotations

import asyncio

import pytest
import ray

from rayflow import Context, Event, StartEvent, StopEvent, Workflow, step

pytestmark = pytest.mark.usefixtures("ray_env")

HOPS = 200  # room for both steps to be measured as fast even on a loaded machine


class Ping(Event):
    n: int
    where: list[str]


class Pong(Event):
    n: int
    where: list[str]


def _actor() -> str:
    """The step actor an invocation runs on: ``rayflow.<Workflow>.<id>.<step>.<i>``, shortened to ``<step>``."""
    return ray.get_runtime_context().get_actor_name().split(".")[-2]


class PingPong(Workflow):
    @step
    async def ping(self, ev: StartEvent | Ping) -> Pong | StopEvent:
        n = getattr(ev, "n", 0)
        where = [*getattr(ev, "where", []), f"ping@{_actor()}"]
        return StopEvent(result=where) if n >= HOPS else Pong(n=n + 1, where=where)

    @step
    async def pong(self, ev: Pong) -> Ping:
        return Ping(n=ev.n, where=[*ev.where, f"pong@{_actor()}"])


async def test_a_two_step_chain_runs_on_one_actor_once_both_steps_are_measured():
    async with PingPong() as wf:
        where = await wf.run()
    assert [w.split("@")[0] for w in where] == ["ping", "pong"] * HOPS + ["ping"]
    # The first hops run on each step's own actors (nothing is measured yet); later ones run on through a slot
    # of the other step lent to the call.
    assert where[:2] == ["ping@ping", "pong@pong"]
    assert "pong@ping" in where or "ping@pong" in where


class CountingPong(PingPong):
    """``pong`` keeps state on ``self`` with one worker: the copy of the workflow in its one actor counts every hop."""

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)
        self.seen = 0

    @step(num_workers=1)
    async def pong(self, ev: Pong) -> Ping:
        self.seen += 1
        return Ping(n=ev.n, where=[*ev.where, f"pong@{_actor()}#{self.seen}"])


async def test_a_step_that_uses_self_always_runs_on_its_own_actors():
    async with CountingPong() as wf:
        where = await wf.run()
    assert where[1::2] == [f"pong@pong#{i}" for i in range(1, HOPS + 1)]


CHAINS = 2


class Chain(Event):
    chain: int
    n: int


class Finished(Event):
    chain: int


class ParallelChains(Workflow):
    """Two chains at once through a 2-worker step and a 1-worker step that checks nothing else runs it meanwhile:
    while one chain holds ``single``'s slot on a ``forward`` actor, the other chain's event waits for it."""

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> Chain | None:
        await ctx.store.set("running", 0)
        await ctx.store.set("peak", 0)
        for chain in range(CHAINS):
            ctx.send_event(Chain(chain=chain, n=0))

    @step(num_workers=2)
    async def forward(self, ev: Chain) -> Pong:
        return Pong(n=ev.chain * 1000 + ev.n, where=[])

    @step(num_workers=1)
    async def single(self, ctx: Context, ev: Pong) -> Chain | Finished:
        async with ctx.store.edit_state() as state:
            state["running"] += 1
            state["peak"] = max(state["peak"], state["running"])
            state["ran_on"] = sorted({*state.get("ran_on", []), _actor()})
        await asyncio.sleep(0.001)  # a little work, so that two invocations would overlap
        async with ctx.store.edit_state() as state:
            state["running"] -= 1
        chain, n = divmod(ev.n, 1000)
        return Finished(chain=chain) if n >= 40 else Chain(chain=chain, n=n + 1)

    @step
    async def join(self, ctx: Context, ev: Finished) -> StopEvent | None:
        got = ctx.collect_events(ev, [Finished] * CHAINS)
        if got is None:
            return None
        peak, ran_on = await ctx.store.get("peak"), await ctx.store.get("ran_on")
        return StopEvent(result=(sorted(e.chain for e in got), peak, ran_on))


async def test_a_lent_slot_keeps_a_step_within_num_workers():
    async with ParallelChains() as wf:
        chains, peak, ran_on = await wf.run()
    assert chains == list(range(CHAINS))
    assert "single" in ran_on  # and, once both steps are measured as fast, on forward's actors through a lent slot
    assert peak == 1  # single has num_workers=1: never two invocations at once, lent or not
