"""The engine on a real Ray cluster: routing, state, streaming, errors and the life of the actors."""

from __future__ import annotations

import asyncio
import threading
import warnings

import pytest
from work_events import Done, Work

from rayflow import (
    Context,
    Event,
    HumanResponseEvent,
    InputRequiredEvent,
    StartEvent,
    StepFailedEvent,
    StopEvent,
    Workflow,
    WorkflowCancelledByUser,
    WorkflowFailedEvent,
    WorkflowRuntimeError,
    WorkflowTimedOutEvent,
    WorkflowTimeoutError,
    catch_error,
    step,
)
from rayflow.retry_policy import retry_policy, stop_after_attempt, wait_fixed
from tests.conftest import live_rayflow_actors

pytestmark = pytest.mark.usefixtures("ray_env")


class QueryEvent(Event):
    query: str


class SimpleEvent(Event):
    query: str


class ComplexEvent(Event):
    query: str


class Progress(Event):
    message: str


class Loop(Event):
    n: int


class LegacyStateWorkflow(Workflow):
    @step
    async def keep(self, ctx: Context, ev: StartEvent) -> QueryEvent:
        question = ev.get("question")
        await ctx.set("asked", question)
        return QueryEvent(query=question.upper())

    @step
    async def answer(self, ctx: Context, ev: QueryEvent) -> StopEvent:
        asked = await ctx.get("asked")
        return StopEvent(result=f"answer: {ev.query} ({asked})")


async def test_two_steps_share_a_value_through_the_legacy_ctx_set_get():
    async with LegacyStateWorkflow(timeout=60, verbose=True) as wf:
        assert await wf.run(question="What is RAG?") == "answer: WHAT IS RAG? (What is RAG?)"


class Routing(Workflow):
    @step
    async def classify(self, ev: StartEvent) -> SimpleEvent | ComplexEvent:
        query = ev.get("query", "")
        return SimpleEvent(query=query) if len(query.split()) < 5 else ComplexEvent(query=query)

    @step
    async def simple(self, ev: SimpleEvent) -> StopEvent:
        return StopEvent(result=f"[simple] {ev.query}")

    @step
    async def complex(self, ev: ComplexEvent) -> StopEvent:
        return StopEvent(result=f"[complex] {ev.query}")


async def test_branching_by_return_type_and_a_second_run_starts_no_actor():
    async with Routing() as wf:
        assert await wf.run(query="hi") == "[simple] hi"
        actors = live_rayflow_actors()
        assert await wf.run(query="a much longer question than that") == "[complex] a much longer question than that"
        assert live_rayflow_actors() == actors
        (label,) = [a.removesuffix(".dispatcher") for a in actors if a.endswith(".dispatcher")]
        assert label.startswith("rayflow.Routing.")  # actors are named after the workflow class
        assert f"{label}.context" in actors and f"{label}.classify.0" in actors
    assert not live_rayflow_actors()


class Looping(Workflow):
    @step
    async def begin(self, ev: StartEvent) -> Loop:
        return Loop(n=0)

    @step
    def again(self, ev: Loop) -> Loop | StopEvent:  # a sync step without ctx
        return StopEvent(result=ev.n) if ev.n >= ev_limit else Loop(n=ev.n + 1)


ev_limit = 250


async def test_loops_and_sync_steps():
    async with Looping() as wf:
        assert await wf.run() == 250


class Broadcast(Workflow):
    @step
    async def start(self, ev: StartEvent) -> QueryEvent:
        return QueryEvent(query="q")

    @step
    async def left(self, ev: QueryEvent) -> Progress:
        return Progress(message="left")

    @step
    async def right(self, ev: QueryEvent) -> Progress:
        return Progress(message="right")

    @step
    async def join(self, ctx: Context, ev: Progress) -> StopEvent | None:
        got = ctx.collect_events(ev, [Progress, Progress])
        return None if got is None else StopEvent(result=sorted(e.message for e in got))


async def test_an_event_goes_to_every_step_that_accepts_it():
    async with Broadcast() as wf:
        assert await wf.run() == ["left", "right"]


class FanOut(Workflow):
    @step
    async def start(self, ctx: Context, ev: StartEvent) -> Work | None:
        for i in range(ev.n):
            ctx.send_event(Work(i=i, n=ev.n))
        return None

    @step(num_workers=4)
    async def work(self, ev: Work) -> Done:
        return Done(i=ev.i, n=ev.n)

    @step
    async def gather(self, ctx: Context, ev: Done) -> StopEvent | None:
        got = ctx.collect_events(ev, [Done] * ev.n)
        if got is None:
            return None
        return StopEvent(result=(len(got), sum(e.i for e in got), len({e.i for e in got})))


