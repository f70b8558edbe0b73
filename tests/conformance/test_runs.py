"""Running a workflow: what ``await handler`` gives, custom start and stop events, how the start event is made
from ``run()``'s arguments, a step's error reaching the caller, sync steps, and what a workflow says about itself."""

import gc
import logging
import weakref

import pytest
from run_helpers import whole_stream


async def test_a_chain_of_steps_runs_in_order_and_the_last_result_is_awaited(engine):
    class Drafted(engine.Event):
        text: str

    class Reviewed(engine.Event):
        text: str

    class Stage(engine.Event):
        name: str

    class Newsroom(engine.Workflow):
        @engine.step
        async def draft(self, ctx: engine.Context, ev: engine.StartEvent) -> Drafted:
            ctx.write_event_to_stream(Stage(name="draft"))
            return Drafted(text=ev.headline.upper())

        @engine.step
        async def review(self, ctx: engine.Context, ev: Drafted) -> Reviewed:
            ctx.write_event_to_stream(Stage(name="review"))
            return Reviewed(text=ev.text + "!")

        @engine.step
        async def publish(self, ctx: engine.Context, ev: Reviewed) -> engine.StopEvent:
            ctx.write_event_to_stream(Stage(name="publish"))
            return engine.StopEvent(result={"front page": ev.text})

    handler = Newsroom().run(headline="rain again")
    assert isinstance(handler, engine.handler.WorkflowHandler)
    streamed = await whole_stream(handler)
    assert [ev.name for ev in streamed[:-1]] == ["draft", "review", "publish"]
    assert type(streamed[-1]) is engine.StopEvent
    assert await handler == {"front page": "RAIN AGAIN!"}


async def test_a_custom_start_event_is_built_from_run_kwargs_and_a_custom_stop_event_is_the_result(engine):
    class Order(engine.StartEvent):
        item: str
        quantity: int = 1

    class Receipt(engine.StopEvent):
        line: str

    class Till(engine.Workflow):
        @engine.step
        async def sell(self, ev: Order) -> Receipt:
            return Receipt(line=f"{ev.quantity} x {ev.item}")

    till = Till()
    receipt = await till.run(item="tea", quantity=2)
    assert type(receipt) is Receipt
    assert receipt.line == "2 x tea"

    handler = till.run(start_event=Order(item="cake"))
    streamed = await whole_stream(handler)
    assert [type(ev) for ev in streamed] == [Receipt]
    assert (await handler).line == "1 x cake"


async def test_kwargs_given_with_a_start_event_are_ignored_with_a_warning(engine, caplog):
    class Echo(engine.Workflow):
        @engine.step
        async def echo(self, ev: engine.StartEvent) -> engine.StopEvent:
            return engine.StopEvent(result=sorted(ev.keys()))

    with caplog.at_level(logging.WARNING):
        result = await Echo().run(start_event=engine.StartEvent(kept=1), dropped_on_purpose=2)
    assert result == ["kept"]
    assert "start_event" in caplog.text
    assert "ignored" in caplog.text
    assert "dropped_on_purpose" in caplog.text


async def test_run_refuses_a_start_event_that_is_not_one(engine):
    class Echo(engine.Workflow):
        @engine.step
        async def echo(self, ev: engine.StartEvent) -> engine.StopEvent:
            return engine.StopEvent(result=None)

    with pytest.raises(ValueError, match="StartEvent"):
        Echo().run(start_event=engine.Event(looks="similar"))


async def test_kwargs_that_do_not_fit_the_custom_start_event_fail_in_run_naming_it(engine):
    class Booking(engine.StartEvent):
        guest: str

    class Hotel(engine.Workflow):
        @engine.step
        async def book(self, ev: Booking) -> engine.StopEvent:
            return engine.StopEvent(result=ev.guest)

    hotel = Hotel()
    with pytest.raises(engine.WorkflowRuntimeError) as caught:
        hotel.run(room=12)  # raised by run() itself: no handler, no run
    assert "Booking" in str(caught.value)
    assert "room" in str(caught.value)


class OutOfStock(Exception):
    """An error of the user's own, which must reach the caller as itself."""


async def test_a_step_error_reaches_the_caller_with_its_own_type_and_message(engine):
    class Picker(engine.Workflow):
        @engine.step
        async def pick(self, ev: engine.StartEvent) -> engine.StopEvent:
            if ev.kind == "builtin":
                raise KeyError("shelf 7")
            raise OutOfStock(f"no {ev.item} left")

    picker = Picker()
    with pytest.raises(KeyError, match="shelf 7"):
        await picker.run(kind="builtin")
    with pytest.raises(OutOfStock, match="no tea left") as caught:
        await picker.run(kind="own", item="tea")
    assert type(caught.value) is OutOfStock


async def test_sync_steps_mix_with_async_ones_and_can_collect_events(engine):
    class Part(engine.Event):
        label: str

    class Workshop(engine.Workflow):
        @engine.step
        async def split(self, ctx: engine.Context, ev: engine.StartEvent) -> Part:
            ctx.send_event(Part(label="wheel"))
            return Part(label="frame")

        @engine.step
        def assemble(self, ctx: engine.Context, ev: Part) -> engine.StopEvent | None:
            parts = ctx.collect_events(ev, [Part, Part])
            if parts is None:
                return None
            return engine.StopEvent(result="+".join(sorted(p.label for p in parts)))

    assert await Workshop().run() == "frame+wheel"


async def test_a_workflow_names_its_start_and_stop_event_types_and_its_events(engine):
    class Ask(engine.StartEvent):
        question: str

    class Looked(engine.Event):
        found: bool

    class Answer(engine.StopEvent):
        text: str

    class Oracle(engine.Workflow):
        @engine.step
        async def look(self, ev: Ask) -> Looked:
            return Looked(found=True)

        @engine.step
        async def tell(self, ev: Looked) -> Answer:
            return Answer(text="yes")

    oracle = Oracle()
    assert oracle.start_event_class is Ask
    assert oracle.stop_event_class is Answer
    assert sorted(e.__name__ for e in oracle.events) == ["Answer", "Ask", "Looked"]

    class Plain(engine.Workflow):
        @engine.step
        async def only(self, ev: engine.StartEvent) -> engine.StopEvent:
            return engine.StopEvent()

    assert Plain().start_event_class is engine.StartEvent
    assert Plain().stop_event_class is engine.StopEvent


async def test_a_workflow_whose_runs_ended_is_garbage_collected_once_dropped(engine):
    class Brief(engine.Workflow):
        @engine.step
        async def only(self, ev: engine.StartEvent) -> engine.StopEvent:
            return engine.StopEvent(result=ev.n)

    refs = []
    for n in range(2):
        workflow = Brief()
        refs.append(weakref.ref(workflow))
        assert await workflow.run(n=n) == n
        del workflow
    gc.collect()
    assert [ref() for ref in refs] == [None, None]


@pytest.mark.differs("self is copied into each step actor: what a step sets on self stays on that actor's copy")
async def test_what_a_step_sets_on_self_is_seen_by_the_callers_instance(engine):
    class Ledger(engine.Workflow):
        def __init__(self, **options):
            super().__init__(**options)
            self.entries = []

        @engine.step
        async def book(self, ev: engine.StartEvent) -> engine.StopEvent:
            self.entries.append(ev.amount)
            return engine.StopEvent(result=len(self.entries))

    ledger = Ledger()
    assert await ledger.run(amount=5) == 1
    assert await ledger.run(amount=7) == 2
    assert ledger.entries == [5, 7]
