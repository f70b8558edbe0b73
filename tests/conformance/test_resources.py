"""Conformance: ``Annotated[T, Resource(factory)]``, objects a step receives from a factory.

Sync and async factories; a cached resource (the default) is built once and handed to every later call,
``cache=False`` builds one per call. Factories count their calls in a file of ``tmp_path`` (on rayflow they
run in step actors), and steps return what they observed of the objects they got.
"""

from typing import Annotated

import pytest


class Tally:
    """A stand-in for a heavy object (a model, a client): it counts the calls that used it."""

    def __init__(self) -> None:
        self.uses = 0

    def use(self) -> int:
        self.uses += 1
        return self.uses


def counting_factory(calls_file):
    """A factory that builds a ``Tally`` and appends a line to ``calls_file`` for each object it builds."""

    def build_tally() -> Tally:
        with open(calls_file, "a") as out:
            out.write("built\n")
        return Tally()

    return build_tally


def built(calls_file) -> int:
    return len(calls_file.read_text().splitlines()) if calls_file.exists() else 0


async def test_each_step_receives_what_its_sync_or_async_factory_builds(engine):
    class Greeter:
        def greet(self, name: str) -> str:
            return f"hello {name}"

    class Client:
        def __init__(self, endpoint: str) -> None:
            self.endpoint = endpoint

    def make_greeter() -> Greeter:
        return Greeter()

    async def connect() -> Client:
        return Client("https://example.invalid/api")

    class Greeted(engine.Event):
        text: str

    class Pipeline(engine.Workflow):
        @engine.step
        def greet(
            self, ev: engine.StartEvent, greeter: Annotated[Greeter, engine.resource.Resource(make_greeter)]
        ) -> Greeted:
            return Greeted(text=greeter.greet(ev.name))

        @engine.step
        async def send(
            self,
            ctx: engine.Context,
            client: Annotated[Client, engine.resource.Resource(connect)],
            ev: Greeted,
        ) -> engine.StopEvent:
            await ctx.store.set("endpoint", client.endpoint)
            return engine.StopEvent(result=(ev.text, type(client).__name__, client.endpoint))

    handler = Pipeline().run(name="ada")
    assert await handler == ("hello ada", "Client", "https://example.invalid/api")
    assert await handler.ctx.store.get("endpoint") == "https://example.invalid/api"


async def test_a_cached_resource_is_built_once_and_reused_by_every_call_of_a_step(engine, tmp_path):
    calls_file = tmp_path / "calls"
    build = counting_factory(str(calls_file))

    class Tick(engine.Event):
        n: int

    class Ticking(engine.Workflow):
        @engine.step(num_workers=1)
        async def tick(
            self, ev: engine.StartEvent | Tick, tally: Annotated[Tally, engine.resource.Resource(build)]
        ) -> Tick | engine.StopEvent:
            uses = tally.use()
            return Tick(n=uses) if uses < 3 else engine.StopEvent(result=uses)

    assert await Ticking().run() == 3
    assert built(calls_file) == 1


async def test_an_uncached_resource_is_built_again_for_every_call(engine, tmp_path):
    calls_file = tmp_path / "calls"
    build = counting_factory(str(calls_file))

    class Tick(engine.Event):
        seen: list[int]

    class Fresh(engine.Workflow):
        @engine.step(num_workers=1)
        async def tick(
            self,
            ev: engine.StartEvent | Tick,
            tally: Annotated[Tally, engine.resource.Resource(build, cache=False)],
        ) -> Tick | engine.StopEvent:
            seen = [*(ev.seen if isinstance(ev, Tick) else []), tally.use()]
            return Tick(seen=seen) if len(seen) < 3 else engine.StopEvent(result=seen)

    assert await Fresh().run() == [1, 1, 1]
    assert built(calls_file) == 3


async def test_a_cached_resource_lasts_as_long_as_its_workflow_instance(engine, tmp_path):
    calls_file = tmp_path / "calls"
    build = counting_factory(str(calls_file))

    class Counting(engine.Workflow):
        @engine.step(num_workers=1)
        async def count(
            self, ev: engine.StartEvent, tally: Annotated[Tally, engine.resource.Resource(build)]
        ) -> engine.StopEvent:
            return engine.StopEvent(result=tally.use())

    kept = Counting()
    assert [await kept.run(), await kept.run()] == [1, 2]
    assert await Counting().run() == 1
    assert built(calls_file) == 2


@pytest.mark.differs("a cached Resource is cached per step actor, not per workflow: two steps get two objects")
async def test_steps_of_one_workflow_share_one_cached_resource(engine, tmp_path):
    calls_file = tmp_path / "calls"
    build = counting_factory(str(calls_file))

    class Handoff(engine.Event):
        pass

    class Shared(engine.Workflow):
        @engine.step
        async def first(
            self, ev: engine.StartEvent, tally: Annotated[Tally, engine.resource.Resource(build)]
        ) -> Handoff:
            tally.use()
            return Handoff()

        @engine.step
        async def second(
            self, ev: Handoff, tally: Annotated[Tally, engine.resource.Resource(build)]
        ) -> engine.StopEvent:
            return engine.StopEvent(result=tally.use())

    assert await Shared().run() == 2
    assert built(calls_file) == 1
