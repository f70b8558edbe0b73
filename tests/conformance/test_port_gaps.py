"""What running LlamaIndex Workflows' own test suite on rayflow found missing: public calls, and error messages.

``Context.get_step_context()``: the running step's context, for code without a ``ctx`` parameter at hand. An event
sent by name to a list join fails the run with an error that says it cannot receive targeted events. Parallel
invocations of one step that wait alike (no ``waiter_id``) are separate waits: each announces its ``waiter_event``.
"""

import pytest


async def test_get_step_context_in_a_step_is_the_context_the_step_receives(engine):
    class Probe(engine.Workflow):
        @engine.step
        async def async_step(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            found = engine.Context.get_step_context()
            return engine.StopEvent(result=(found is ctx, type(found).__name__))

    assert await Probe(timeout=30).run() == (True, "Context")


async def test_get_step_context_in_a_sync_step_without_a_ctx_parameter(engine):
    class Probe(engine.Workflow):
        @engine.step
        def sync_step(self, ev: engine.StartEvent) -> engine.StopEvent:
            return engine.StopEvent(result=type(engine.Context.get_step_context()).__name__)

    assert await Probe(timeout=30).run() == "Context"


def test_get_step_context_outside_a_step_raises(api):
    with pytest.raises(api.WorkflowRuntimeError, match="may only be called from within a step"):
        api.Context.get_step_context()


async def test_an_event_sent_by_name_to_a_list_join_fails_the_run_naming_targeted_events(engine):
    class Part(engine.Event):
        n: int

    class Done(engine.Event):
        n: int

    class Fan(engine.Workflow):
        @engine.step
        async def split(self, ev: engine.StartEvent) -> list[Part]:
            return [Part(n=i) for i in range(2)]

        @engine.step
        async def work(self, ctx: engine.Context, ev: Part) -> Done:
            if ev.n == 0:
                ctx.send_event(Done(n=99), step="join")
            return Done(n=ev.n)

        @engine.step
        async def join(self, events: list[Done]) -> engine.StopEvent:
            return engine.StopEvent(result=sorted(e.n for e in events))

    with pytest.raises(engine.WorkflowRuntimeError, match="targeted events"):
        await Fan(timeout=30).run()


async def test_parallel_invocations_waiting_alike_each_announce_and_each_get_the_answer(engine):
    class Branch(engine.Event):
        name: str

    class Approved(engine.Event):
        name: str
        answer: str

    class Fork(engine.Workflow):
        @engine.step
        async def fork(self, ctx: engine.Context, ev: engine.StartEvent) -> Branch:
            for name in ("a", "b", "c"):
                ctx.send_event(Branch(name=name))
            return None

        @engine.step(num_workers=3)
        async def ask(self, ctx: engine.Context, ev: Branch) -> Approved:
            answer = await ctx.wait_for_event(
                engine.HumanResponseEvent, waiter_event=engine.InputRequiredEvent(prefix=f"approve {ev.name}")
            )
            return Approved(name=ev.name, answer=answer.response)

        @engine.step
        async def gather(self, ctx: engine.Context, ev: Approved) -> engine.StopEvent:
            done = ctx.collect_events(ev, [Approved] * 3)
            if done is None:
                return None
            return engine.StopEvent(result=sorted((e.name, e.answer) for e in done))

    handler = Fork(timeout=30).run()
    asked = set()
    async for ev in handler.stream_events():
        if isinstance(ev, engine.InputRequiredEvent):
            asked.add(ev.prefix)
            if len(asked) == 3:
                handler.ctx.send_event(engine.HumanResponseEvent(response="yes"))
                break
    assert asked == {"approve a", "approve b", "approve c"}
    assert await handler == [("a", "yes"), ("b", "yes"), ("c", "yes")]