async def test_fan_out_and_collect_with_a_pool_and_concurrent_runs():
    async with FanOut(timeout=120) as wf:
        first, second = await asyncio.gather(wf.run(n=2000), wf.run(n=500))
        assert first == (2000, sum(range(2000)), 2000)
        assert second == (500, sum(range(500)), 500)
        names = live_rayflow_actors()
        assert 1 <= len([a for a in names if ".work." in a]) <= 4


@pytest.mark.slow  # ~30 s on 2 cores; the 500-event fan-out above runs by default, benchmarks/ the large ones
async def test_a_hundred_thousand_events_fan_out_and_collect():
    async with FanOut(timeout=600) as wf:
        assert await wf.run(n=100_000) == (100_000, sum(range(100_000)), 100_000)


class Targeted(Workflow):
    @step
    async def start(self, ctx: Context, ev: StartEvent) -> QueryEvent | None:
        ctx.send_event(QueryEvent(query=ev.get("to")), step=ev.get("to"))
        return None

    @step
    async def one(self, ev: QueryEvent) -> StopEvent:
        return StopEvent(result="one")

    @step
    async def two(self, ev: QueryEvent) -> StopEvent:
        return StopEvent(result="two")


async def test_send_event_to_a_named_step():
    async with Targeted() as wf:
        assert await wf.run(to="two") == "two"
        with pytest.raises(WorkflowRuntimeError, match="Step nope does not exist"):
            await wf.run(to="nope")


class Streaming(Workflow):
    @step
    async def work(self, ctx: Context, ev: StartEvent) -> StopEvent:
        for i in range(3):
            ctx.write_event_to_stream(Progress(message=f"step {i}"))
            await asyncio.sleep(0)
        return StopEvent(result="final")


async def test_stream_yields_written_events_then_the_stop_event_once():
    async with Streaming() as wf:
        handler = wf.run()
        seen = [ev async for ev in handler.stream_events()]
        assert [e.message for e in seen[:-1]] == ["step 0", "step 1", "step 2"]
        assert isinstance(seen[-1], StopEvent) and seen[-1].result == "final"
        assert await handler == "final"
        with pytest.raises(WorkflowRuntimeError, match="already been consumed"):
            async for _ in handler.stream_events():
                pass


class Blocked(Workflow):
    @step
    async def slow(self, ev: StartEvent) -> StopEvent:
        await asyncio.Event().wait()
        return StopEvent()


async def test_timeout_names_the_active_steps_and_streams_a_timed_out_event():
    async with Blocked(timeout=0.5) as wf:
        handler = wf.run()
        events = []
        with pytest.raises(
            WorkflowTimeoutError,
            match=r"^Operation timed out after 0.5 seconds. Currently active steps: slow$",
        ):
            async for ev in handler.stream_events():
                events.append(ev)
            await handler
        assert isinstance(events[-1], WorkflowTimedOutEvent) and events[-1].active_steps == ["slow"]


async def test_cancel_run():
    async with Blocked(timeout=None) as wf:
        handler = wf.run()
        await handler.cancel_run()
        with pytest.raises(WorkflowCancelledByUser):
            await handler


