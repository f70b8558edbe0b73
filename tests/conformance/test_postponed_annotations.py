"""Steps whose annotations are strings. This module (alone in the suite) starts with
``from __future__ import annotations``: no annotation below is evaluated where it is written, and each engine
must resolve the strings when ``@step`` decorates a step, to learn which events the step takes and returns.

The events cannot be written at the top of the module, as a user would: their base class is the engine's
``Event``, and the engine is known only inside a test. So a small factory per workflow, called by the test,
defines the events and the workflow together; the strings then name the factory's locals (``Found``,
``engine.StartEvent``) and, for ``Union``, a name of this module. A second test defines its workflow in the test
itself, naming events made by a factory through a local (``kinds.Found``).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Union


def _kinds(engine):
    """The events of a small search: a page was found, or nothing was."""

    class Found(engine.Event):
        page: str

    class Missing(engine.Event):
        query: str

    return SimpleNamespace(Found=Found, Missing=Missing)


def _search(engine):
    """A search whose steps (a method, a sync method, a free function) are all annotated with strings."""
    kinds = _kinds(engine)
    Found, Missing = kinds.Found, kinds.Missing  # the names the annotations below use

    class Search(engine.Workflow):
        @engine.step
        async def look(self, ctx: engine.Context, ev: engine.StartEvent) -> Union[Found, Missing]:  # noqa: UP007
            if ev.query == "rayflow":
                return Found(page="rayflow.dev")
            return Missing(query=ev.query)

        @engine.step
        def report(self, ev: Found) -> engine.StopEvent:
            return engine.StopEvent(result=f"found {ev.page}")

    @engine.step(workflow=Search)
    async def apologise(ev: Missing) -> engine.StopEvent:
        return engine.StopEvent(result=f"nothing for {ev.query}")

    return Search()


async def test_string_annotations_naming_a_factorys_events_route_each_step(engine):
    search = _search(engine)
    assert search.start_event_class is engine.StartEvent
    assert sorted(e.__name__ for e in search.events) == ["Found", "Missing", "StartEvent", "StopEvent"]
    assert await search.run(query="rayflow") == "found rayflow.dev"
    assert await search.run(query="unicorns") == "nothing for unicorns"


async def test_a_workflow_written_in_a_test_resolves_string_annotations_from_the_test(engine):
    kinds = _kinds(engine)

    class Relay(engine.Workflow):
        @engine.step
        async def first(self, ev: engine.StartEvent) -> kinds.Found | kinds.Missing:
            return kinds.Found(page=ev.page)

        @engine.step
        async def second(self, ctx: engine.Context, ev: kinds.Found) -> engine.StopEvent:
            await ctx.store.set("relayed", ev.page)
            return engine.StopEvent(result=ev.page.upper())

        @engine.step
        async def third(self, ev: kinds.Missing) -> engine.StopEvent:
            return engine.StopEvent(result=None)

    handler = Relay().run(page="home")
    assert await handler == "HOME"
    assert await handler.ctx.store.get("relayed") == "home"
