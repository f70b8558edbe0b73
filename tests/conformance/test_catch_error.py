"""Conformance: ``@catch_error``, a step that receives a ``StepFailedEvent`` when another step fails for good.

What the handler is given, what its return or its own failure does to the run, which steps it covers
(``for_steps`` or every step), how often it may recover (``max_recoveries``), and the handler sets that
are refused. Handlers record what they saw in ``ctx.store`` or in the result.
"""

import asyncio
import datetime

import pytest

pytestmark = pytest.mark.filterwarnings("ignore:.*RetryPolicy is deprecated:DeprecationWarning")


async def _count(ctx, key: str) -> int:
    """Add one to the counter ``key`` in the store and return it."""
    value = await ctx.store.get(key, default=0) + 1
    await ctx.store.set(key, value)
    return value


async def test_a_handlers_stop_event_ends_the_run_and_a_handlers_own_error_fails_it(engine):
    class Recovers(engine.Workflow):
        @engine.step
        async def fragile(self, ev: engine.StartEvent) -> engine.StopEvent:
            raise RuntimeError("fragile broke")

        @engine.catch_error
        async def recover(self, ev: engine.StepFailedEvent) -> engine.StopEvent:
            if ev.input_event.handler_fails:
                raise ValueError(f"could not recover from {ev.step_name}")
            return engine.StopEvent(result=f"recovered from {ev.step_name}")

    workflow = Recovers()
    recovered = workflow.run(handler_fails=False)
    streamed = [ev async for ev in recovered.stream_events()]
    assert await recovered == "recovered from fragile"
    assert [type(ev).__name__ for ev in streamed] == ["StopEvent"]

    failed_again = workflow.run(handler_fails=True)
    streamed = [ev async for ev in failed_again.stream_events()]
    with pytest.raises(ValueError, match="could not recover from fragile"):
        await failed_again
    failed = [ev for ev in streamed if isinstance(ev, engine.WorkflowFailedEvent)]
    assert len(failed) == 1
    assert failed[0].step_name == "recover"
    assert str(failed[0].exception) == "could not recover from fragile"


async def test_the_step_failed_event_describes_the_failure_after_the_retries(engine):
    class Query(engine.StartEvent):
        text: str

    policy = engine.retry_policy.ConstantDelayRetryPolicy(maximum_attempts=2, delay=0.01)

    class Described(engine.Workflow):
        @engine.step(retry_policy=policy)
        async def lookup(self, ctx: engine.Context, ev: Query) -> engine.StopEvent:
            await ctx.store.set("progress", "half done")
            raise KeyError(f"no entry for {ev.text}")

        @engine.catch_error
        async def report(self, ctx: engine.Context, ev: engine.StepFailedEvent) -> engine.StopEvent:
            return engine.StopEvent(
                result={
                    "step": ev.step_name,
                    "input": (type(ev.input_event).__name__, ev.input_event.text),
                    "error": (type(ev.exception).__name__, ev.exception.args),
                    "attempts": ev.attempts,
                    "elapsed": ev.elapsed_seconds,
                    "failed_at": ev.failed_at,
                    "progress": await ctx.store.get("progress"),
                }
            )

    seen = await Described().run(start_event=Query(text="llamas"))
    assert seen["step"] == "lookup"
    assert seen["input"] == ("Query", "llamas")
    assert seen["error"] == ("KeyError", ("no entry for llamas",))
    assert seen["attempts"] == 2
    assert seen["elapsed"] >= 0.01
    assert isinstance(seen["failed_at"], datetime.datetime)
    assert seen["failed_at"].tzinfo is not None
    now = datetime.datetime.now(datetime.timezone.utc)
    assert now - datetime.timedelta(minutes=1) < seen["failed_at"] <= now
    assert seen["progress"] == "half done"


