# Ported from LlamaIndex Workflows (run-llama/workflows-py), MIT License, Copyright (c) 2026 LlamaIndex Inc.
"""Port of ``packages/llama-index-workflows/tests/test_resources.py``: ``Annotated[T, Resource(factory)]``
injection with sync and async factories, cached (the default) and ``cache=False``.

Changes beyond the imports:
- Upstream observes the injected objects from the test: a ``MagicMock`` the factory returns
  (``m.put.assert_called_once()``) or module globals the steps assign (``cc``, ``cc1``, ``cc2``). Steps run
  in Ray actors, where neither is the test's object (and a MagicMock does not pickle), so the factories
  build plain objects and the steps return what they observed in the result.
- Left out: ``ResourceConfig`` (rayflow has none), ``ResourceManager`` and ``_Resource`` internals.
"""

from typing import Annotated

import pytest
from pydantic import Field

from rayflow.decorators import step
from rayflow.events import Event, StartEvent, StopEvent
from rayflow.resource import Resource
from rayflow.workflow import Workflow

runs = pytest.mark.usefixtures("ray_env")


class SecondEvent(Event):
    msg: str = Field(description="A message")


class Memory:
    """rayflow: stands in for upstream's MagicMock memory; records what is put into it."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def put(self, message: str) -> None:
        self.messages.append(message)


def get_memory(*args, **kwargs) -> Memory:  # type: ignore[no-untyped-def]
    return Memory()


async def get_memory_async(*args, **kwargs) -> Memory:  # type: ignore[no-untyped-def]
    return Memory()


@runs
async def test_resource() -> None:
    class TestWorkflow(Workflow):
        @step
        def start_step(self, ev: StartEvent) -> SecondEvent:
            print("Start step is done", flush=True)
            return SecondEvent(msg="Hello")

        @step
        def f1(self, ev: SecondEvent, memory: Annotated[Memory, Resource(get_memory)]) -> StopEvent:
            memory.put(ev.msg)
            return StopEvent(result=memory.messages)  # rayflow: was m.put.assert_called_once()

    wf = TestWorkflow(disable_validation=True)
    assert await wf.run() == ["Hello"]


@runs
async def test_resource_async() -> None:
    class TestWorkflow(Workflow):
        @step
        def start_step(self, ev: StartEvent) -> SecondEvent:
            print("Start step is done", flush=True)
            return SecondEvent(msg="Hello")

        @step
        def f1(
            self,
            ev: SecondEvent,
            history: Annotated[Memory, Resource(get_memory_async)],
        ) -> StopEvent:
            history.put(ev.msg)
            return StopEvent(result=history.messages)  # rayflow: was m.put.assert_called_once()

    wf = TestWorkflow(disable_validation=True)
    assert await wf.run() == ["Hello"]


class CounterThing:
    counter = 0

    def incr(self) -> None:
        self.counter += 1


class StepEvent(Event):
    counter: int = 0


def provide_counter_thing() -> CounterThing:
    return CounterThing()


class CachingWorkflow(Workflow):
    @step
    async def test_step(
        self,
        ev: StartEvent,
        counter_thing: Annotated[CounterThing, Resource(provide_counter_thing)],
    ) -> StepEvent:
        counter_thing.incr()
        return StepEvent()

    @step
    async def test_step_2(
        self,
        ev: StepEvent,
        counter_thing: Annotated[CounterThing, Resource(provide_counter_thing)],
    ) -> StopEvent:
        counter_thing.incr()
        return StopEvent(result=counter_thing.counter)  # rayflow: was `global cc; cc = ...`


@runs
@pytest.mark.xfail(
    reason="difference: a cached Resource is built once per step actor, so two steps do not share it",
    strict=True,
)
async def test_caching_behavior() -> None:
    wf_1 = CachingWorkflow(disable_validation=True)
    cc = await wf_1.run()
    # this is expected to be 2, as it is a cached resource shared by test_step and test_step_2, which means
    # at test_step counter_thing.counter goes from 0 to 1 and at test_step_2 goes from 1 to 2
    assert cc == 2

    wf_2 = CachingWorkflow(disable_validation=True)
    cc = await wf_2.run()
    # the cache is workflow-specific, so since wf_2 is different from wf_1, we expect no interference
    # between the two
    assert cc == 2


@runs
async def test_non_caching_behavior() -> None:
    class TestWorkflow(Workflow):
        @step
        async def test_step(
            self,
            ev: StartEvent,
            counter_thing: Annotated[CounterThing, Resource(provide_counter_thing)],
        ) -> StepEvent:
            counter_thing.incr()
            return StepEvent(counter=counter_thing.counter)  # rayflow: was `global cc1; cc1 = ...`

        @step
        async def test_step_2(
            self,
            ev: StepEvent,
            counter_thing: Annotated[CounterThing, Resource(provide_counter_thing, cache=False)],
        ) -> StopEvent:
            counter_thing.incr()
            return StopEvent(result=(ev.counter, counter_thing.counter))  # rayflow: was cc2

    wf_1 = TestWorkflow(disable_validation=True)
    cc1, cc2 = await wf_1.run()
    assert cc1 == 1  # type: ignore
    assert cc2 == 1  # type: ignore
