"""Conformance: the run's stream, ``ctx.write_event_to_stream`` and ``handler.stream_events()``.

The stream yields what steps wrote, in order, then the event that ended the run (the StopEvent, or the
failure, timeout or cancel event) and ends; it can be read once; every run has its own stream.
"""

import asyncio

import pytest


async def test_written_events_stream_in_order_the_stop_event_comes_last_and_the_stream_reads_once(engine):
    class Token(engine.Event):
        text: str
        index: int

    class Chat(engine.Workflow):
        @engine.step
        async def speak(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            words = "streams keep the order of writing".split()
            for i, word in enumerate(words):
                ctx.write_event_to_stream(Token(text=word, index=i))
            return engine.StopEvent(result=len(words))

    handler = Chat().run()
    streamed = [ev async for ev in handler.stream_events()]
    assert [type(ev).__name__ for ev in streamed] == ["Token"] * 6 + ["StopEvent"]
    assert " ".join(ev.text for ev in streamed[:-1]) == "streams keep the order of writing"
    assert [ev.index for ev in streamed[:-1]] == list(range(6))
    assert streamed[-1].result == 6
    with pytest.raises(engine.WorkflowRuntimeError, match="already been consumed"):
        async for _ in handler.stream_events():
            pass
    assert await handler == 6


async def test_steps_stream_in_the_order_they_run_and_routed_events_are_not_streamed(engine):
    class Progress(engine.Event):
        stage: str

    class Middle(engine.Event):
        pass

    class Stages(engine.Workflow):
        @engine.step
        async def first(self, ctx: engine.Context, ev: engine.StartEvent) -> Middle:
            ctx.write_event_to_stream(Progress(stage="first:begin"))
            ctx.write_event_to_stream(engine.Event(msg="a plain event", count=2))
            ctx.write_event_to_stream(Progress(stage="first:end"))
            return Middle()

        @engine.step
        async def second(self, ctx: engine.Context, ev: Middle) -> engine.StopEvent:
            ctx.write_event_to_stream(Progress(stage="second"))
            return engine.StopEvent(result="done")

    handler = Stages().run()
    streamed = [ev async for ev in handler.stream_events()]
    assert [type(ev).__name__ for ev in streamed] == ["Progress", "Event", "Progress", "Progress", "StopEvent"]
    assert [ev.stage for ev in streamed if isinstance(ev, Progress)] == ["first:begin", "first:end", "second"]
    plain = streamed[1]
    assert (plain.msg, plain["count"], "msg" in plain) == ("a plain event", 2, True)
    assert await handler == "done"


async def test_a_failing_step_streams_what_it_wrote_then_a_failed_event_naming_it(engine):
    class Partial(engine.Event):
        part: int

    class Breaks(engine.Workflow):
        @engine.step
        async def produce(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            ctx.write_event_to_stream(Partial(part=1))
            ctx.write_event_to_stream(Partial(part=2))
            raise ValueError("the producer broke after two parts")

    handler = Breaks().run()
    streamed = [ev async for ev in handler.stream_events()]
    assert [ev.part for ev in streamed[:-1]] == [1, 2]
    failed = streamed[-1]
    assert isinstance(failed, engine.WorkflowFailedEvent)
    assert failed.step_name == "produce"
    assert isinstance(failed.exception, ValueError)
    assert str(failed.exception) == "the producer broke after two parts"
    with pytest.raises(ValueError, match="the producer broke after two parts"):
        await handler


async def test_a_timed_out_run_ends_its_stream_with_a_timed_out_event(engine):
    class Begun(engine.Event):
        pass

    class Slow(engine.Workflow):
        @engine.step
        async def wait_long(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            ctx.write_event_to_stream(Begun())
            await asyncio.sleep(30)
            return engine.StopEvent(result="too late")

    handler = Slow(timeout=1.0).run()
    streamed = [ev async for ev in handler.stream_events()]
    assert [type(ev).__name__ for ev in streamed] == ["Begun", "WorkflowTimedOutEvent"]
    assert streamed[-1].timeout == 1.0
    assert streamed[-1].active_steps == ["wait_long"]
    with pytest.raises(engine.WorkflowTimeoutError, match=r"Operation timed out after 1\.0 seconds"):
        await handler


async def test_a_cancelled_run_ends_its_stream_with_a_cancelled_event(engine):
    class Begun(engine.Event):
        pass

    class Endless(engine.Workflow):
        @engine.step
        async def wait_long(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            ctx.write_event_to_stream(Begun())
            await asyncio.sleep(30)
            return engine.StopEvent(result="never")

    handler = Endless(timeout=None).run()
    streamed = []
    async for ev in handler.stream_events():
        streamed.append(type(ev).__name__)
        if isinstance(ev, Begun):
            await handler.cancel_run()
    assert streamed == ["Begun", "WorkflowCancelledEvent"]
    with pytest.raises(engine.WorkflowCancelledByUser):
        await handler


async def test_each_run_streams_only_its_own_events(engine):
    class Tagged(engine.Event):
        tag: str

    class Echo(engine.Workflow):
        @engine.step(num_workers=2)
        async def echo(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            for i in range(3):
                ctx.write_event_to_stream(Tagged(tag=f"{ev.name}-{i}"))
            return engine.StopEvent(result=ev.name)

    workflow = Echo()
    first, second = workflow.run(name="a"), workflow.run(name="b")
    first_tags = [ev.tag async for ev in first.stream_events() if isinstance(ev, Tagged)]
    second_tags = [ev.tag async for ev in second.stream_events() if isinstance(ev, Tagged)]
    assert (first_tags, second_tags) == (["a-0", "a-1", "a-2"], ["b-0", "b-1", "b-2"])
    assert await asyncio.gather(first, second) == ["a", "b"]

    third = workflow.run(name="c")
    assert [ev.tag async for ev in third.stream_events() if isinstance(ev, Tagged)] == ["c-0", "c-1", "c-2"]
    assert await third == "c"