async def test_a_step_that_succeeds_on_a_retry_never_reaches_the_handler(engine):
    policy = engine.retry_policy.ConstantDelayRetryPolicy(maximum_attempts=3, delay=0.01)

    class Retried(engine.Workflow):
        @engine.step(retry_policy=policy)
        async def flaky(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            if await _count(ctx, "attempts") < 2:
                raise ConnectionError("blip")
            return engine.StopEvent(result="second attempt worked")

        @engine.catch_error
        async def recover(self, ctx: engine.Context, ev: engine.StepFailedEvent) -> engine.StopEvent:
            await _count(ctx, "handled")
            return engine.StopEvent(result="handled")

    handler = Retried().run()
    assert await handler == "second attempt worked"
    assert await handler.ctx.store.get("handled", default=0) == 0


async def test_a_timed_out_run_never_reaches_the_handler(engine):
    class Slow(engine.Workflow):
        @engine.step
        async def stall(self, ev: engine.StartEvent) -> engine.StopEvent:
            await asyncio.sleep(30)
            return engine.StopEvent(result="late")

        @engine.catch_error
        async def recover(self, ctx: engine.Context, ev: engine.StepFailedEvent) -> engine.StopEvent:
            await _count(ctx, "handled")
            return engine.StopEvent(result="handled")

    handler = Slow(timeout=0.3).run()
    with pytest.raises(engine.WorkflowTimeoutError):
        await handler
    assert await handler.ctx.store.get("handled", default=0) == 0


async def test_a_handler_can_continue_the_run_through_other_steps(engine):
    class Fallback(engine.Event):
        reason: str

    class Degrades(engine.Workflow):
        @engine.step
        async def primary(self, ev: engine.StartEvent) -> engine.StopEvent:
            raise ConnectionError("primary unavailable")

        @engine.catch_error
        async def reroute(self, ev: engine.StepFailedEvent) -> Fallback:
            return Fallback(reason=str(ev.exception))

        @engine.step
        async def secondary(self, ev: Fallback) -> engine.StopEvent:
            return engine.StopEvent(result=f"secondary answered ({ev.reason})")

    assert await Degrades().run() == "secondary answered (primary unavailable)"


async def test_a_scoped_handler_catches_only_the_steps_it_lists(engine):
    class Next(engine.Event):
        pass

    class Scoped(engine.Workflow):
        @engine.step
        async def first(self, ev: engine.StartEvent) -> Next:
            if ev.fail_at == "first":
                raise RuntimeError("first failed")
            return Next()

        @engine.step
        async def second(self, ev: Next) -> engine.StopEvent:
            raise LookupError("second failed")

        @engine.catch_error(for_steps=["first"])
        async def guard_first(self, ctx: engine.Context, ev: engine.StepFailedEvent) -> engine.StopEvent:
            await _count(ctx, "handled")
            return engine.StopEvent(result=f"caught {ev.step_name}")

    workflow = Scoped()
    assert await workflow.run(fail_at="first") == "caught first"
    uncovered = workflow.run(fail_at="second")
    with pytest.raises(LookupError, match="second failed"):
        await uncovered
    assert await uncovered.ctx.store.get("handled", default=0) == 0


async def test_scoped_handlers_recover_their_own_steps_and_the_wildcard_the_rest(engine):
    class Second(engine.Event):
        fail_at: str

    class Third(engine.Event):
        pass

    class Mixed(engine.Workflow):
        @engine.step
        async def first(self, ev: engine.StartEvent) -> Second:
            if ev.fail_at == "first":
                raise RuntimeError("first failed")
            return Second(fail_at=ev.fail_at)

        @engine.step
        async def second(self, ev: Second) -> Third:
            if ev.fail_at == "second":
                raise RuntimeError("second failed")
            return Third()

        @engine.step
        async def third(self, ev: Third) -> engine.StopEvent:
            raise RuntimeError("third failed")

        @engine.catch_error(for_steps=["first"])
        async def guard_first(self, ev: engine.StepFailedEvent) -> engine.StopEvent:
            return engine.StopEvent(result=("guard_first", ev.step_name))

        @engine.catch_error(for_steps=["second"])
        async def guard_second(self, ev: engine.StepFailedEvent) -> engine.StopEvent:
            return engine.StopEvent(result=("guard_second", ev.step_name))

        @engine.catch_error
        async def everything_else(self, ev: engine.StepFailedEvent) -> engine.StopEvent:
            return engine.StopEvent(result=("wildcard", ev.step_name))

    workflow = Mixed()
    assert await workflow.run(fail_at="first") == ("guard_first", "first")
    assert await workflow.run(fail_at="second") == ("guard_second", "second")
    assert await workflow.run(fail_at="third") == ("wildcard", "third")


@pytest.mark.parametrize(("max_recoveries", "handled"), [(None, 1), (2, 2)])
async def test_a_handler_recovers_a_run_at_most_max_recoveries_times(engine, max_recoveries, handled):
    class Again(engine.Event):
        pass

    options = {} if max_recoveries is None else {"max_recoveries": max_recoveries}

    class Stubborn(engine.Workflow):
        @engine.step
        async def work(self, ctx: engine.Context, ev: engine.StartEvent | Again) -> engine.StopEvent:
            raise RuntimeError(f"work failed on try {await _count(ctx, 'tries')}")

        @engine.catch_error(for_steps=["work"], **options)
        async def try_again(self, ctx: engine.Context, ev: engine.StepFailedEvent) -> Again:
            await _count(ctx, "handled")
            return Again()

    handler = Stubborn().run()
    with pytest.raises(RuntimeError, match=f"work failed on try {handled + 1}"):
        await handler
    assert await handler.ctx.store.get("handled") == handled
    assert await handler.ctx.store.get("tries") == handled + 1


# -- handler sets that are refused ----------------------------------------------------------------------------------


def test_a_handler_must_take_a_step_failed_event(engine):
    with pytest.raises(engine.WorkflowValidationError, match="must accept StepFailedEvent"):

        class Wrong(engine.Workflow):
            @engine.catch_error
            async def recover(self, ev: engine.StartEvent) -> engine.StopEvent:
                return engine.StopEvent()


def test_max_recoveries_must_be_at_least_one(engine):
    with pytest.raises(engine.WorkflowValidationError, match="max_recoveries"):

        class Wrong(engine.Workflow):
            @engine.step
            async def only(self, ev: engine.StartEvent) -> engine.StopEvent:
                return engine.StopEvent()

            @engine.catch_error(max_recoveries=0)
            async def recover(self, ev: engine.StepFailedEvent) -> engine.StopEvent:
                return engine.StopEvent()


def test_two_wildcard_handlers_are_refused(engine):
    class Twice(engine.Workflow):
        @engine.step
        async def only(self, ev: engine.StartEvent) -> engine.StopEvent:
            return engine.StopEvent()

        @engine.catch_error
        async def one(self, ev: engine.StepFailedEvent) -> engine.StopEvent:
            return engine.StopEvent()

        @engine.catch_error
        async def other(self, ev: engine.StepFailedEvent) -> engine.StopEvent:
            return engine.StopEvent()

    with pytest.raises(engine.WorkflowValidationError, match="Only one wildcard"):
        Twice().validate()


def test_a_handler_for_an_unknown_step_is_refused(engine):
    class Typo(engine.Workflow):
        @engine.step
        async def only(self, ev: engine.StartEvent) -> engine.StopEvent:
            return engine.StopEvent()

        @engine.catch_error(for_steps=["onyl"])
        async def recover(self, ev: engine.StepFailedEvent) -> engine.StopEvent:
            return engine.StopEvent()

    with pytest.raises(engine.WorkflowValidationError, match="unknown step 'onyl'"):
        Typo().validate()


def test_a_step_claimed_by_two_scoped_handlers_is_refused(engine):
    class Claimed(engine.Workflow):
        @engine.step
        async def only(self, ev: engine.StartEvent) -> engine.StopEvent:
            return engine.StopEvent()

        @engine.catch_error(for_steps=["only"])
        async def one(self, ev: engine.StepFailedEvent) -> engine.StopEvent:
            return engine.StopEvent()

        @engine.catch_error(for_steps=["only"])
        async def other(self, ev: engine.StepFailedEvent) -> engine.StopEvent:
            return engine.StopEvent()

    with pytest.raises(engine.WorkflowValidationError, match="claimed by two"):
        Claimed().validate()
