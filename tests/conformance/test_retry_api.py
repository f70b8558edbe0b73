"""Conformance: the composable retry API, ``retry_policy(retry=..., wait=..., stop=...)``, and ``ctx.retry_info()``.

First whole runs (a step retried by a composed policy, an error its condition refuses, what ``ctx.retry_info()``
tells each attempt), then the building blocks alone (``api``: no workflow, no Ray): the decisions of the retry
conditions, the delays of the wait strategies, the stop conditions, how a policy puts the three together.
Steps keep what they saw in ``ctx.store`` (on rayflow they run in other processes).
"""

import dataclasses
import re
from datetime import timedelta

import pytest

# -- whole runs -------------------------------------------------------------------------------------------------------


async def test_a_composed_policy_retries_until_the_step_succeeds_and_each_attempt_sees_its_retry_info(engine):
    rp = engine.retry_policy
    policy = rp.retry_policy(
        retry=rp.retry_if_exception_type(ConnectionError), wait=rp.wait_fixed(0.01), stop=rp.stop_after_attempt(3)
    )

    class Flaky(engine.Workflow):
        @engine.step(retry_policy=policy)
        async def fetch(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            info = ctx.retry_info()
            error = info.last_exception
            seen = {
                "retry": info.retry_number,
                "elapsed": info.elapsed_seconds,
                "error": None if error is None else f"{type(error).__name__}: {error}",
                "utc": None if info.last_failed_at is None else info.last_failed_at.utcoffset() == timedelta(0),
            }
            await ctx.store.set("seen", [*await ctx.store.get("seen", default=[]), seen])
            if info.retry_number < 2:
                raise ConnectionError(f"service down on try {info.retry_number}")
            return engine.StopEvent(result="fetched")

    handler = Flaky().run()
    assert await handler == "fetched"
    seen = await handler.ctx.store.get("seen")
    assert [(s["retry"], s["error"], s["utc"]) for s in seen] == [
        (0, None, None),
        (1, "ConnectionError: service down on try 0", True),
        (2, "ConnectionError: service down on try 1", True),
    ]
    elapsed = [s["elapsed"] for s in seen]
    assert elapsed[0] == 0.0
    assert 0.009 <= elapsed[1] < elapsed[2]


async def test_an_error_the_condition_refuses_fails_the_step_at_once_with_that_error(engine):
    rp = engine.retry_policy
    retryable = rp.retry_if_exception_type(ConnectionError) | rp.retry_if_exception_message(match="try again")

    class Picky(engine.Workflow):
        @engine.step(retry_policy=rp.retry_policy(retry=retryable, wait=rp.wait_fixed(0.01)))
        async def ask(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            await ctx.store.set("attempts", ctx.retry_info().retry_number + 1)
            if ctx.retry_info().retry_number == 0:
                raise RuntimeError("busy, please try again")
            raise ValueError("the question makes no sense")

    handler = Picky().run()
    with pytest.raises(ValueError, match="makes no sense"):
        await handler
    assert await handler.ctx.store.get("attempts") == 2


async def test_a_step_whose_stop_condition_gives_up_fails_after_its_last_attempt(engine):
    rp = engine.retry_policy
    policy = rp.retry_policy(wait=rp.wait_none(), stop=rp.stop_after_attempt(2) | rp.stop_after_delay(60))

    class Hopeless(engine.Workflow):
        @engine.step(retry_policy=policy)
        async def spend(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            raise PermissionError(f"denied on attempt {ctx.retry_info().retry_number + 1}")

    handler = Hopeless().run()
    streamed = [ev async for ev in handler.stream_events()]
    with pytest.raises(PermissionError, match="denied on attempt 2"):
        await handler
    assert (streamed[-1].step_name, streamed[-1].attempts) == ("spend", 2)


async def test_retry_info_outside_a_step_raises_context_state_error(engine):
    class Plain(engine.Workflow):
        @engine.step
        async def answer(self, ev: engine.StartEvent) -> engine.StopEvent:
            return engine.StopEvent(result=42)

    workflow = Plain()
    with pytest.raises(engine.errors.ContextStateError, match="retry_info"):
        engine.Context(workflow).retry_info()
    handler = workflow.run()
    assert await handler == 42
    with pytest.raises(engine.errors.ContextStateError, match="retry_info"):
        handler.ctx.retry_info()


# -- retry conditions -------------------------------------------------------------------------------------------------


def _caused_by(cause: BaseException, error: BaseException) -> BaseException:
    """``error`` raised ``from cause``."""
    try:
        raise error from cause
    except BaseException as raised:
        return raised


def _while_handling(context: BaseException, error: BaseException) -> BaseException:
    """``error`` raised while handling ``context``, without ``from``."""
    try:
        try:
            raise context
        except BaseException:
            raise error  # noqa: B904 - the implicit context is the point
    except BaseException as raised:
        return raised


def test_conditions_by_type_retry_instances_of_the_types_or_all_but_them(api):
    rp = api.retry_policy
    network = rp.retry_if_exception_type((ConnectionError, TimeoutError))
    assert [network(e) for e in (ConnectionResetError(), TimeoutError(), ValueError())] == [True, True, False]
    assert rp.retry_if_exception_type()(KeyError()) is True
    for name in ("retry_if_not_exception_type", "retry_unless_exception_type"):
        permanent = getattr(rp, name)(PermissionError)
        assert [permanent(e) for e in (PermissionError(), OSError())] == [False, True]


def test_conditions_by_message_compare_the_whole_text_or_search_a_pattern(api):
    rp = api.retry_policy
    exact = rp.retry_if_exception_message(message="try again")
    assert [exact(RuntimeError(m)) for m in ("try again", "please try again")] == [True, False]
    server_error = rp.retry_if_exception_message(match=r"HTTP 5\d\d")
    assert [server_error(OSError(m)) for m in ("upstream said HTTP 503", "HTTP 404")] == [True, False]
    compiled = rp.retry_if_exception_message(match=re.compile("limit", re.IGNORECASE))
    assert compiled(RuntimeError("Rate LIMIT reached")) is True
    not_permanent = rp.retry_if_not_exception_message(match="invalid key|denied")
    assert [not_permanent(RuntimeError(m)) for m in ("access denied", "timeout")] == [False, True]
    for arguments in ({}, {"message": "a", "match": "b"}):
        with pytest.raises(TypeError):
            rp.retry_if_exception_message(**arguments)


def test_a_cause_condition_follows_explicit_causes_only(api):
    by_cause = api.retry_policy.retry_if_exception_cause_type(ConnectionError)
    deep = _caused_by(_caused_by(ConnectionError("down"), OSError("io")), RuntimeError("failed"))
    assert by_cause(deep) is True
    assert by_cause(ConnectionError("the error itself")) is False
    assert by_cause(_while_handling(ConnectionError("down"), RuntimeError("failed"))) is False
    assert by_cause(_caused_by(ValueError(), RuntimeError())) is False


def test_conditions_combine_with_or_and_and_plain_functions_alike(api):
    rp = api.retry_policy
    network = rp.retry_if_exception_type(ConnectionError)
    limited = rp.retry_if_exception_message(match="limit")

    def mentions_retry(error: BaseException) -> bool:
        return "retry" in str(error)

    errors = [ConnectionError("limit"), ConnectionError("down"), RuntimeError("limit"), RuntimeError("no")]
    for either in (network | limited, rp.retry_any(network, limited)):
        assert [either(e) for e in errors] == [True, True, True, False]
    for both in (network & limited, rp.retry_all(network, limited)):
        assert [both(e) for e in errors] == [True, False, False, False]
    assert (mentions_retry | network)(RuntimeError("retry me")) is True
    assert (network & mentions_retry)(ConnectionError("down")) is False
    assert (rp.retry_never() | network)(ConnectionError()) is True
    assert rp.retry_always()(BaseException()) is True
    assert rp.retry_never()(ConnectionError()) is False
    assert rp.retry_if_exception(mentions_retry)(OSError("please retry")) is True


# -- wait strategies --------------------------------------------------------------------------------------------------


def _delays(wait, retries=range(5)):
    return [wait(n) for n in retries]


def test_fixed_exponential_and_incrementing_waits_give_their_delays_by_retry_number(api):
    rp = api.retry_policy
    assert _delays(rp.wait_fixed(0.5)) == [0.5] * 5
    assert _delays(rp.wait_fixed(timedelta(milliseconds=250)), [0, 7]) == [0.25, 0.25]
    assert _delays(rp.wait_none(), [0, 3]) == [0.0, 0.0]
    assert _delays(rp.wait_exponential()) == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert _delays(rp.wait_exponential(multiplier=0.5, exp_base=3, max=10, min=1)) == [1.0, 1.5, 4.5, 10.0, 10.0]
    assert rp.wait_exponential(max=timedelta(seconds=3))(5) == 3.0
    assert _delays(rp.wait_incrementing(start=1, increment=2, max=6)) == [1.0, 3.0, 5.0, 6.0, 6.0]
    assert _delays(rp.wait_incrementing(), [0, 1, 2]) == [0.0, 100.0, 200.0]
    assert _delays(rp.wait_incrementing(start=3, increment=-2), [0, 1, 2]) == [3.0, 1.0, 0.0]


def test_random_waits_stay_in_their_bounds_vary_and_repeat_for_a_seed(api):
    rp = api.retry_policy
    bounded = [
        (rp.wait_random(min=1, max=2), 4, (1.0, 2.0)),
        (rp.wait_exponential_jitter(initial=1, exp_base=2, max=30, jitter=0.5), 2, (4.0, 4.5)),
        (rp.wait_exponential_jitter(initial=1, max=5), 3, (5.0, 5.0)),
        (rp.wait_random_exponential(multiplier=1, max=8, min=0.5), 2, (0.5, 4.0)),
        (rp.wait_random_exponential(multiplier=1, max=8), 6, (0.0, 8.0)),
        (rp.wait_full_jitter(multiplier=0.5, exp_base=3), 2, (0.0, 4.5)),
    ]
    for wait, retry, (low, high) in bounded:
        drawn = [wait(retry) for _ in range(40)]
        assert all(low <= d <= high for d in drawn), (wait, drawn)
        if low < high:
            assert len(set(drawn)) > 1, wait
            assert wait(retry, seed=7) == wait(retry, seed=7)
    assert isinstance(rp.wait_full_jitter(), rp.wait_random_exponential)


def test_a_chain_gives_each_retry_its_own_wait_then_keeps_the_last(api):
    rp = api.retry_policy
    chain = rp.wait_chain(rp.wait_fixed(1), rp.wait_fixed(2), rp.wait_fixed(5))
    assert _delays(chain, [0, 1, 2, 3, 9]) == [1.0, 2.0, 5.0, 5.0, 5.0]
    later = rp.wait_chain(rp.wait_fixed(1), rp.wait_exponential())
    assert _delays(later, [0, 1, 3]) == [1.0, 2.0, 8.0]  # the retry number counts from the first retry
    with pytest.raises(ValueError):
        rp.wait_chain()


def test_waits_add_up_with_plus_sum_and_wait_combine(api):
    rp = api.retry_policy

    def quarter(attempts: int, *, seed: int | None = None) -> float:
        return 0.25

    assert (rp.wait_fixed(1) + rp.wait_fixed(0.5))(0) == 1.5
    assert sum([rp.wait_fixed(1), rp.wait_fixed(2), rp.wait_none()])(3) == 3.0
    assert _delays(rp.wait_combine(rp.wait_fixed(1), rp.wait_incrementing(increment=1)), [0, 2]) == [1.0, 3.0]
    assert (quarter + rp.wait_fixed(1))(0) == 1.25
    assert (rp.wait_fixed(1) + quarter)(0) == 1.25
    assert 1.0 <= (rp.wait_fixed(1) + rp.wait_random(0, 0.5))(0) <= 1.5


# -- stop conditions --------------------------------------------------------------------------------------------------


def test_stop_conditions_count_failures_elapsed_time_and_the_coming_sleep(api):
    rp = api.retry_policy
    after_three = rp.stop_after_attempt(3)
    assert [after_three(n, 0.0) for n in (1, 2, 3, 4)] == [False, False, True, True]
    after_two_seconds = rp.stop_after_delay(2)
    assert [after_two_seconds(1, t, upcoming_sleep=9.0) for t in (1.9, 2.0)] == [False, True]
    assert rp.stop_after_delay(timedelta(minutes=1))(1, 59.0) is False
    before_two_seconds = rp.stop_before_delay(2)
    assert before_two_seconds(1, 1.0, upcoming_sleep=0.5) is False
    assert before_two_seconds(1, 1.5, upcoming_sleep=0.5) is True
    assert rp.stop_never()(10_000, 1e9, upcoming_sleep=1e9) is False


def test_stop_conditions_combine_with_or_and_and(api):
    rp = api.retry_policy
    attempts, delay = rp.stop_after_attempt(3), rp.stop_after_delay(10)

    def late(attempts: int, elapsed_time: float, *, upcoming_sleep: float = 0.0) -> bool:
        return elapsed_time > 100

    cases = [(3, 1.0), (1, 10.0), (3, 10.0), (1, 1.0)]
    for either in (attempts | delay, rp.stop_any(attempts, delay)):
        assert [either(n, t) for n, t in cases] == [True, True, True, False]
    for both in (attempts & delay, rp.stop_all(attempts, delay)):
        assert [both(n, t) for n, t in cases] == [False, False, True, False]
    assert (late | attempts)(1, 200.0) is True
    assert (attempts & late)(5, 1.0) is False


# -- policies ---------------------------------------------------------------------------------------------------------


def test_a_default_policy_retries_every_error_twice_five_seconds_apart(api):
    policy = api.retry_policy.retry_policy()
    error = ValueError("bad")
    assert [policy.next(0.0, n, error) for n in (1, 2, 3)] == [5.0, 5.0, None]


def test_a_policy_asks_its_condition_then_its_wait_from_retry_zero_then_its_stop(api):
    rp = api.retry_policy
    refusing = rp.retry_policy(retry=rp.retry_if_exception_type(ConnectionError), stop=rp.stop_never())
    assert refusing.next(0.0, 1, ValueError()) is None
    assert refusing.next(0.0, 1, ConnectionError()) == 5.0
    chained = rp.retry_policy(wait=rp.wait_chain(rp.wait_fixed(1), rp.wait_fixed(2)), stop=rp.stop_never())
    assert [chained.next(0.0, n, ValueError()) for n in (1, 2, 3)] == [1.0, 2.0, 2.0]
    before_ten = rp.retry_policy(wait=rp.wait_fixed(3), stop=rp.stop_before_delay(10))
    assert [before_ten.next(t, 1, ValueError()) for t in (6.0, 7.0)] == [3.0, None]
    after_five = rp.retry_policy(wait=rp.wait_none(), stop=rp.stop_after_delay(5))
    assert [after_five.next(t, 50, ValueError()) for t in (4.9, 5.0)] == [0.0, None]
    seeded = rp.retry_policy(wait=rp.wait_random(0, 10))
    assert seeded.next(0.0, 1, ValueError(), seed=3) == seeded.next(0.0, 1, ValueError(), seed=3)


def test_policies_and_any_object_with_next_are_retry_policies(api):
    rp = api.retry_policy

    class Once:
        def next(self, elapsed_time, attempts, error, *, seed=None):
            return 0.0 if attempts < 2 else None

    for policy in (rp.retry_policy(), Once()):
        assert isinstance(policy, rp.RetryPolicy)
    assert not isinstance(rp.wait_fixed(1), rp.RetryPolicy)


def test_retry_info_is_a_frozen_record_of_the_retry_state(api):
    info = api.retry_policy.RetryInfo(retry_number=0, elapsed_seconds=0.0, last_exception=None, last_failed_at=None)
    assert (info.retry_number, info.elapsed_seconds, info.last_exception, info.last_failed_at) == (0, 0.0, None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.retry_number = 1
