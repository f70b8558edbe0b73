"""Conformance: the fan-out and join API of LlamaIndex Workflows 2.22+.

A step returning ``list[E]`` sends each event on by itself; a step with a ``list[E]`` parameter joins them once the
list's work is over (``Collect(All())``, the default) or at the n-th event (``Collect(Take(n))``), with the events
in the order they arrived; ``return []`` joins with ``[]``; streams nest; a step with several event parameters runs
once one event of each has arrived, pairing the oldest of each. A single event whose type the annotation has only
inside a list fails the run; a join that no list feeds is refused before the run starts.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import Annotated, Any

import pytest


def _collect(engine: Any) -> Any:
    """The engine's ``collect`` module (``Collect``, ``Take``): ``workflows.collect`` or ``rayflow.collect``."""
    return importlib.import_module(f"{engine.package.__name__}.collect")


async def test_a_returned_list_fans_out_and_its_join_gets_what_its_work_returned(engine):
    class Part(engine.Event):
        i: int

    class Done(engine.Event):
        i: int

    class Fan(engine.Workflow):
        @engine.step
        async def split(self, ev: engine.StartEvent) -> list[Part]:
            return [Part(i=i) for i in range(ev.n)]

        @engine.step(num_workers=4)
        async def work(self, ev: Part) -> Done | None:
            await asyncio.sleep(0.01 * (ev.i % 3))
            return None if ev.i == 2 else Done(i=ev.i)  # a member whose work returns nothing is not joined

        @engine.step
        async def join(self, done: list[Done]) -> engine.StopEvent:
            return engine.StopEvent(result=sorted(d.i for d in done))

    workflow = Fan(timeout=60)
    assert await workflow.run(n=6) == [0, 1, 3, 4, 5]
    assert await workflow.run(n=0) == []  # an empty list joins at once, with nothing


async def test_a_join_of_the_list_itself_gets_its_events_in_order_whatever_their_types(engine):
    class A(engine.Event):
        i: int

    class B(engine.Event):
        i: int

    class Mixed(engine.Workflow):
        @engine.step
        async def split(self, ev: engine.StartEvent) -> list[A | B]:
            return [A(i=0), B(i=1), A(i=2)]

        @engine.step
        async def join(self, events: list[A | B]) -> engine.StopEvent:
            return engine.StopEvent(result=[(type(e).__name__, e.i) for e in events])

    assert await Mixed(timeout=60).run() == [("A", 0), ("B", 1), ("A", 2)]


async def test_take_runs_the_join_once_with_the_first_n_events(engine):
    collect = _collect(engine)

    class Part(engine.Event):
        i: int

    class Done(engine.Event):
        i: int

    class Fastest(engine.Workflow):
        @engine.step
        async def split(self, ev: engine.StartEvent) -> list[Part]:
            return [Part(i=i) for i in range(5)]

        @engine.step(num_workers=5)
        async def work(self, ev: Part) -> Done:
            return Done(i=ev.i)

        @engine.step
        async def first_two(
            self, ctx: engine.Context, done: Annotated[list[Done], collect.Collect(collect.Take(2))]
        ) -> engine.StopEvent:
            await ctx.store.set("joins", await ctx.store.get("joins", default=0) + 1)
            return engine.StopEvent(result=[d.i for d in done])

    handler = Fastest(timeout=60).run()
    result = await handler
    assert len(result) == 2 and len(set(result)) == 2 and set(result) <= set(range(5))
    assert await handler.ctx.store.get("joins") == 1


async def test_take_with_fewer_events_than_n_joins_those_there_are(engine):
    collect = _collect(engine)

    class Part(engine.Event):
        i: int

    class Few(engine.Workflow):
        @engine.step
        async def split(self, ev: engine.StartEvent) -> list[Part]:
            return [Part(i=0), Part(i=1)]

        @engine.step
        async def join(self, parts: Annotated[list[Part], collect.Collect(collect.Take(5))]) -> engine.StopEvent:
            return engine.StopEvent(result=[p.i for p in parts])

    assert await Few(timeout=60).run() == [0, 1]


async def test_streams_nest_each_join_taking_its_own_list(engine):
    class Doc(engine.Event):
        i: int

    class Chunk(engine.Event):
        i: int
        j: int

    class Embedded(engine.Event):
        i: int
        j: int

    class DocDone(engine.Event):
        i: int
        chunks: list[int]

    class Nested(engine.Workflow):
        @engine.step
        async def docs(self, ev: engine.StartEvent) -> list[Doc]:
            return [Doc(i=i) for i in range(3)]

        @engine.step(num_workers=3)
        async def chunks(self, ev: Doc) -> list[Chunk]:
            return [Chunk(i=ev.i, j=j) for j in range(ev.i + 1)]

        @engine.step(num_workers=4)
        async def embed(self, ev: Chunk) -> Embedded:
            await asyncio.sleep(0.01 * ((ev.i + ev.j) % 3))
            return Embedded(i=ev.i, j=ev.j)

        @engine.step(num_workers=3)
        async def per_doc(self, parts: list[Embedded]) -> DocDone:
            assert len({p.i for p in parts}) == 1  # one document's chunks, never another's
            return DocDone(i=parts[0].i, chunks=sorted(p.j for p in parts))

        @engine.step
        async def all_docs(self, docs: list[DocDone]) -> engine.StopEvent:
            return engine.StopEvent(result=sorted((d.i, d.chunks) for d in docs))

    assert await Nested(timeout=60).run() == [(0, [0]), (1, [0, 1]), (2, [0, 1, 2])]


