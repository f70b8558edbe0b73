"""Public calls of LlamaIndex Workflows that running its own test suite on rayflow found missing.

``Context.get_step_context()``: the running step's context, for code without a ``ctx`` parameter at hand.
"""

import pytest


async def test_get_step_context_in_a_step_is_the_context_the_step_receives(engine):
    class Probe(engine.Workflow):
        @engine.step
        async def async_step(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            found = engine.Context.get_step_context()
            return engine.StopEvent(result=(found is ctx, type(found).__name__))

    assert await Probe(timeout=30).run() == (True, "Context")


async def test_get_step_context_in_a_sync_step_without_a_ctx_parameter(engine):
    class Probe(engine.Workflow):
        @engine.step
        def sync_step(self, ev: engine.StartEvent) -> engine.StopEvent:
            return engine.StopEvent(result=type(engine.Context.get_step_context()).__name__)

    assert await Probe(timeout=30).run() == "Context"


def test_get_step_context_outside_a_step_raises(api):
    with pytest.raises(api.WorkflowRuntimeError, match="may only be called from within a step"):
        api.Context.get_step_context()
