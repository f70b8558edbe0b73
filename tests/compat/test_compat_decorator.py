# Ported from LlamaIndex Workflows (run-llama/workflows-py), MIT License, Copyright (c) 2026 LlamaIndex Inc.
"""Port of ``packages/llama-index-workflows/tests/test_decorator.py``: what ``@step`` checks at decoration,
free-function steps and ``num_workers`` validation. Imports changed only; no Ray.

``test_decorate_free_function`` reads ``Workflow._step_functions`` as upstream does; the public-API twin
(the free-function step actually runs) is ``test_free_function_step_runs`` in ``test_compat_workflow.py``.
"""

import re

import pytest

from rayflow.decorators import step
from rayflow.errors import WorkflowValidationError
from rayflow.events import Event, StartEvent, StopEvent
from rayflow.workflow import Workflow


def test_decorated_config() -> None:
    class LocalWorkflow(Workflow):
        @step
        async def entry(self, ev: StartEvent) -> StopEvent:
            return StopEvent(result="done")

    def f(self, ev: Event) -> Event:  # type: ignore[no-untyped-def]
        return Event()

    res = step(workflow=LocalWorkflow)(f)
    config = res._step_config
    assert config.accepted_events == [Event]
    assert config.event_name == "ev"
    assert config.return_types == [Event]


def test_decorate_method() -> None:
    class TestWorkflow(Workflow):
        @step
        def f1(self, ev: StartEvent) -> Event:
            return ev

        @step
        def f2(self, ev: Event) -> StopEvent:
            return StopEvent()

    wf = TestWorkflow()
    assert wf.f1._step_config
    assert wf.f2._step_config


def test_decorate_wrong_signature() -> None:
    def f() -> None:
        pass

    with pytest.raises(WorkflowValidationError):
        step()(f)


def test_decorate_free_function() -> None:
    class TestWorkflow(Workflow):
        pass

    @step(workflow=TestWorkflow)
    def f(ev: Event) -> Event:
        return Event()

    assert TestWorkflow._step_functions == {"f": f}


def test_decorate_free_function_wrong_decorator() -> None:
    with pytest.raises(
        WorkflowValidationError,
        match=re.escape("To decorate f please pass a workflow class to the @step decorator."),
    ):

        @step
        def f(ev: Event) -> Event:
            return Event()


def test_decorate_free_function_wrong_num_workers() -> None:
    class TestWorkflow(Workflow):
        pass

    with pytest.raises(WorkflowValidationError, match="num_workers must be an integer greater than 0"):

        @step(workflow=TestWorkflow, num_workers=0)
        def f1(ev: Event) -> Event:
            return Event()

    with pytest.raises(WorkflowValidationError, match="num_workers must be an integer greater than 0"):

        @step(workflow=TestWorkflow, num_workers=0.5)  # type: ignore
        def f2(ev: Event) -> Event:
            return Event()