async def test_a_step_of_several_event_parameters_pairs_the_oldest_of_each(engine):
    class Left(engine.Event):
        i: int

    class Right(engine.Event):
        i: int

    class Pair(engine.Event):
        left: int
        right: int

    class Pairs(engine.Workflow):
        @engine.step
        async def start(self, ctx: engine.Context, ev: engine.StartEvent) -> Left | Right | None:
            for event in (Left(i=1), Left(i=2), Right(i=10), Right(i=20)):
                ctx.send_event(event)
            return None

        @engine.step(num_workers=1)
        async def pair(self, ctx: engine.Context, left: Left, right: Right) -> engine.StopEvent | None:
            ctx.write_event_to_stream(Pair(left=left.i, right=right.i))
            seen = await ctx.store.get("pairs", default=0) + 1
            await ctx.store.set("pairs", seen)
            return engine.StopEvent(result=seen) if seen == 2 else None

    handler = Pairs(timeout=60).run()
    pairs = [(e.left, e.right) async for e in handler.stream_events() if isinstance(e, Pair)]
    assert await handler == 2
    assert pairs == [(1, 10), (2, 20)]


async def test_two_parameters_of_one_type_take_its_events_in_the_order_they_arrive(engine):
    class Question(engine.Event):
        i: int

    class Pair(engine.Event):
        first: int
        second: int

    class Pairs(engine.Workflow):
        @engine.step
        async def start(self, ctx: engine.Context, ev: engine.StartEvent) -> Question | None:
            for i in range(4):
                ctx.send_event(Question(i=i))
            return None

        @engine.step(num_workers=1)
        async def pair(self, first: Question, second: Question) -> Pair:
            return Pair(first=first.i, second=second.i)

        @engine.step(num_workers=1)
        async def gather(self, ctx: engine.Context, ev: Pair) -> engine.StopEvent | None:
            pairs = ctx.collect_events(ev, [Pair, Pair])
            return None if pairs is None else engine.StopEvent(result=[(p.first, p.second) for p in pairs])

    assert await Pairs(timeout=60).run() == [(0, 1), (2, 3)]


def test_a_union_in_one_of_several_event_parameters_is_refused_at_decoration(api):
    class Left(api.Event):
        i: int

    class Right(api.Event):
        i: int

    class Other(api.Event):
        i: int

    with pytest.raises(api.WorkflowValidationError, match="'either'"):

        class Both(api.Workflow):
            @api.step
            async def both(self, either: Left | Right, other: Other) -> api.StopEvent:
                return api.StopEvent()


async def test_a_single_event_of_a_type_declared_only_in_a_list_fails_the_run(engine):
    class Part(engine.Event):
        i: int

    class Bare(engine.Workflow):
        @engine.step
        async def split(self, ev: engine.StartEvent) -> list[Part]:
            return Part(i=0)  # type: ignore[return-value]

        @engine.step
        async def join(self, parts: list[Part]) -> engine.StopEvent:
            return engine.StopEvent(result=len(parts))

    with pytest.raises(engine.WorkflowRuntimeError, match="Part"):
        await Bare(timeout=60).run()


async def test_a_single_event_of_a_type_also_declared_alone_goes_on_as_one_event(engine):
    class Part(engine.Event):
        i: int

    class Shortcut(engine.Event):
        note: str

    class Either(engine.Workflow):
        @engine.step
        async def split(self, ev: engine.StartEvent) -> list[Part] | Shortcut:
            return Shortcut(note="no list") if ev.short else [Part(i=0), Part(i=1)]

        @engine.step
        async def join(self, parts: list[Part]) -> engine.StopEvent:
            return engine.StopEvent(result=len(parts))

        @engine.step
        async def shortcut(self, ev: Shortcut) -> engine.StopEvent:
            return engine.StopEvent(result=ev.note)

    workflow = Either(timeout=60)
    assert await workflow.run(short=True) == "no list"
    assert await workflow.run(short=False) == 2


async def test_a_join_no_returned_list_feeds_is_refused_before_the_run(engine):
    class Done(engine.Event):
        i: int

    class Orphan(engine.Workflow):
        @engine.step
        async def start(self, ev: engine.StartEvent) -> Done:
            return Done(i=1)

        @engine.step
        async def join(self, done: list[Done]) -> engine.StopEvent:
            return engine.StopEvent(result=len(done))

    with pytest.raises(engine.WorkflowValidationError, match="join"):
        await Orphan(timeout=60).run()


async def test_an_event_sent_with_send_event_inside_a_list_never_joins_it(engine):
    class Part(engine.Event):
        i: int

    class Done(engine.Event):
        i: int

    class Sends(engine.Workflow):
        @engine.step
        async def split(self, ev: engine.StartEvent) -> list[Part]:
            return [Part(i=i) for i in range(3)]

        @engine.step
        async def work(self, ctx: engine.Context, ev: Part) -> Done:
            if ev.i == 0:
                ctx.send_event(Done(i=99))  # not one of the list's results: the join does not take it
            return Done(i=ev.i)

        @engine.step
        async def join(self, done: list[Done]) -> engine.StopEvent:
            return engine.StopEvent(result=sorted(d.i for d in done))

    handler = Sends(timeout=60).run()
    assert await handler == [0, 1, 2]
