"""``ctx.wait_for_event``: the same workflows on rayflow and on LlamaIndex Workflows, with the same outcomes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import pytest

pytestmark = pytest.mark.usefixtures("ray_env")


def _api(engine: str) -> SimpleNamespace:
    if engine == "llamaindex":
        import workflows as wf
        import workflows.errors as errors
        import workflows.events as events
    else:
        import rayflow as wf
        import rayflow.errors as errors
        import rayflow.events as events
    return SimpleNamespace(
        Workflow=wf.Workflow, step=wf.step, Context=wf.Context, Event=events.Event, StartEvent=events.StartEvent,
        StopEvent=events.StopEvent, InputRequiredEvent=events.InputRequiredEvent,
        HumanResponseEvent=events.HumanResponseEvent, WorkflowCancelledByUser=errors.WorkflowCancelledByUser,
    )  # fmt: skip


def _workflows(engine: str) -> SimpleNamespace:
    """Workflow classes built on one engine's API (the code is the same for both, only the imports differ)."""
    api = _api(engine)
    Context, StartEvent, StopEvent, step = api.Context, api.StartEvent, api.StopEvent, api.step

    class Answer(api.HumanResponseEvent):
        user: str = ""

    class Ask(api.Workflow):
        @step
        async def ask(self, ctx: Context, ev: StartEvent) -> StopEvent:
            # Work before the wait runs again when the step reruns: the count shows it.
            await ctx.store.set("runs", await ctx.store.get("runs", default=0) + 1)
            got = await ctx.wait_for_event(
                Answer,
                waiter_event=api.InputRequiredEvent(prefix="name?"),
                requirements={"user": "bob"},
                timeout=ev.get("wait_s", 60.0),
            )
            return StopEvent(result=(got.response, await ctx.store.get("runs")))

    class TwoQuestions(api.Workflow):
        @step
        async def ask(self, ctx: Context, ev: StartEvent) -> StopEvent:
            first = await ctx.wait_for_event(
                Answer, waiter_event=api.InputRequiredEvent(prefix="first?"), waiter_id="a", requirements={"user": "a"}
            )
            second = await ctx.wait_for_event(
                Answer, waiter_event=api.InputRequiredEvent(prefix="second?"), waiter_id="b", requirements={"user": "b"}
            )
            return StopEvent(result=[first.response, second.response])

    return SimpleNamespace(Answer=Answer, Ask=Ask, TwoQuestions=TwoQuestions, api=api)


async def _answer_on_the_stream(handler: Any, reply: Any, input_required: type) -> list[str]:
    """Answer each question the run puts on its stream; the prefixes of the questions, in order."""
    asked = []
    async for ev in handler.stream_events():
        if isinstance(ev, input_required):
            asked.append(ev.prefix)
            for answer in reply(ev):
                handler.ctx.send_event(answer)
    return asked


@asynccontextmanager
async def _closing(wf: Any) -> AsyncIterator[Any]:
    """The workflow, closed at the end on rayflow (a LlamaIndex workflow has nothing to close)."""
    try:
        yield wf
    finally:
        if hasattr(wf, "close"):
            await wf.close()


@pytest.fixture(params=["rayflow", "llamaindex"])
def engine(request: pytest.FixtureRequest) -> SimpleNamespace:
    return _workflows(request.param)


async def test_a_step_waits_for_the_answer_that_meets_its_requirements(engine: SimpleNamespace) -> None:
    Answer, api = engine.Answer, engine.api
    async with _closing(engine.Ask(timeout=30)) as wf:
        handler = wf.run()
        answers = [Answer(response="no", user="alice"), Answer(response="yes", user="bob")]
        asked = await _answer_on_the_stream(handler, lambda ev: answers, api.InputRequiredEvent)
        # alice's answer does not meet the requirements and no step takes it: it is ignored, as in LlamaIndex.
        assert asked == ["name?"]
        assert await handler == ("yes", 2)  # the step ran twice: once to the wait, once with the answer


async def test_waits_one_after_the_other_with_their_own_ids(engine: SimpleNamespace) -> None:
    Answer, api = engine.Answer, engine.api
    user = {"first?": "a", "second?": "b"}
    async with _closing(engine.TwoQuestions(timeout=30)) as wf:
        handler = wf.run()
        asked = await _answer_on_the_stream(
            handler, lambda ev: [Answer(response=ev.prefix.upper(), user=user[ev.prefix])], api.InputRequiredEvent
        )
        assert asked == ["first?", "second?"]  # each question once, though the step reran after the first answer
        assert await handler == ["FIRST?", "SECOND?"]


async def test_a_wait_that_times_out_raises_in_the_step(engine: SimpleNamespace) -> None:
    async with _closing(engine.Ask(timeout=30)) as wf:
        with pytest.raises(asyncio.TimeoutError, match="Timed out waiting for Answer"):
            await wf.run(wait_s=0.2)


async def test_wait_for_event_outside_a_step_says_so() -> None:
    from rayflow import Context
    from rayflow.errors import ContextStateError

    async with _workflows("rayflow").Ask() as wf:
        with pytest.raises(ContextStateError, match="only works inside a step"):
            await Context(wf).wait_for_event(_workflows("rayflow").Answer)


async def test_a_paused_step_survives_a_snapshot_and_resumes_with_the_answer() -> None:
    """rayflow only: LlamaIndex's snapshot names event classes by import path, and these are defined in a function."""
    import json

    engine = _workflows("rayflow")
    Answer, api = engine.Answer, engine.api
    async with _closing(engine.Ask(timeout=30)) as wf:
        handler = wf.run()
        async for ev in handler.stream_events():
            if isinstance(ev, api.InputRequiredEvent):
                snapshot = json.loads(json.dumps(handler.ctx.to_dict()))  # plain JSON, as it would be stored
                await handler.cancel_run()
                break
        with pytest.raises(api.WorkflowCancelledByUser):
            await handler
        resumed = wf.run(ctx=api.Context.from_dict(wf, snapshot))
        asked = await _answer_on_the_stream(
            resumed, lambda ev: [Answer(response="resumed", user="bob")], api.InputRequiredEvent
        )
        assert asked == ["name?"]  # the wait asks again after the resume
        assert await resumed == ("resumed", 2)
