"""A workflow instance whose dispatcher or context actor dies: every run it served fails with
``WorkflowActorDiedError`` naming what died, within seconds, its stream ending with a ``WorkflowFailedEvent``; the
dead set of actors is stopped and forgotten, and the next run starts a new one and returns its result."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import warnings
from typing import Any

import pytest
import ray

from rayflow import (
    Context,
    Event,
    StartEvent,
    StopEvent,
    Workflow,
    WorkflowActorDiedError,
    WorkflowFailedEvent,
    WorkflowHandler,
    step,
)
from rayflow.runtime.context_actor import ContextActor
from tests.conftest import live_rayflow_actors

pytestmark = pytest.mark.usefixtures("ray_env")


class Started(Event):
    n: int


class Hold(Workflow):
    """Doubles ``n``; with ``hold=True`` the step streams ``Started`` and then waits for ever (until its actor dies)."""

    @step(num_workers=2)
    async def double(self, ctx: Context, ev: StartEvent) -> StopEvent:
        await ctx.store.set("seen", ev.n)
        if ev.get("hold", False):
            ctx.write_event_to_stream(Started(n=ev.n))
            await asyncio.Event().wait()
        if ev.get("lock", False):  # hold the state's lock: the store's other calls wait
            async with ctx.store.edit_state():
                ctx.write_event_to_stream(Started(n=ev.n))
                await asyncio.Event().wait()
        return StopEvent(result=ev.n * 2)


def _actor(wf: Workflow, role: str) -> Any:
    """The handle of one of ``wf``'s actors: ``dispatcher`` or ``context``."""
    dispatcher = wf._session.runtime.dispatcher
    assert dispatcher is not None
    return ray.get_actor(f"{dispatcher.label}.{role}")


async def _until_started(handler: WorkflowHandler) -> Any:
    """The handler's stream, read up to the held step's ``Started``; the rest of it."""
    stream = handler.stream_events()
    assert isinstance(await anext(stream), Started)
    return stream


async def _fails(handler: WorkflowHandler, stream: Any) -> WorkflowActorDiedError:
    """The error ``await handler`` raised, after checking that the stream ended with its failure event."""
    rest = [event async for event in stream]
    assert len(rest) == 1 and isinstance(rest[0], WorkflowFailedEvent)
    with pytest.raises(WorkflowActorDiedError) as caught:
        await handler
    assert rest[0].exception is caught.value
    return caught.value


def _kill(handle: Any, how: str) -> None:
    if how == "sigkill":
        pid = ray.get(handle.__ray_call__.remote(lambda _: os.getpid()))
        os.kill(pid, signal.SIGKILL)
    else:
        ray.kill(handle, no_restart=True)


@pytest.mark.parametrize("how", ["ray.kill", "sigkill"])
async def test_a_dead_dispatcher_fails_every_run_it_served_and_the_next_run_starts_new_actors(how: str) -> None:
    async with Hold(timeout=60) as wf:
        label = wf._session.runtime.label
        handlers = [wf.run(n=n, hold=True) for n in (1, 2)]
        streams = [await _until_started(handler) for handler in handlers]

        killed = time.monotonic()
        _kill(_actor(wf, "dispatcher"), how)
        errors = await asyncio.gather(*(_fails(h, s) for h, s in zip(handlers, streams, strict=True)))
        assert time.monotonic() - killed < 5
        for error in errors:
            assert str(error).startswith(f"The dispatcher of workflow {label} died: ")

        assert await wf.run(n=21) == 42  # a new dispatcher, context actor and step actors
    assert not [name for name in live_rayflow_actors() if name.startswith(label)]


async def test_a_dead_context_actor_fails_every_run_and_the_next_run_starts_anew() -> None:
    async with Hold(timeout=60) as wf:
        label = wf._session.runtime.label
        ctx = Context(wf)
        handlers = [wf.run(ctx=ctx, n=1, hold=True), wf.run(n=2, hold=True)]
        streams = [await _until_started(handler) for handler in handlers]
        old = _actor(wf, "dispatcher")

        killed = time.monotonic()
        ray.kill(_actor(wf, "context"), no_restart=True)
        errors = await asyncio.gather(*(_fails(h, s) for h, s in zip(handlers, streams, strict=True)))
        assert time.monotonic() - killed < 5
        for error in errors:
            assert str(error) == f"The context actor of workflow {label} died: the state of its contexts is lost"

        # The context that lost its state starts anew, on a new set of actors.
        assert await wf.run(ctx=ctx, n=5) == 10
        assert await ctx.store.get("seen") == 5
        assert _actor(wf, "dispatcher")._actor_id != old._actor_id
        assert wf._session.runtime.dispatcher.label == f"{label}-1"
    assert not [name for name in live_rayflow_actors() if name.startswith(label)]


async def test_actors_that_died_between_runs_are_replaced_by_the_next_run() -> None:
    async with Hold(timeout=60) as wf:
        label = wf._session.runtime.label
        assert await wf.run(n=1) == 2
        dispatcher = _actor(wf, "dispatcher")
        ray.kill(dispatcher, no_restart=True)
        with pytest.raises(ray.exceptions.RayActorError):
            while True:  # a call sent just after the kill may still be answered: until Ray knows it is gone
                ray.get(dispatcher.__ray_ready__.remote())
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a new context lost nothing: no warning
            assert await wf.run(n=3) == 6
    assert not [name for name in live_rayflow_actors() if name.startswith(label)]


async def test_a_store_call_of_the_caller_waiting_on_a_dying_context_actor_raises_the_rayflow_error() -> None:
    async with Hold(timeout=60) as wf:
        label = wf._session.runtime.label
        ctx = Context(wf)
        handler = wf.run(ctx=ctx, n=1, lock=True)
        stream = await _until_started(handler)
        waiting = asyncio.ensure_future(ctx.store.set("seen", 2))  # waits for the step's edit to end
        context = ContextActor(_actor(wf, "context"))
        while not (await context.lock_status(ctx._ctx_id)).queued:  # each check is a round trip: no sleep needed
            pass
        ray.kill(context.handle, no_restart=True)
        with pytest.raises(WorkflowActorDiedError, match=f"^The context actor of workflow {label} died: "):
            await waiting
        await _fails(handler, stream)
        assert await wf.run(ctx=ctx, n=2) == 4
    assert not [name for name in live_rayflow_actors() if name.startswith(label)]
