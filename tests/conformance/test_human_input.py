"""A human in the loop: a step asks with an ``InputRequiredEvent`` (it goes to the stream), the caller answers
with ``handler.ctx.send_event(HumanResponseEvent(...))``. A run waiting for an answer can be snapshotted with
``ctx.to_dict()``, cancelled, and resumed later from ``Context.from_dict`` without asking again."""

import asyncio

import pytest
from run_helpers import whole_stream


def _survey(engine, **options):
    """A one-question survey: ``ask`` asks, ``record`` ends the run with the answer; each counts its runs."""

    class Topic(engine.StartEvent):
        subject: str

    class Survey(engine.Workflow):
        @engine.step
        async def ask(self, ctx: engine.Context, ev: Topic) -> engine.InputRequiredEvent:
            await ctx.store.set("asked", await ctx.store.get("asked", default=0) + 1)
            return engine.InputRequiredEvent(prefix=f"Your view on {ev.subject}? ")

        @engine.step
        async def record(self, ctx: engine.Context, ev: engine.HumanResponseEvent) -> engine.StopEvent:
            await ctx.store.set("recorded", await ctx.store.get("recorded", default=0) + 1)
            return engine.StopEvent(result=f"noted: {ev.response}")

    return Survey(**options)


async def test_the_caller_answers_an_input_request_from_the_stream_and_an_unanswered_one_times_out(engine):
    survey = _survey(engine, timeout=2)

    handler = survey.run(subject="tides")
    prompts = []
    async for ev in handler.stream_events():
        if isinstance(ev, engine.InputRequiredEvent):
            prompts.append(ev.prefix)
            handler.ctx.send_event(engine.HumanResponseEvent(response="fine"))
    assert prompts == ["Your view on tides? "]
    assert await handler == "noted: fine"

    unanswered = survey.run(subject="taxes")
    streamed = await whole_stream(unanswered)
    assert [type(ev) for ev in streamed] == [engine.InputRequiredEvent, engine.WorkflowTimedOutEvent]
    with pytest.raises(engine.WorkflowTimeoutError):
        await unanswered


async def _until_asked(handler, engine):
    async for ev in handler.stream_events():
        if isinstance(ev, engine.InputRequiredEvent):
            return ev
    raise AssertionError("the run ended without asking")


async def _resume_and_answer(engine, survey, snapshot):
    resumed = survey.run(ctx=engine.Context.from_dict(survey, snapshot))
    resumed.ctx.send_event(engine.HumanResponseEvent(response="later"))
    streamed = await whole_stream(resumed)
    assert await resumed == "noted: later"
    counts = (await resumed.ctx.store.get("asked"), await resumed.ctx.store.get("recorded"))
    return streamed, counts


async def test_a_run_snapshotted_while_waiting_for_input_resumes_without_asking_again(engine):
    survey = _survey(engine, timeout=10)
    handler = survey.run(subject="tides")
    await asyncio.wait_for(_until_asked(handler, engine), timeout=20)
    snapshot = handler.ctx.to_dict()
    await handler.cancel_run()
    with pytest.raises(engine.WorkflowCancelledByUser):
        await handler

    streamed, counts = await _resume_and_answer(engine, survey, snapshot)
    assert streamed == [engine.StopEvent(result="noted: later")]
    assert counts == (1, 1)


async def test_a_snapshot_taken_after_cancelling_still_holds_the_waiting_run(engine):
    survey = _survey(engine, timeout=10)
    handler = survey.run(subject="tides")
    await asyncio.wait_for(_until_asked(handler, engine), timeout=20)
    await handler.cancel_run()
    snapshot = handler.ctx.to_dict()
    assert snapshot["is_running"] is True

    streamed, counts = await _resume_and_answer(engine, survey, snapshot)
    assert streamed == [engine.StopEvent(result="noted: later")]
    assert counts == (1, 1)


@pytest.mark.differs("an event no step accepts fails the run, naming it (README: a caller's answer no wait waits for)")
async def test_an_answer_sent_while_nothing_waits_for_it_is_dropped(engine):
    class Ready(engine.Event):
        pass

    class NoWait(engine.Workflow):
        @engine.step
        async def work(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            ctx.write_event_to_stream(Ready())
            for _ in range(3000):  # until the caller has answered (30 s at most)
                if await ctx.store.get("answered", default=False):
                    break
                await asyncio.sleep(0.01)
            return engine.StopEvent(result="done")

    handler = NoWait(timeout=60).run()
    async for event in handler.stream_events():
        if isinstance(event, Ready):
            handler.ctx.send_event(engine.HumanResponseEvent(response="early"))
            await handler.ctx.store.set("answered", True)
    assert await handler == "done"
