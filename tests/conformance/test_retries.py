"""Conformance: step retry policies, ``ConstantDelayRetryPolicy`` and ``ExponentialBackoffRetryPolicy``.

A step that raises runs again after the policy's delay until it succeeds or the policy gives up; then the
run fails with the step's own exception. Steps count their attempts in ``ctx.store`` (they run in other
processes on rayflow). LlamaIndex 2.26 deprecates both policies (one test checks the warning; the others
ignore it). The composable ``retry_policy(...)`` API and ``ctx.retry_info()`` are in ``test_retry_api.py``.
"""

import itertools
import time

import pytest

pytestmark = pytest.mark.filterwarnings("ignore:.*RetryPolicy is deprecated:DeprecationWarning")


async def _attempt(ctx, key: str = "attempts") -> int:
    """This attempt's number, counted in the store under ``key``."""
    attempt = await ctx.store.get(key, default=0) + 1
    await ctx.store.set(key, attempt)
    return attempt


async def test_steps_are_retried_by_their_policies_until_they_succeed_spaced_by_the_delay(engine):
    delay = 0.05
    constant = engine.retry_policy.ConstantDelayRetryPolicy(maximum_attempts=3, delay=delay)
    backoff = engine.retry_policy.ExponentialBackoffRetryPolicy(
        maximum_attempts=4, initial_delay=0.01, multiplier=2.0, jitter=False
    )

    class Connected(engine.Event):
        stamps: list[float]

    class Flaky(engine.Workflow):
        @engine.step(retry_policy=constant)
        async def connect(self, ctx: engine.Context, ev: engine.StartEvent) -> Connected:
            stamps = [*await ctx.store.get("stamps", default=[]), time.time()]
            await ctx.store.set("stamps", stamps)
            if len(stamps) < 3:
                raise ConnectionError(f"service down (attempt {len(stamps)})")
            return Connected(stamps=stamps)

        @engine.step(retry_policy=backoff)
        async def query(self, ctx: engine.Context, ev: Connected) -> engine.StopEvent:
            attempt = await _attempt(ctx, "queries")
            if attempt < 4:
                raise TimeoutError(f"no answer (attempt {attempt})")
            return engine.StopEvent(result=(len(ev.stamps), attempt, ev.stamps))

    connects, queries, stamps = await Flaky().run()
    assert (connects, queries) == (3, 4)
    gaps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
    assert all(gap >= delay * 0.9 for gap in gaps), gaps


async def test_a_step_that_keeps_failing_fails_the_run_with_its_own_exception_after_the_last_attempt(engine):
    class QuotaExceeded(Exception):
        pass

    class Hopeless(engine.Workflow):
        @engine.step(retry_policy=engine.retry_policy.ConstantDelayRetryPolicy(maximum_attempts=3, delay=0.01))
        async def spend(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            raise QuotaExceeded(f"quota exceeded on attempt {await _attempt(ctx)}")

    handler = Hopeless().run()
    with pytest.raises(QuotaExceeded, match="quota exceeded on attempt 3"):
        await handler
    assert await handler.ctx.store.get("attempts") == 3


async def test_the_failed_event_of_a_step_that_spent_its_retries_counts_its_attempts(engine):
    class Hopeless(engine.Workflow):
        @engine.step(retry_policy=engine.retry_policy.ConstantDelayRetryPolicy(maximum_attempts=2, delay=0.01))
        async def spend(self, ev: engine.StartEvent) -> engine.StopEvent:
            raise PermissionError("not allowed")

    handler = Hopeless().run()
    streamed = [ev async for ev in handler.stream_events()]
    with pytest.raises(PermissionError):
        await handler
    failed = streamed[-1]
    assert isinstance(failed, engine.WorkflowFailedEvent)
    assert (failed.step_name, failed.attempts) == ("spend", 2)
    assert failed.elapsed_seconds >= 0.01


async def test_a_step_without_a_policy_runs_once(engine):
    class Once(engine.Workflow):
        @engine.step
        async def try_once(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            raise ConnectionError(f"refused on attempt {await _attempt(ctx)}")

    handler = Once().run()
    with pytest.raises(ConnectionError, match="refused on attempt 1"):
        await handler
    assert await handler.ctx.store.get("attempts") == 1


# -- the policies' own decisions ------------------------------------------------------------------------------------


def test_the_constant_policy_gives_its_delay_until_the_attempts_are_spent(api):
    policy = api.retry_policy.ConstantDelayRetryPolicy(maximum_attempts=3, delay=2.5)
    error = RuntimeError("failed")
    assert [policy.next(elapsed_time=0.0, attempts=n, error=error) for n in (1, 2, 3, 4, 50)] == [
        2.5,
        2.5,
        None,
        None,
        None,
    ]


def test_the_exponential_policy_multiplies_its_delay_up_to_the_cap_then_gives_up(api):
    policy = api.retry_policy.ExponentialBackoffRetryPolicy(
        maximum_attempts=6, initial_delay=0.5, multiplier=3.0, max_delay=10.0, jitter=False
    )
    error = RuntimeError("failed")
    delays = [policy.next(elapsed_time=0.0, attempts=n, error=error) for n in range(1, 8)]
    assert delays == [0.5, 1.5, 4.5, 10.0, 10.0, None, None]


def test_the_exponential_policy_with_jitter_stays_within_the_delay_without_it(api):
    policy = api.retry_policy.ExponentialBackoffRetryPolicy(
        maximum_attempts=10, initial_delay=1.0, multiplier=2.0, jitter=True
    )
    error = RuntimeError("failed")
    delays = [policy.next(elapsed_time=0.0, attempts=3, error=error) for _ in range(50)]
    assert all(0.0 <= d <= 4.0 for d in delays)
    assert len(set(delays)) > 1


def test_the_exponential_policy_jitters_by_default(api):
    policy = api.retry_policy.ExponentialBackoffRetryPolicy(maximum_attempts=10, initial_delay=1.0)
    error = RuntimeError("failed")
    delays = {policy.next(elapsed_time=0.0, attempts=2, error=error) for _ in range(50)}
    assert len(delays) > 1
    assert all(0.0 <= d <= 2.0 for d in delays)


def test_the_policies_defaults(api):
    rp = api.retry_policy
    error = RuntimeError("failed")
    constant = rp.ConstantDelayRetryPolicy()
    assert [constant.next(0.0, n, error) for n in (1, 2, 3)] == [5.0, 5.0, None]
    steady = rp.ExponentialBackoffRetryPolicy(jitter=False)
    assert [steady.next(0.0, n, error) for n in range(1, 6)] == [1.0, 2.0, 4.0, 8.0, None]
    assert rp.ExponentialBackoffRetryPolicy(maximum_attempts=50, jitter=False).next(0.0, 20, error) == 60.0
    jittered = rp.ExponentialBackoffRetryPolicy()
    assert jittered.next(0.0, 4, error) <= 8.0
    assert jittered.next(0.0, 5, error) is None


def test_both_policies_are_deprecated_in_favour_of_retry_policy(api):
    rp = api.retry_policy
    for make in (rp.ConstantDelayRetryPolicy, rp.ExponentialBackoffRetryPolicy):
        with pytest.warns(DeprecationWarning, match=rf"{make.__name__} is deprecated.*retry_policy\(") as caught:
            policy = make()
        assert caught[0].filename == __file__  # the warning points at the caller
        assert isinstance(policy, rp.RetryPolicy)
