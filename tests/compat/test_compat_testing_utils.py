# Ported from LlamaIndex Workflows (run-llama/workflows-py), MIT License, Copyright (c) 2026 LlamaIndex Inc.
"""Port of ``packages/llama-index-workflows/tests/test_testing_utils.py``: ``WorkflowTestRunner`` and
``WorkflowTestResult``. Change beyond the imports: upstream also counts ``StepStateChanged`` events,
LlamaIndex's internal step-state events that rayflow does not stream; those lines are left out."""

import pytest
from rayflow.testing.runner import WorkflowTestResult

from rayflow import Context, Workflow, step
from rayflow.events import (
    Event,
    StartEvent,
    StopEvent,
)
from rayflow.testing import WorkflowTestRunner

runs = pytest.mark.usefixtures("ray_env")


class SecondEvent(Event):
    greeting: str


class SimpleWf(Workflow):
    @step
    async def step_one(self, ev: StartEvent, ctx: Context) -> SecondEvent:
        async with ctx.store.edit_state() as state:
            state.test = "this is a test"
        ctx.write_event_to_stream(SecondEvent(greeting="hello"))
        return SecondEvent(greeting="hello")

    @step
    async def step_two(self, ev: SecondEvent, ctx: Context) -> StopEvent:
        async with ctx.store.edit_state() as state:
            state.hello = "hello"
        return StopEvent(result="done")


@runs
async def test_testing_utils() -> None:
    wf = SimpleWf()
    runner = WorkflowTestRunner(wf)
    wf_test_run = await runner.run(
        start_event=StartEvent(message="hi"),  # type: ignore
    )
    assert isinstance(wf_test_run, WorkflowTestResult)
    assert len(wf_test_run.collected) == sum([wf_test_run.event_types[k] for k in wf_test_run.event_types])
    assert wf_test_run.event_types.get(SecondEvent, 0) == 1
    assert wf_test_run.event_types.get(StopEvent, 0) == 1
    assert str(wf_test_run.result) == "done"
