"""Conformance: the engine's internal events, streamed with ``stream_events(expose_internal=True)``.

Each invocation of a step is ``StepStateChanged`` RUNNING (its input named by class name) and then NOT_RUNNING (its
input and output as ``<class '...'>``), possibly after a PREPARING while no worker is free; a run that waits for an
event from outside says ``WorkflowIdleEvent`` once; without ``expose_internal`` none of them is streamed.
"""

from __future__ import annotations

from typing import Any


def _states(events: list[Any], engine: Any) -> list[tuple[str, str, str, str | None]]:
    """(step, state, input, output) of each StepStateChanged, PREPARING left out (it depends on free workers)."""
    return [
        (e.name, e.step_state.value, e.input_event_name, e.output_event_name)
        for e in events
        if isinstance(e, engine.StepStateChanged) and e.step_state is not engine.StepState.PREPARING
    ]


async def test_each_invocation_streams_running_then_not_running_with_its_events(engine):
    class Middle(engine.Event):
        n: int

    class Two(engine.Workflow):
        @engine.step
        async def first(self, ev: engine.StartEvent) -> Middle:
            return Middle(n=1)

        @engine.step
        async def second(self, ev: Middle) -> engine.StopEvent:
            return engine.StopEvent(result=ev.n)

    workflow = Two(timeout=60)
    handler = workflow.run()
    events = [e async for e in handler.stream_events(expose_internal=True)]
    assert await handler == 1
    start, middle, stop = (str(c) for c in (engine.StartEvent, Middle, engine.StopEvent))
    assert _states(events, engine) == [
        ("first", "running", "StartEvent", None),
        ("first", "not_running", start, middle),
        ("second", "running", "Middle", None),
        ("second", "not_running", middle, stop),
    ]
    assert all(isinstance(e, engine.InternalDispatchEvent) for e in events[:-1])
    assert all(e.worker_id for e in events if isinstance(e, engine.StepStateChanged))

    handler = workflow.run()
    plain = [e async for e in handler.stream_events()]
    assert await handler == 1
    assert [type(e) for e in plain] == [engine.StopEvent]


async def test_a_run_waiting_for_an_answer_says_it_is_idle_once(engine):
    class Ask(engine.Workflow):
        @engine.step
        async def ask(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            answer = await ctx.wait_for_event(
                engine.HumanResponseEvent, waiter_event=engine.InputRequiredEvent(prefix="name?")
            )
            return engine.StopEvent(result=answer.response)

    handler = Ask(timeout=60).run()
    seen: list[str] = []
    async for event in handler.stream_events(expose_internal=True):
        if isinstance(event, engine.StepStateChanged):
            continue
        seen.append(type(event).__name__)
        if isinstance(event, engine.InputRequiredEvent):
            handler.ctx.send_event(engine.HumanResponseEvent(response="ada"))
    assert await handler == "ada"
    assert seen == ["InputRequiredEvent", "WorkflowIdleEvent", "StopEvent"]
