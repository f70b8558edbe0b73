# Ported from LlamaIndex Workflows (run-llama/workflows-py), MIT License, Copyright (c) 2025 LlamaIndex Inc.
"""Port of ``packages/llama-index-workflows/tests/test_workflow_postponed_annotations.py``: steps whose
annotations are strings (``from __future__ import annotations``), at module level and in a function.
Imports changed only."""

from __future__ import annotations

import pytest
from upstream_fixtures import OneTestEvent

from rayflow.decorators import step
from rayflow.events import (
    StartEvent,
    StopEvent,
)
from rayflow.testing import WorkflowTestRunner
from rayflow.workflow import Workflow

runs = pytest.mark.usefixtures("ray_env")


class PostponedAnnotationsWorkflow(Workflow):
    @step
    async def step1(self, ev: StartEvent) -> OneTestEvent:
        return OneTestEvent(test_param="postponed")

    @step
    async def step2(self, ev: OneTestEvent) -> StopEvent:
        return StopEvent(result=f"Handled {ev.test_param}")


@runs
async def test_workflow_postponed_annotations() -> None:
    r = await WorkflowTestRunner(PostponedAnnotationsWorkflow()).run()
    assert r.result == "Handled postponed"


@runs
async def test_workflow_forward_reference() -> None:
    class ForwardRefWorkflow(Workflow):
        @step
        async def step1(self, ev: StartEvent) -> OneTestEvent:
            return OneTestEvent(test_param="forward")

        @step
        async def step2(self, ev: OneTestEvent) -> StopEvent:
            return StopEvent(result=f"Handled {ev.test_param}")

    r = await WorkflowTestRunner(ForwardRefWorkflow()).run()
    assert r.result == "Handled forward"
