"""Parked actor sets (``rayflow.runtime.park``): a new instance takes the actors an earlier one released, or a blank
spare, and nothing of the earlier instance reaches it; a redefined class never gets actors that ran old code; the
park is bounded and leaves nothing behind once drained."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from rayflow import Context, StartEvent, StopEvent, Workflow, step
from rayflow.errors import WorkflowValidationError
from rayflow.runtime.park import ActorPark, install
from tests.conftest import live_rayflow_actors

pytestmark = pytest.mark.usefixtures("ray_env")


def remembering_class() -> type[Workflow]:
    """A new class (object) each call, of the same shape: a step that remembers on ``self`` and in the store."""

    class Remembering(Workflow):
        seen: list[int]

        def __init__(self, tag: str, **kwargs: object) -> None:
            super().__init__(**kwargs)
            self.tag = tag
            self.seen = []

        @step
        async def remember(self, ctx: Context, ev: StartEvent) -> StopEvent:
            self.seen.append(int(ev.get("x")))
            await ctx.store.set("x", ev.get("x"))
            return StopEvent(result=(self.tag, list(self.seen)))

    return Remembering


@pytest.fixture
def park() -> Iterator[ActorPark]:
    """An enabled park for this test, drained at its end (before the ``ray_env`` check)."""
    park = ActorPark(sets=2, spares=0, park_s=600)
    previous = install(park)
    yield park
    gc.collect()
    park.drain_sync()
    install(previous)


def _set_label(wf: Workflow) -> str:
    dispatcher = wf._session.runtime.dispatcher
    assert dispatcher is not None
    return dispatcher.label


async def test_a_released_set_serves_the_next_instance_of_its_class_and_forgets_the_first(park: ActorPark) -> None:
    cls = remembering_class()
    first = cls("first", timeout=60)
    assert await first.run(x=1) == ("first", [1])
    assert await first.run(x=2) == ("first", [1, 2])  # the step actor's copy of ``self`` keeps what it appended
    label = _set_label(first)
    await first.close()
    assert len(park) == 1

    second = cls("second", timeout=60)
    ctx = Context(second)  # held: the state of a context that is garbage-collected leaves the context actor
    assert await second.run(ctx=ctx, x=3) == ("second", [3])  # the new instance's ``self``, nothing of the first
    assert _set_label(second) == label  # the same actors, bound again
    context = second._session.runtime.context
    assert context is not None
    assert await context.count() == 1  # the first instance's contexts were forgotten; this run's is the one held
    await second.close()


async def test_a_redefined_class_never_gets_a_set_that_ran_the_old_code(park: ActorPark) -> None:
    old = remembering_class()("old", timeout=60)
    assert await old.run(x=1) == ("old", [1])
    old_label = _set_label(old)
    await old.close()

    new = remembering_class()("new", timeout=60)  # same steps, another class object
    assert await new.run(x=2) == ("new", [2])
    assert _set_label(new) != old_label
    assert len(park) == 1  # the old class's set is still parked, unused
    await new.close()


@pytest.mark.slow  # ~12 s: a spare set starts beside the first; the park's other tests run by default
async def test_a_blank_spare_serves_any_class_of_its_shape() -> None:
    park = ActorPark(sets=2, spares=1, park_s=600)
    previous = install(park)
    try:
        first = remembering_class()("a", timeout=60)
        assert await first.run(x=1) == ("a", [1])
        assert len(park) == 1  # the spare started for the next instance of this shape
        other = remembering_class()("b", timeout=60)  # a redefined class of the same shape takes the blank spare
        assert await other.run(x=2) == ("b", [2])
        assert _set_label(other) not in (_set_label(first), other._session.runtime.label)
        await first.close()
        await other.close()
    finally:
        gc.collect()
        park.drain_sync()
        install(previous)


async def test_instances_dropped_without_close_leave_at_most_the_parks_sets(park: ActorPark) -> None:
    cls = remembering_class()
    for i in range(4):
        wf = cls(str(i), timeout=60)
        assert await wf.run(x=i) == (str(i), [i])
        del wf
        gc.collect()  # its set is parked, or stopped once the park is full
    park.stopped_sync()
    dispatchers = [name for name in live_rayflow_actors() if name.endswith(".dispatcher")]
    assert len(dispatchers) == len(park) == 1  # each new instance took the set the one before released


def test_warm_is_at_most_num_workers() -> None:
    with pytest.raises(WorkflowValidationError, match="warm must be an integer from 1 to num_workers"):

        class TooWarm(Workflow):
            @step(num_workers=2, warm=3)
            async def go(self, ev: StartEvent) -> StopEvent:
                return StopEvent()


async def test_a_warm_pool_starts_its_actors_before_the_first_event() -> None:
    class Warm(Workflow):
        @step(num_workers=3, warm=3)
        async def go(self, ev: StartEvent) -> StopEvent:
            return StopEvent(result="ok")

    async with Warm(timeout=60) as wf:
        assert await wf.run() == "ok"
        label = _set_label(wf)
        assert [name for name in live_rayflow_actors() if name.startswith(f"{label}.go.")] == [
            f"{label}.go.{i}" for i in range(3)
        ]
