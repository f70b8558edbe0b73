"""Reads of ``ctx.store`` in steps, served from a copy in the step's actor when it is current: a read sees every write
that happened before the event the step handles (in another actor, or by the caller), and asks the context actor only
when its copy may be stale."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import ray

from rayflow import Context, Event, HumanResponseEvent, InputRequiredEvent, StartEvent, StopEvent, Workflow, step
from rayflow.config import settings
from rayflow.runtime.context_actor import ContextActor
from rayflow.runtime.state_replica import UNKNOWN, Known, ReplicaReads, StateReplicas

pytestmark = pytest.mark.usefixtures("ray_env")

ROUNDS = 40


class Ping(Event):
    round: int


class Pong(Event):
    round: int
    seen: int


class PingPong(Workflow):
    """``lead`` writes the round number, then sends it to ``echo``, whose actors keep a copy of the state from their
    earlier reads: each read must see the write made just before its event. (Events are sent, not returned, so that
    neither step runs on the other's actor.)"""

    @step
    async def lead(self, ctx: Context, ev: StartEvent | Pong) -> Ping | StopEvent | None:
        if isinstance(ev, Pong) and ev.seen != ev.round:
            return StopEvent(result=f"round {ev.round}: echo read {ev.seen}")
        following = ev.round + 1 if isinstance(ev, Pong) else 0
        if following == ROUNDS:
            return StopEvent(result="ok")
        await ctx.store.set("round", following)
        ctx.send_event(Ping(round=following))
        return None

    @step(num_workers=2)
    async def echo(self, ctx: Context, ev: Ping) -> Pong | None:
        ctx.send_event(Pong(round=ev.round, seen=await ctx.store.get("round")))
        return None


async def test_a_step_reads_what_was_written_before_its_event_in_another_actor() -> None:
    async with PingPong(timeout=60) as wf:
        assert await wf.run() == "ok"
        assert await wf.run() == "ok"  # the copies of the first run's context do not serve the second's


class Reader(Workflow):
    @step
    async def read(self, ctx: Context, ev: StartEvent) -> StopEvent:
        return StopEvent(result=await ctx.store.get("x", default=None))


async def test_a_step_reads_what_the_caller_wrote_before_the_run() -> None:
    async with Reader(timeout=60) as wf:
        ctx = Context(wf)
        for value in range(5):  # the step's actor holds a copy from the run before: it must not serve this one
            await ctx.store.set("x", value)
            assert await wf.run(ctx=ctx) == value


class Probe(Event):
    pass


class Bump(Event):
    pass


class CallerInTheMiddle(Workflow):
    """``check`` reads ``y`` (keeping a copy), ``bump`` writes it and asks the caller, whose answer goes to
    ``check`` again: the caller saw the question after the write, so ``check`` must see the write."""

    @step
    async def begin(self, ctx: Context, ev: StartEvent) -> Probe:
        await ctx.store.set("y", "before")
        return Probe()

    @step
    async def check(self, ctx: Context, ev: Probe | HumanResponseEvent) -> Bump | StopEvent:
        y = await ctx.store.get("y")
        if isinstance(ev, Probe):
            assert y == "before"
            return Bump()
        return StopEvent(result=y)

    @step
    async def bump(self, ctx: Context, ev: Bump) -> InputRequiredEvent:
        await ctx.store.set("y", "after")
        return InputRequiredEvent(prefix="go?")


async def test_a_step_reads_what_was_written_before_the_event_the_caller_answered() -> None:
    async with CallerInTheMiddle(timeout=60) as wf:
        handler = wf.run()
        async for event in handler.stream_events():
            if isinstance(event, InputRequiredEvent):
                handler.ctx.send_event(HumanResponseEvent(response="go"))
        assert await handler == "after"


class Collected(Event):
    i: int


class CollectAfterWrites(Workflow):
    """Each of ``n`` events is sent after its sender wrote its own key; the collector reads them all once the last
    arrives: every write happened before an event the collect released."""

    @step
    async def fan(self, ctx: Context, ev: StartEvent) -> Collected | None:
        for i in range(ev.n):
            ctx.send_event(Collected(i=i))
        return None

    @step(num_workers=3)
    async def write(self, ctx: Context, ev: Collected) -> Probe:
        await ctx.store.set(f"k{ev.i}", ev.i)
        return Probe()

    @step
    async def gather(self, ctx: Context, ev: Probe) -> StopEvent | None:
        if ctx.collect_events(ev, [Probe] * 12) is None:
            await ctx.store.get("k0", default=None)  # keeps a copy from before the last writes
            return None
        missing = [i for i in range(12) if await ctx.store.get(f"k{i}", default=None) != i]
        return StopEvent(result=missing)


async def test_a_collecting_step_reads_every_write_made_before_the_events_it_collected() -> None:
    async with CollectAfterWrites(timeout=60) as wf:
        assert await wf.run(n=12) == []


class Counting(ContextActor):
    """The context actor's real client, counting the state requests of a step actor's copies."""

    def __init__(self, handle: Any) -> None:
        super().__init__(handle)
        self.reads = 0

    async def read(self, ctx_id: str, have: int, whole: bool = False) -> tuple[int, Any]:
        self.reads += 1
        return await super().read(ctx_id, have, whole)


@pytest.fixture
async def context(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Counting]:
    monkeypatch.setenv("RAYFLOW_STATE_COPY_MAX_BYTES", str(COPY_MAX))
    settings.cache_clear()
    started = ContextActor.start(f"rayflow-test-reads-{uuid.uuid4().hex[:8]}")
    monkeypatch.undo()
    settings.cache_clear()
    client = Counting(started.handle)
    await client.seed("c", None)
    yield client
    ray.kill(client.handle)


#: The size above which the test context actor's states are not copied into step actors.
COPY_MAX = 10_000


async def test_reads_at_a_known_version_ask_the_context_actor_once(context: Counting) -> None:
    version = await context.set("c", "n", 7)
    copies = StateReplicas(context, limit=4, max_age_s=3600)
    for _ in range(20):  # twenty invocations whose events carry the version of the write
        assert await ReplicaReads(copies, context, Known(version)).get("c", "n") == (True, 7)
    assert context.reads == 1


async def test_a_read_that_may_be_stale_asks_again_and_a_write_keeps_the_copy_current(context: Counting) -> None:
    copies = StateReplicas(context, limit=4, max_age_s=3600)
    first = await context.set("c", "n", 1)
    assert await ReplicaReads(copies, context, Known(first)).get("c", "n") == (True, 1)
    later = await context.set("c", "n", 2)  # written elsewhere
    assert await ReplicaReads(copies, context, Known(later)).get("c", "n") == (True, 2)
    assert context.reads == 2

    known = Known(later)
    reads = ReplicaReads(copies, context, known)
    await reads.set("c", "m", {"a": 1})  # the copy was current: it follows the write without asking
    assert await reads.get("c", "m") == (True, {"a": 1})
    assert context.reads == 2
    assert known.version == later + 1


async def test_an_unknown_version_always_asks(context: Counting) -> None:
    copies = StateReplicas(context, limit=4, max_age_s=3600)
    await context.set("c", "n", 1)
    for _ in range(3):
        await ReplicaReads(copies, context, Known(UNKNOWN)).get("c", "n")
    assert context.reads == 3


async def test_values_read_are_copies(context: Counting) -> None:
    version = await context.set("c", "items", [1, 2])
    copies = StateReplicas(context, limit=4, max_age_s=3600)
    _, got = await ReplicaReads(copies, context, Known(version)).get("c", "items")
    got.append(3)
    assert await ReplicaReads(copies, context, Known(version)).get("c", "items") == (True, [1, 2])


async def test_a_copy_older_than_its_max_age_is_asked_again(context: Counting) -> None:
    now = [0.0]
    copies = StateReplicas(context, limit=4, max_age_s=0.1, clock=lambda: now[0])
    version = await context.set("c", "n", 1)
    assert await ReplicaReads(copies, context, Known(version)).get("c", "n") == (True, 1)
    await context.set("c", "n", 2)  # by a step running meanwhile: not before this read's event
    now[0] = 0.05
    assert await ReplicaReads(copies, context, Known(version)).get("c", "n") == (True, 1)
    now[0] = 0.2
    assert await ReplicaReads(copies, context, Known(version)).get("c", "n") == (True, 2)
    assert context.reads == 2


async def test_a_state_too_large_to_copy_is_read_path_by_path_from_the_context_actor(context: Counting) -> None:
    await context.set("c", "small", 1)
    version = await context.set("c", "big", "x" * (2 * COPY_MAX))
    copies = StateReplicas(context, limit=4, max_age_s=3600)
    for _ in range(3):
        reads = ReplicaReads(copies, context, Known(version))
        assert await reads.get("c", "small") == (True, 1)  # the value, not a copy of the whole state
    assert (await ReplicaReads(copies, context, Known(version)).get_state("c"))["big"] == "x" * (2 * COPY_MAX)
    assert context.reads == 2  # once to learn the state's size, once for the whole state asked for
