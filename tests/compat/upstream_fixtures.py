# Ported from LlamaIndex Workflows (run-llama/workflows-py), MIT License, Copyright (c) 2025 LlamaIndex Inc.
"""Port of ``packages/llama-index-workflows/tests/conftest.py``: the events, ``DummyWorkflow`` and the
``workflow`` fixture the upstream tests share (imports changed only; the ``ctx`` fixture, which builds an
internal broker, is left out). Both conftests import the fixture from here."""

import pytest
from pydantic import Field

from rayflow.decorators import step
from rayflow.events import Event, StartEvent, StopEvent
from rayflow.workflow import Workflow


class OneTestEvent(Event):
    test_param: str = Field(default="test")


class AnotherTestEvent(Event):
    another_test_param: str = Field(default="another_test")


class LastEvent(Event):
    pass


class DummyWorkflow(Workflow):
    @step
    async def start_step(self, ev: StartEvent) -> OneTestEvent:
        return OneTestEvent()

    @step
    async def middle_step(self, ev: OneTestEvent) -> LastEvent:
        return LastEvent()

    @step
    async def end_step(self, ev: LastEvent) -> StopEvent:
        return StopEvent(result="Workflow completed")


@pytest.fixture()
def workflow() -> Workflow:
    return DummyWorkflow()


@pytest.fixture()
def events() -> list:
    return [OneTestEvent, AnotherTestEvent]
