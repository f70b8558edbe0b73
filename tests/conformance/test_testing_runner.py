"""``WorkflowTestRunner`` (the engine's ``testing`` module): runs a workflow to its end and hands back what it
streamed, counted by type, with the result and the run's context.

The runner is called with ``expose_internal=False`` where the test counts the stream: by default both engines'
runners also collect the internal step-state events (``StepStateChanged``), which ``test_internal_events`` pins.
"""

import importlib


def _tour(engine):
    class Stop(engine.Event):
        town: str

    class Tour(engine.Workflow):
        @engine.step
        async def depart(self, ctx: engine.Context, ev: engine.StartEvent) -> Stop:
            async with ctx.store.edit_state() as state:
                state.departed_from = ev.origin
            for town in ("Arles", "Nimes"):
                ctx.write_event_to_stream(Stop(town=town))
            return Stop(town="Uzes")

        @engine.step
        async def arrive(self, ctx: engine.Context, ev: Stop) -> engine.StopEvent:
            async with ctx.store.edit_state() as state:
                state.arrived_at = ev.town
            return engine.StopEvent(result=f"arrived at {ev.town}")

    return Tour(), Stop


async def test_the_runner_collects_the_stream_counts_it_keeps_the_result_and_context_and_excludes_types(engine):
    tour, stop_class = _tour(engine)
    runner = engine.testing.WorkflowTestRunner(tour)
    result = await runner.run(start_event=engine.StartEvent(origin="Avignon"), expose_internal=False)

    runner_module = importlib.import_module(f"{engine.package.__name__}.testing.runner")
    assert isinstance(result, runner_module.WorkflowTestResult)
    assert [type(ev) for ev in result.collected] == [stop_class, stop_class, engine.StopEvent]
    assert [ev.town for ev in result.collected[:2]] == ["Arles", "Nimes"]
    assert result.event_types == {stop_class: 2, engine.StopEvent: 1}
    assert len(result.collected) == sum(result.event_types.values())
    assert result.result == "arrived at Uzes"
    assert await result.ctx.store.get("departed_from") == "Avignon"
    assert await result.ctx.store.get("arrived_at") == "Uzes"

    excluding = await runner.run(
        start_event=engine.StartEvent(origin="Orange"), expose_internal=False, exclude_events=[stop_class]
    )
    assert [type(ev) for ev in excluding.collected] == [engine.StopEvent]
    assert excluding.event_types == {engine.StopEvent: 1}
    assert excluding.result == "arrived at Uzes"
    assert await excluding.ctx.store.get("departed_from") == "Orange"
