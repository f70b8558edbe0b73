"""Failures of one item stay that item's: a retry waits off the actor (other runs' events go on meanwhile), and an
event that does not decode or a resource that cannot be built is a step failure like any other, with retries and
``@catch_error``, failing nothing else that shared its step call."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Annotated, Any

import pytest

from rayflow import (
    Context,
    Event,
    Resource,
    StartEvent,
    StopEvent,
    Workflow,
    catch_error,
    step,
)
from rayflow.events import StepFailedEvent
from rayflow.retry_policy import retry_policy, stop_after_attempt, wait_fixed

pytestmark = pytest.mark.usefixtures("ray_env")


class Retried(Workflow):
    @step(num_workers=1, retry_policy=retry_policy(wait=wait_fixed(3), stop=stop_after_attempt(2)))
    async def flaky(self, ctx: Context, ev: StartEvent) -> StopEvent:
        if ev.get("fail_first", False) and ctx.retry_info().retry_number == 0:
            raise RuntimeError("first attempt fails")
        return StopEvent(result=(ev.get("name"), ctx.retry_info().retry_number))


async def test_a_retry_waits_off_the_actor_while_other_runs_use_it():
    wf = Retried(timeout=60)
    try:
        assert await wf.run(name="warm") == ("warm", 0)
        began = time.monotonic()
        waiting = wf.run(name="a", fail_first=True)
        # The pool has one actor: while a's retry waits 3 s, b runs on it.
        assert await wf.run(name="b") == ("b", 0)
        b_took = time.monotonic() - began
        assert await waiting == ("a", 1)
        a_took = time.monotonic() - began
        assert b_took < 3.0 <= a_took
    finally:
        await wf.close()


_built: dict[str, int] = {}


def _flaky_client() -> str:
    """Fails the first time it is built in a process, then works (a connection that is refused once)."""
    count = _built["client"] = _built.get("client", 0) + 1
    if count == 1:
        raise ConnectionError("refused once")
    return f"client of {os.getpid()}"


def _broken_client() -> str:
    raise ConnectionError("never reachable")


class UsesClient(Workflow):
    @step(num_workers=1, retry_policy=retry_policy(wait=wait_fixed(0), stop=stop_after_attempt(3)))
    async def call(self, ev: StartEvent, client: Annotated[str, Resource(_flaky_client)]) -> StopEvent:
        return StopEvent(result=client.startswith("client of"))


class BrokenClient(Workflow):
    @step
    async def call(self, ev: StartEvent, client: Annotated[str, Resource(_broken_client)]) -> StopEvent:
        return StopEvent(result=client)

    @catch_error
    async def caught(self, ev: StepFailedEvent) -> StopEvent:
        return StopEvent(result=f"{ev.step_name}: {type(ev.exception).__name__}: {ev.exception}")


async def test_a_resource_that_fails_to_build_is_retried_like_a_step_failure():
    wf = UsesClient(timeout=60)
    try:
        assert await wf.run() is True
    finally:
        await wf.close()


async def test_a_resource_that_never_builds_reaches_catch_error():
    wf = BrokenClient(timeout=60)
    try:
        assert await wf.run() == "call: ConnectionError: never reachable"
    finally:
        await wf.close()


def _explode() -> Any:
    raise ValueError("this payload cannot be rebuilt here")


class Fragile:
    """Pickles in the driver; unpickling raises (a class that will not load in the step's process)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_explode, ())


class Payload(Event):
    model_config = {"arbitrary_types_allowed": True}
    value: Any = None


class Decodes(Workflow):
    @step
    async def start(self, ev: StartEvent) -> Payload:
        return Payload(value=Fragile() if ev.get("fragile", False) else 1)

    @step(num_workers=1)
    async def use(self, ev: Payload) -> StopEvent:
        return StopEvent(result=ev.value)

    @catch_error
    async def caught(self, ev: StepFailedEvent) -> StopEvent:
        return StopEvent(result=f"{ev.step_name} failed: {ev.exception} (input {ev.input_event})")


async def test_an_event_that_does_not_decode_fails_its_item_only():
    wf = Decodes(timeout=60)
    try:
        results = await asyncio.gather(wf.run(fragile=True), wf.run(), wf.run())
        assert results[0] == "use failed: this payload cannot be rebuilt here (input None)"
        assert results[1:] == [1, 1]
    finally:
        await wf.close()
