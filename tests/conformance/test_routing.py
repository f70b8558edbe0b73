"""Routing: the type of an event decides which steps get it. Branches, unions, loops, ``None``, subclasses,
``ctx.send_event`` (to every step or to one), steps written as free functions, and what a wrong return does."""

from typing import Union

import pytest


async def test_the_returned_event_type_chooses_the_branch(engine):
    class Small(engine.Event):
        n: int

    class Large(engine.Event):
        n: int

    class Sorter(engine.Workflow):
        @engine.step
        async def weigh(self, ev: engine.StartEvent) -> Small | Large:
            return Small(n=ev.n) if ev.n < 10 else Large(n=ev.n)

        @engine.step
        async def pocket(self, ev: Small) -> engine.StopEvent:
            return engine.StopEvent(result=f"pocket {ev.n}")

        @engine.step
        async def truck(self, ev: Large) -> engine.StopEvent:
            return engine.StopEvent(result=f"truck {ev.n}")

    sorter = Sorter()
    assert await sorter.run(n=3) == "pocket 3"
    assert await sorter.run(n=300) == "truck 300"


async def test_union_annotations_route_each_member_type(engine):
    class Tea(engine.Event):
        pass

    class Coffee(engine.Event):
        pass

    class Cafe(engine.Workflow):
        @engine.step
        async def order(self, ev: engine.StartEvent) -> Union[Tea, Coffee]:  # noqa: UP007 - the typing spelling
            return Tea() if ev.drink == "tea" else Coffee()

        @engine.step
        async def brew(self, ev: Tea | Coffee) -> engine.StopEvent:
            return engine.StopEvent(result=type(ev).__name__)

    cafe = Cafe()
    assert await cafe.run(drink="tea") == "Tea"
    assert await cafe.run(drink="coffee") == "Coffee"


async def test_an_event_sent_back_to_an_earlier_step_makes_a_loop(engine):
    class Lap(engine.Event):
        laps: list[int]

    class Checked(engine.Event):
        laps: list[int]

    class Track(engine.Workflow):
        @engine.step
        async def run_lap(self, ev: engine.StartEvent | Lap) -> Checked:
            laps = ev.laps if isinstance(ev, Lap) else []
            return Checked(laps=[*laps, len(laps) + 1])

        @engine.step
        async def check(self, ev: Checked) -> Lap | engine.StopEvent:
            if len(ev.laps) < 4:
                return Lap(laps=ev.laps)
            return engine.StopEvent(result=ev.laps)

    assert await Track().run() == [1, 2, 3, 4]


async def test_a_step_returning_none_emits_nothing(engine):
    class Number(engine.Event):
        value: int

    class Even(engine.Event):
        value: int

    class Filter(engine.Workflow):
        @engine.step
        async def count(self, ctx: engine.Context, ev: engine.StartEvent) -> Number | None:
            for value in range(1, 6):
                ctx.send_event(Number(value=value))
            return None

        @engine.step(num_workers=1)
        async def keep_even(self, ev: Number) -> Even | None:
            return Even(value=ev.value) if ev.value % 2 == 0 else None

        @engine.step
        async def total(self, ctx: engine.Context, ev: Even) -> engine.StopEvent | None:
            kept = ctx.collect_events(ev, [Even, Even])
            if kept is None:
                return None
            return engine.StopEvent(result=sorted(e.value for e in kept))

    assert await Filter().run() == [2, 4]


async def test_accept_event_subclasses_lets_a_step_take_subclasses_of_its_type(engine):
    class Animal(engine.Event):
        name: str

    class Cat(Animal):
        pass

    class Shelter(engine.Workflow):
        @engine.step
        async def arrive(self, ev: engine.StartEvent) -> Cat:
            return Cat(name=ev.name)

        @engine.step(accept_event_subclasses=True)
        async def house(self, ev: Animal) -> engine.StopEvent:
            return engine.StopEvent(result=f"{type(ev).__name__} {ev.name}")

    assert await Shelter().run(name="Tom") == "Cat Tom"

    class StrictShelter(engine.Workflow):
        @engine.step
        async def arrive(self, ev: engine.StartEvent) -> Cat:
            return Cat(name=ev.name)

        @engine.step
        async def house(self, ev: Animal) -> engine.StopEvent:
            return engine.StopEvent(result=ev.name)

    with pytest.raises(engine.WorkflowValidationError, match="never produced: Animal"):
        StrictShelter().run(name="Tom")  # without the flag a Cat is no Animal to the router


async def test_a_step_returning_something_else_than_an_event_fails_the_run_naming_it(engine):
    class Said(engine.Event):
        pass

    class Parrot(engine.Workflow):
        @engine.step
        async def squawk(self, ev: engine.StartEvent) -> Said:
            return "polly"  # not an event

        @engine.step
        async def listen(self, ev: Said) -> engine.StopEvent:
            return engine.StopEvent(result="heard")

    with pytest.raises(engine.WorkflowRuntimeError) as caught:
        await Parrot().run()
    message = str(caught.value)
    assert "squawk" in message
    assert "str" in message
    assert "Event" in message


def _sending_workflow(engine, **options):
    """An office whose ``post`` step sends a note to everyone, or to one step, as the start event says."""

    class Note(engine.Event):
        expected: int

    class Seen(engine.Event):
        by: str
        expected: int

    class Office(engine.Workflow):
        @engine.step
        async def post(self, ctx: engine.Context, ev: engine.StartEvent) -> Note | None:
            if ev.to == "everyone":
                ctx.send_event(Note(expected=2))
            elif ev.to == "nobody-in-particular":
                ctx.send_event(Note(expected=2), step=None)
            else:
                ctx.send_event(Note(expected=1) if ev.to == "left" else Seen(by="post", expected=1), step=ev.to)
            return None

        @engine.step
        async def left(self, ev: Note) -> Seen:
            return Seen(by="left", expected=ev.expected)

        @engine.step
        async def right(self, ev: Note) -> Seen:
            return Seen(by="right", expected=ev.expected)

        @engine.step
        async def tally(self, ctx: engine.Context, ev: Seen) -> engine.StopEvent | None:
            seen = ctx.collect_events(ev, [Seen] * ev.expected)
            if seen is None:
                return None
            return engine.StopEvent(result=sorted(s.by for s in seen))

    return Office(**options)


async def test_send_event_reaches_every_step_accepting_the_type_or_only_a_named_one_that_must_fit(engine):
    office = _sending_workflow(engine, verbose=True)  # verbose only prints what happens
    assert await office.run(to="everyone") == ["left", "right"]
    assert await office.run(to="nobody-in-particular") == ["left", "right"]
    assert await office.run(to="left") == ["left"]

    with pytest.raises(engine.WorkflowRuntimeError, match="upstairs does not exist"):
        await office.run(to="upstairs")
    with pytest.raises(engine.WorkflowRuntimeError, match="right does not accept") as caught:
        await office.run(to="right")  # right takes a Note; it is sent a Seen
    assert "Seen" in str(caught.value)


async def test_a_free_function_decorated_for_a_workflow_is_one_of_its_steps(engine):
    class Greeted(engine.Event):
        who: str

    class Greeter(engine.Workflow):
        @engine.step
        async def greet(self, ev: engine.StartEvent) -> Greeted:
            return Greeted(who=ev.who)

    @engine.step(workflow=Greeter)
    async def wave(ev: Greeted) -> engine.StopEvent:
        return engine.StopEvent(result=f"waving at {ev.who}")

    assert await Greeter().run(who="the neighbours") == "waving at the neighbours"
