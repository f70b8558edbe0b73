"""Conformance: the graph checks of a workflow's first run (``WorkflowGraphCheck``): a step no event from the start
reaches and a step whose events lead to no end are refused together, naming the steps; ``Workflow(skip_graph_checks=
{...})`` skips a check for the whole workflow and ``@step(skip_graph_checks=[...])`` for one step; an unknown check
name is refused."""

from __future__ import annotations

import pytest


def _island(engine, *, step_skips=None):
    class Ping(engine.Event):
        pass

    class Pong(engine.Event):
        pass

    kwargs = {} if step_skips is None else {"skip_graph_checks": step_skips}

    class Island(engine.Workflow):
        @engine.step
        async def start(self, ev: engine.StartEvent) -> engine.StopEvent:
            return engine.StopEvent(result="done")

        @engine.step(**kwargs)
        async def ping(self, ev: Ping) -> Pong:
            return Pong()

        @engine.step(**kwargs)
        async def pong(self, ev: Pong) -> Ping:
            return Ping()

    return Island


async def test_unreachable_and_dead_end_steps_are_refused_together_by_name(engine):
    with pytest.raises(engine.WorkflowValidationError) as refused:
        await _island(engine)(timeout=30).run()
    message = str(refused.value)
    assert "Graph validation failed" in message
    assert "[reachability] Unreachable steps: ping, pong" in message
    assert "[dead_end] Dead-end steps: ping, pong" in message


async def test_checks_are_skipped_for_the_workflow_or_for_one_step(engine):
    assert await _island(engine)(timeout=30, skip_graph_checks={"reachability", "dead_end"}).run() == "done"
    assert await _island(engine, step_skips=["reachability", "dead_end"])(timeout=30).run() == "done"
    with pytest.raises(engine.WorkflowValidationError, match="dead_end"):
        await _island(engine)(timeout=30, skip_graph_checks={"reachability"}).run()


def test_an_unknown_check_name_is_refused(api):
    with pytest.raises(api.WorkflowValidationError, match="nope"):
        _island(api)(skip_graph_checks={"nope"})