class Boom(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Failing(Workflow):
    @step
    async def fail(self, ev: StartEvent) -> StopEvent:
        if ev.get("kind") == "value":
            raise ValueError("bad value")
        raise Boom(7)


async def test_step_errors_keep_their_type_and_reach_the_stream():
    async with Failing() as wf:
        with pytest.raises(ValueError, match=r"^bad value$"):
            await wf.run(kind="value")
        handler = wf.run(kind="custom")
        events = []
        with pytest.raises(Boom) as info:
            async for ev in handler.stream_events():
                events.append(ev)
            await handler
        assert info.value.code == 7
        assert isinstance(events[-1], WorkflowFailedEvent) and events[-1].step_name == "fail"


class Flaky(Workflow):
    @step(retry_policy=retry_policy(wait=wait_fixed(0.01), stop=stop_after_attempt(3)))
    async def flaky(self, ctx: Context, ev: StartEvent) -> StopEvent:
        async with ctx.store.edit_state() as state:
            state.tries = state.get("tries", 0) + 1
            tries = state.tries
        if tries < 3:
            raise RuntimeError(f"try {tries}")
        return StopEvent(result=tries)


async def test_retry_policy_retries_a_failing_step():
    async with Flaky() as wf:
        assert await wf.run() == 3


class Recovering(Workflow):
    @step
    async def risky(self, ev: StartEvent) -> StopEvent:
        raise KeyError("missing")

    @catch_error(for_steps=["risky"])
    async def recover(self, ev: StepFailedEvent) -> StopEvent:
        return StopEvent(result=f"recovered from {ev.step_name}: {type(ev.exception).__name__}")


async def test_catch_error_recovers():
    async with Recovering() as wf:
        assert await wf.run() == "recovered from risky: KeyError"


class NotAnEvent(Workflow):
    @step
    async def bad(self, ev: StartEvent) -> StopEvent:
        return "plain string"  # type: ignore[return-value]


class Unpicklable(Workflow):
    @step
    async def start(self, ev: StartEvent) -> QueryEvent:
        event = QueryEvent(query="x")
        event.lock = threading.Lock()
        return event

    @step
    async def never(self, ev: QueryEvent) -> StopEvent:
        return StopEvent()


async def test_bad_outputs_fail_naming_the_step_and_event_type():
    async with NotAnEvent() as wf:
        with pytest.raises(WorkflowRuntimeError, match="Step function bad returned str instead of an Event"):
            await wf.run()
    async with Unpicklable() as wf:
        with pytest.raises(WorkflowRuntimeError, match="QueryEvent emitted by step 'start' cannot be pickled"):
            await wf.run()


class Ask(InputRequiredEvent):
    prefix: str


class Answer(HumanResponseEvent):
    response: str


class HumanInTheLoop(Workflow):
    @step
    async def ask(self, ev: StartEvent) -> Ask:
        return Ask(prefix="name? ")

    @step
    async def answer(self, ev: Answer) -> StopEvent:
        return StopEvent(result=f"hello {ev.response}")


async def test_human_in_the_loop_through_the_stream_and_handler_ctx():
    async with HumanInTheLoop() as wf:
        handler = wf.run()
        async for ev in handler.stream_events():
            if isinstance(ev, Ask):
                handler.ctx.send_event(Answer(response="ada"))
        assert await handler == "hello ada"


class WithIndex(Workflow):
    def __init__(self, corpus: dict[str, str], **kwargs):
        super().__init__(**kwargs)
        self.corpus = corpus

    @step
    async def lookup(self, ev: StartEvent) -> StopEvent:
        return StopEvent(result=self.corpus[ev.key])


async def test_custom_init_arguments_travel_to_the_actors():
    async with WithIndex({"a": "alpha"}, timeout=30) as wf:
        assert await wf.run(key="a") == "alpha"


class MyStop(StopEvent):
    answer: str


class CustomStop(Workflow):
    @step
    async def s(self, ev: StartEvent) -> MyStop:
        return MyStop(answer="42")


async def test_custom_stop_event_is_the_result():
    async with CustomStop() as wf:
        result = await wf.run()
        assert isinstance(result, MyStop) and result.answer == "42"


async def test_unclosed_workflows_release_their_actors_when_collected():
    import gc

    from rayflow.runtime.runtime import released

    kept = [Routing(timeout=30 + n) for n in range(3)]  # not equal: each has a set of its own
    for wf in kept:
        await wf.run(query="x")
    assert len(live_rayflow_actors()) == 15  # 3 instances x (dispatcher, context, 3 steps)
    del wf, kept
    gc.collect()
    await released()
    assert not live_rayflow_actors()


def test_run_outside_an_event_loop_says_so():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(WorkflowRuntimeError, match="needs a running event loop"):
            Routing().run(query="x")


def make_local_workflow() -> type[Workflow]:
    class Local(Event):
        x: int

    class LocalFlow(Workflow):
        @step
        async def s(self, ev: StartEvent) -> Local:
            return Local(x=ev.get("x"))

        @step
        async def t(self, ev: Local) -> StopEvent:
            return StopEvent(result=ev.x * 2)

    return LocalFlow


async def test_workflow_and_events_defined_inside_a_function():
    # classes rebuilt by value in a step actor may lose the '<locals>' part of their qualified name:
    # routing must still know them by the names the driver gave them
    async with make_local_workflow()() as wf:
        assert await wf.run(x=21) == 42


class NamedValidate(Workflow):
    @step
    async def validate(self, ev: StartEvent) -> StopEvent:  # a step may take any name, even a method's
        return StopEvent(result="ok")


async def test_a_step_may_be_named_like_a_workflow_method():
    async with NamedValidate() as wf:
        assert await wf.run() == "ok"
