"""The state lock cannot outlive its editor (``rayflow.runtime.context_actor``): a run cancelled while its step edits
the state, or waits for the state's lock, leaves the state writable; ``release_holder`` frees the locks of an actor
that died holding or waiting for one; a lease nobody renews runs out, and the edit that lost it saves nothing."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import ray

from rayflow import Context, Event, StartEvent, StopEvent, Workflow, WorkflowCancelledByUser, step
from rayflow.errors import StateLockLost
from rayflow.runtime.actors import stop_actors
from rayflow.runtime.context_actor import ContextActor, LockStatus, holder_name

pytestmark = pytest.mark.usefixtures("ray_env")

# Ray workers cannot import this test module: its actor class and workflows travel by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


async def until(condition: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    """Wait until ``condition()`` holds: the lock's queue lives in another process, with nothing to await there."""
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.01)


def context_of_open_workflow() -> ContextActor:
    """The context actor of the one workflow this test has open."""
    (name,) = [n for n in ray.util.list_named_actors() if n.startswith("rayflow") and n.endswith(".context")]
    return ContextActor(ray.get_actor(name))


class Inside(Event):
    pass


class EditsForever(Workflow):
    @step
    async def edit(self, ctx: Context, ev: StartEvent) -> StopEvent:
        async with ctx.store.edit_state() as state:
            state["edited"] = True
            ctx.write_event_to_stream(Inside())
            await asyncio.Event().wait()
        return StopEvent()


async def test_a_run_cancelled_while_its_step_is_inside_edit_state_leaves_the_state_writable() -> None:
    async with EditsForever(timeout=None) as wf:
        handler = wf.run()
        async for ev in handler.stream_events():
            if isinstance(ev, Inside):
                break
        await handler.cancel_run()
        with pytest.raises(WorkflowCancelledByUser):
            await handler
        await asyncio.wait_for(handler.ctx.store.set("after", 1), timeout=30)
        assert await handler.ctx.store.get("after") == 1
        assert await handler.ctx.store.get("edited", default=None) is None  # the cancelled edit saved nothing


class About(Event):
    pass


class WaitsForTheLock(Workflow):
    @step
    async def edit(self, ctx: Context, ev: StartEvent) -> StopEvent:
        ctx.write_event_to_stream(About())
        async with ctx.store.edit_state() as state:
            state["edited"] = True
        return StopEvent()


async def test_a_run_cancelled_while_its_step_waits_for_the_state_lock_leaves_the_state_writable() -> None:
    async with WaitsForTheLock(timeout=None) as wf:
        ctx_id = uuid.uuid4().hex
        ctx: Context[Any] = Context(wf, ctx_id=ctx_id)
        async with ctx.store.edit_state() as state:  # the driver holds the lock: the step's edit_begin queues
            handler = wf.run(ctx=ctx)
            async for ev in handler.stream_events():
                if isinstance(ev, About):
                    break
            context = context_of_open_workflow()

            async def step_queued() -> bool:
                return len((await context.lock_status(ctx_id)).queued) == 1

            await until(step_queued)
            await handler.cancel_run()
            with pytest.raises(WorkflowCancelledByUser):
                await handler
            state["driver"] = 1
        assert await context.lock_status(ctx_id) == LockStatus(None)  # the step's late grant was given back
        await asyncio.wait_for(ctx.store.set("after", 1), timeout=30)
        assert await ctx.store.get("driver") == 1
        assert await ctx.store.get("edited", default=None) is None


async def test_an_edit_cancelled_while_it_waits_for_the_lock_gives_its_grant_back() -> None:
    context = ContextActor.start(f"rayflow.test-context.{uuid.uuid4().hex[:8]}")
    try:
        await context.ready()
        await context.edit_begin("c", "first")

        async def edit() -> None:
            async with context.edit("c") as state:
                state["late"] = True

        waiting = asyncio.ensure_future(edit())

        async def queued() -> bool:
            return (await context.lock_status("c")).queued == ("driver",)

        await until(queued)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await context.edit_end("c", "first", {"first": True})
        await until(lambda: _free(context, "c"))
        await asyncio.wait_for(context.set("c", "after", 1), timeout=30)
        state = await context.get_state("c")
        assert state["first"] is True and state["after"] == 1 and "late" not in state
    finally:
        await stop_actors([context.handle])


async def _free(context: ContextActor, ctx_id: str) -> bool:
    return await context.lock_status(ctx_id) == LockStatus(None)


