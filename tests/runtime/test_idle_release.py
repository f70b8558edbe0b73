"""The state of a workflow instance's contexts over the life of its actors: an idle release keeps the state of every
``Context`` still alive (the next run finds it in the new context actor), and a ``Context`` that is garbage-collected
takes its state out of the context actor."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import pytest
import ray

from rayflow import Context, StartEvent, StopEvent, Workflow, step
from rayflow.config import settings
from tests.conftest import live_rayflow_actors

pytestmark = pytest.mark.usefixtures("ray_env")

IDLE_S = 0.3


class Counter(Workflow):
    """Counts the runs of its context in the store."""

    @step
    async def count(self, ctx: Context, ev: StartEvent) -> StopEvent:
        runs = await ctx.store.get("runs", default=0) + 1
        await ctx.store.set("runs", runs)
        return StopEvent(result=runs)


@pytest.fixture
def short_idle(monkeypatch: pytest.MonkeyPatch) -> Iterator[float]:
    """Actors released after ``IDLE_S`` seconds without a run."""
    monkeypatch.setenv("RAYFLOW_IDLE_RELEASE_S", str(IDLE_S))
    settings.cache_clear()
    yield IDLE_S
    monkeypatch.undo()
    settings.cache_clear()


async def _idle_released(wf: Workflow) -> None:
    """Wait out the idle time (the release's timer was armed when the last run ended), then the release itself."""
    await asyncio.sleep(IDLE_S * 1.5)
    await wf._session.runtime.settled()
    assert not [name for name in live_rayflow_actors() if name.startswith(wf._session.runtime.label)]


async def test_an_idle_release_keeps_the_state_of_the_contexts_still_alive(short_idle: float) -> None:
    async with Counter(timeout=60) as wf:
        ctx = Context(wf)
        assert await wf.run(ctx=ctx) == 1
        assert await wf.run(ctx=ctx) == 2
        await _idle_released(wf)

        assert await ctx.store.get("runs") == 2  # read from the new context actor, seeded with the kept state
        assert await wf.run(ctx=ctx) == 3
        assert await wf.run() == 1  # a new context starts from nothing


async def test_a_state_that_cannot_be_kept_is_said_with_a_warning(short_idle: float) -> None:
    async with Counter(timeout=60) as wf:
        ctx = Context(wf)
        assert await wf.run(ctx=ctx) == 1
        context = wf._session.runtime.context
        assert context is not None
        ray.kill(context.handle, no_restart=True)
        with pytest.raises(ray.exceptions.RayActorError):
            await context.watching()  # answers once the actor is gone
        with pytest.warns(RuntimeWarning, match=f"the state of context {ctx._ctx_id} could not be kept"):
            await _idle_released(wf)
        assert await wf.run(ctx=ctx) == 1


async def test_the_state_of_a_garbage_collected_context_leaves_the_context_actor() -> None:
    async with Counter(timeout=60) as wf:
        kept = Context(wf)
        assert await wf.run(ctx=kept) == 1
        for _ in range(20):
            assert await wf.run() == 1  # each run on a context of its own, dropped when the run ends
        gc.collect()
        context = wf._session.runtime.context
        assert context is not None
        assert await _settles(context.count, 1)  # only the context still referred to
        del kept
        gc.collect()
        assert await _settles(context.count, 0)


async def _settles(count: Any, expected: int) -> bool:
    """Whether ``count()`` reaches ``expected``: the releases are sent without waiting, and an async actor may run
    a later call before them; each try is one round trip to the actor, no sleep."""
    for _ in range(1000):
        if await count() == expected:
            return True
    return False
