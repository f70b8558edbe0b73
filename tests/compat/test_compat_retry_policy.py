# Ported from LlamaIndex Workflows (run-llama/workflows-py), MIT License, Copyright (c) 2026 LlamaIndex Inc.
"""Port of ``packages/llama-index-workflows/tests/test_retry_policy.py``: retries end to end, and the
delays of ``ConstantDelayRetryPolicy`` and ``ExponentialBackoffRetryPolicy``. Imports changed only.

Left out, because they belong to releases newer than LlamaIndex 2.26.1 and fail on it: the policy
attribute checks (``p.maximum_attempts`` ...), the seeded-jitter tests, and the exponential delay tables
(2.26.1 gives 1, 1, 2, 4, 8 for attempts 0..4, where the newer tests expect 1, 2, 4, 8; rayflow matches 2.26.1).
"""

import pytest

from rayflow.context import Context
from rayflow.decorators import step
from rayflow.events import Event, StartEvent, StopEvent
from rayflow.retry_policy import (
    ConstantDelayRetryPolicy,
    ExponentialBackoffRetryPolicy,
)
from rayflow.testing import WorkflowTestRunner
from rayflow.workflow import Workflow

runs = pytest.mark.usefixtures("ray_env")


class CountEvent(Event):
    """Empty event to signal a step to increment a counter in the Context."""


@runs
async def test_retry_e2e() -> None:
    class DummyWorkflow(Workflow):
        @step(retry_policy=ConstantDelayRetryPolicy(delay=0.2, maximum_attempts=4))
        async def flaky_step(self, ctx: Context, ev: StartEvent) -> StopEvent:
            count = await ctx.store.get("counter", default=0)
            ctx.send_event(CountEvent())
            if count < 3:
                raise ValueError("Something bad happened!")
            return StopEvent(result="All good!")

        @step
        async def counter(self, ctx: Context, ev: CountEvent) -> None:
            count = await ctx.store.get("counter", default=0)
            await ctx.store.set("counter", count + 1)

    res = await WorkflowTestRunner(DummyWorkflow(disable_validation=True)).run()
    assert res.result == "All good!"


def test_ConstantDelayRetryPolicy_next() -> None:
    delay = 4.2
    p = ConstantDelayRetryPolicy(maximum_attempts=5, delay=delay)
    assert p.next(elapsed_time=0.0, attempts=4, error=Exception()) == delay
    assert p.next(elapsed_time=0.0, attempts=5, error=Exception()) is None
    # This should never happen but ensure the code is resilient
    assert p.next(elapsed_time=0.0, attempts=999, error=Exception()) is None


def test_ExponentialBackoffRetryPolicy_gives_up() -> None:
    p = ExponentialBackoffRetryPolicy(maximum_attempts=3, jitter=False)
    err = Exception()
    assert p.next(elapsed_time=0.0, attempts=2, error=err) is not None
    assert p.next(elapsed_time=0.0, attempts=3, error=err) is None
    assert p.next(elapsed_time=0.0, attempts=999, error=err) is None


@runs
async def test_retry_e2e_exponential() -> None:
    class DummyWorkflow(Workflow):
        @step(
            retry_policy=ExponentialBackoffRetryPolicy(
                initial_delay=0.05, multiplier=2.0, maximum_attempts=4, jitter=False
            )
        )
        async def flaky_step(self, ctx: Context, ev: StartEvent) -> StopEvent:
            count = await ctx.store.get("counter", default=0)
            ctx.send_event(CountEvent())
            if count < 3:
                raise ValueError("Something bad happened!")
            return StopEvent(result="All good!")

        @step
        async def counter(self, ctx: Context, ev: CountEvent) -> None:
            count = await ctx.store.get("counter", default=0)
            await ctx.store.set("counter", count + 1)

    res = await WorkflowTestRunner(DummyWorkflow(disable_validation=True)).run()
    assert res.result == "All good!"