class _Editor:
    """A step-like actor: opens edits of a context through its own client, as a step's ``ctx.store`` does."""

    def __init__(self, context: Any) -> None:
        self._context = ContextActor(context)
        self._edits: list[asyncio.Task[None]] = []

    async def ping(self) -> None:
        pass

    async def hold(self, ctx_id: str) -> str:
        """Open an edit and keep it open; returns once it holds the lock, with this actor's holder name."""
        entered = asyncio.Event()

        async def edit() -> None:
            async with self._context.edit(ctx_id) as state:
                state["by_editor"] = True
                entered.set()
                await asyncio.Event().wait()

        self._edits.append(asyncio.ensure_future(edit()))
        await entered.wait()
        return holder_name()

    async def queue(self, ctx_id: str) -> None:
        """Start an edit that will wait for the lock (returns at once)."""

        async def edit() -> None:
            async with self._context.edit(ctx_id) as state:
                state["by_queued_editor"] = True

        self._edits.append(asyncio.ensure_future(edit()))


@pytest.fixture
async def context() -> AsyncIterator[ContextActor]:
    """A context actor whose leases last the default 300 s: only ``release_holder`` frees a dead holder's lock."""
    actor = ContextActor.start(f"rayflow.test-context.{uuid.uuid4().hex[:8]}")
    await actor.ready()
    yield actor
    await stop_actors([actor.handle])


@pytest.fixture
async def short_leases() -> AsyncIterator[ContextActor]:
    """A context actor whose leases last half a second."""
    actor = ContextActor.start(f"rayflow.test-context.{uuid.uuid4().hex[:8]}", lease_s=0.5)
    await actor.ready()
    yield actor
    await stop_actors([actor.handle])


def _editor(context: ContextActor) -> tuple[str, Any]:
    name = f"rayflow.test-editor.{uuid.uuid4().hex[:8]}"
    return name, ray.remote(_Editor).options(name=name).remote(context.handle)


async def _killed(handle: Any) -> None:
    """Kill ``handle`` and return once Ray says it is dead (a call sent just after the kill may still be answered)."""
    ray.kill(handle)
    for _ in range(10_000):
        try:
            await handle.ping.remote()
        except ray.exceptions.RayActorError:
            return
    raise AssertionError("the killed actor still answers")


async def test_release_holder_frees_the_locks_of_an_actor_killed_while_it_held_or_waited_for_them(
    context: ContextActor,
) -> None:
    holder, editor = _editor(context)
    waiter, queued_editor = _editor(context)
    try:
        assert await editor.hold.remote("c") == holder  # a step actor holds under its Ray actor name
        await queued_editor.queue.remote("c")

        async def waiter_queued() -> bool:
            return await context.lock_status("c") == LockStatus(holder, (waiter,))

        await until(waiter_queued)
    finally:
        await _killed(editor)
        await _killed(queued_editor)

    async def mine() -> None:
        async with context.edit("c") as state:
            state["by_driver"] = True

    driver = asyncio.ensure_future(mine())

    async def driver_queued() -> bool:
        return await context.lock_status("c") == LockStatus(holder, (waiter, "driver"))

    await until(driver_queued)
    # What the dispatcher does when it replaces a dead step actor:
    assert await context.release_holder(holder) == 1
    assert await context.release_holder(waiter) == 1
    await asyncio.wait_for(driver, timeout=30)
    state = await context.get_state("c")
    assert state["by_driver"] is True
    assert "by_editor" not in state and "by_queued_editor" not in state
    assert await context.lock_status("c") == LockStatus(None)


async def test_a_lease_renewed_by_a_live_editor_holds_and_one_nobody_renews_runs_out(
    short_leases: ContextActor,
) -> None:
    context = short_leases
    holder, editor = _editor(context)
    try:
        await editor.hold.remote("c")

        async def mine() -> None:
            async with context.edit("c") as state:
                state["by_driver"] = True

        driver = asyncio.ensure_future(mine())
        done, _ = await asyncio.wait([driver], timeout=2.0)  # four leases: the live editor renews its lock
        assert not done
        assert await context.lock_status("c") == LockStatus(holder, ("driver",))
    finally:
        await _killed(editor)
    await asyncio.wait_for(driver, timeout=30)  # nobody renews the dead editor's lease: it runs out
    state = await context.get_state("c")
    assert state["by_driver"] is True and "by_editor" not in state

    # An edit whose lease ran out saves nothing.
    await context.edit_begin("c", "ghost", holder="ghost")
    await asyncio.wait_for(context.set("c", "after", 1), timeout=30)
    with pytest.raises(StateLockLost, match="no longer holds"):
        await context.edit_end("c", "ghost", {"ghost": True})
    assert "ghost" not in await context.get_state("c")
