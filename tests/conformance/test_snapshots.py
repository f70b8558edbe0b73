"""Conformance: context snapshots, ``ctx.to_dict()`` and ``Context.from_dict(workflow, data)``.

A snapshot is JSON with the default serializer and carries the state into a new context (of the same or
another workflow); ``PickleSerializer`` carries values JSON cannot hold; a snapshot taken while a run waits
can be resumed. Loading one names classes to rebuild: which of them get imported is checked last.
"""

import json
import sys
import uuid
from fractions import Fraction

import pytest
from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator


class Coordinates:
    """Neither a pydantic model nor JSON: ``Trip`` says how to write it and read it back."""

    def __init__(self, lat: float, lon: float) -> None:
        self.lat, self.lon = lat, lon


class Trip(BaseModel):
    """Typed state with a field of an arbitrary type, serialised by the model's own field serializer.

    Module level: LlamaIndex's default serializer rebuilds typed state by importing the class it names."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    name: str = ""
    origin: Coordinates = Field(default_factory=lambda: Coordinates(0.0, 0.0))

    @field_serializer("origin")
    def _write_origin(self, origin: Coordinates) -> str:
        return f"{origin.lat},{origin.lon}"

    @field_validator("origin", mode="before")
    @classmethod
    def _read_origin(cls, value: object) -> object:
        if isinstance(value, str):
            lat, lon = value.split(",")
            return Coordinates(float(lat), float(lon))
        return value


class Harmless(BaseModel):
    """The state whose class name is swapped for an untrusted one in the loader tests."""

    x: int = 0


async def test_a_json_snapshot_restores_the_state_into_a_context_that_another_workflow_can_seed_and_run(engine):
    class Writer(engine.Workflow):
        @engine.step
        async def write(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            await ctx.store.set("topic", "snapshots")
            await ctx.store.set("meta.pages", [1, 2, 3])
            await ctx.store.set("meta.draft", True)
            return engine.StopEvent(result="written")

    class Reader(engine.Workflow):
        @engine.step
        async def read(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            return engine.StopEvent(result=(await ctx.store.get("topic"), await ctx.store.get("added")))

    handler = Writer().run()
    await handler
    data = json.loads(json.dumps(handler.ctx.to_dict()))
    assert data["is_running"] is False

    reader = Reader()
    restored = engine.Context.from_dict(reader, data)
    assert await restored.store.get("topic") == "snapshots"
    assert await restored.store.get("meta") == {"pages": [1, 2, 3], "draft": True}
    await restored.store.set("added", "seeded after loading")
    assert await reader.run(ctx=restored) == ("snapshots", "seeded after loading")


async def test_typed_state_round_trips_as_its_model_with_the_default_serializer(engine):
    class Travel(engine.Workflow):
        @engine.step
        async def plan(self, ctx: engine.Context[Trip], ev: engine.StartEvent) -> engine.StopEvent:
            async with ctx.store.edit_state() as state:
                state.name = "coast"
                state.origin = Coordinates(48.85, 2.35)
            return engine.StopEvent()

    workflow = Travel()
    handler = workflow.run()
    await handler
    data = json.loads(json.dumps(handler.ctx.to_dict()))
    state = await engine.Context.from_dict(workflow, data).store.get_state()
    assert isinstance(state, Trip)
    assert isinstance(state.origin, Coordinates)
    assert (state.name, state.origin.lat, state.origin.lon) == ("coast", 48.85, 2.35)


async def test_a_model_stored_as_a_state_value_round_trips_as_that_model(engine):
    class Citation(engine.Event):
        source: str
        page: int

    class Cite(engine.Workflow):
        @engine.step
        async def keep(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.StopEvent:
            await ctx.store.set("last", Citation(source="manual", page=12))
            return engine.StopEvent()

    workflow = Cite()
    handler = workflow.run()
    await handler
    data = json.loads(json.dumps(handler.ctx.to_dict()))
    serializer = engine.context.JsonSerializer(allowed_types=[Citation])
    value = await engine.Context.from_dict(workflow, data, serializer=serializer).store.get("last")
    assert type(value).__name__ == "Citation"
    assert (value.source, value.page) == ("manual", 12)


def _one_step_workflow(engine):
    """A workflow that only gives a context a home: these tests write its store directly, from the caller."""

    class Exact(engine.Workflow):
        @engine.step
        async def only(self, ev: engine.StartEvent) -> engine.StopEvent:
            return engine.StopEvent()

    return Exact()


async def test_the_pickle_serializer_carries_values_json_cannot_hold(engine):
    workflow = _one_step_workflow(engine)
    ctx = engine.Context(workflow)
    await ctx.store.set("ratio", Fraction(1, 3))
    await ctx.store.set("label", "thirds")
    pickling = engine.context.PickleSerializer()
    data = json.loads(json.dumps(ctx.to_dict(serializer=pickling)))
    restored = engine.Context.from_dict(workflow, data, serializer=pickling)
    assert await restored.store.get("ratio") == Fraction(1, 3)
    assert await restored.store.get("label") == "thirds"


async def test_the_json_serializer_refuses_a_value_it_cannot_hold_naming_its_key(engine):
    ctx = engine.Context(_one_step_workflow(engine))
    await ctx.store.set("ratio", Fraction(2, 3))
    with pytest.raises(ValueError, match=r"serialize.*\bratio\b"):
        ctx.to_dict()


async def test_a_pickled_snapshot_is_refused_by_the_json_serializer(engine):
    workflow = _one_step_workflow(engine)
    ctx = engine.Context(workflow)
    await ctx.store.set("ratio", Fraction(1, 3))
    data = ctx.to_dict(serializer=engine.context.PickleSerializer())
    with pytest.raises(ValueError, match="deserialize"):
        restored = engine.Context.from_dict(workflow, data)
        await restored.store.get("ratio")


async def test_a_snapshot_from_a_newer_format_is_refused(engine):
    class Plain(engine.Workflow):
        @engine.step
        async def only(self, ev: engine.StartEvent) -> engine.StopEvent:
            return engine.StopEvent()

    payload = {"version": 10**6, "state": {}, "is_running": False}
    with pytest.raises(engine.ContextSerdeError, match="newer version"):
        engine.Context.from_dict(Plain(), payload)


async def test_a_snapshot_taken_while_a_run_waits_for_input_resumes_in_a_new_context(engine):
    class Approval(engine.Workflow):
        @engine.step
        async def request(self, ctx: engine.Context, ev: engine.StartEvent) -> engine.InputRequiredEvent:
            await ctx.store.set("request", ev.item)
            return engine.InputRequiredEvent(prefix="approve?")

        @engine.step
        async def decide(self, ctx: engine.Context, ev: engine.HumanResponseEvent) -> engine.StopEvent:
            return engine.StopEvent(result=f"{await ctx.store.get('request')}: {ev.response}")

    handler = Approval().run(item="laptop")
    async for ev in handler.stream_events():
        if isinstance(ev, engine.InputRequiredEvent):
            break
    data = json.loads(json.dumps(handler.ctx.to_dict()))
    await handler.cancel_run()
    assert data["is_running"] is True

    resumed_workflow = Approval()
    resumed = resumed_workflow.run(ctx=engine.Context.from_dict(resumed_workflow, data))
    resumed.ctx.send_event(engine.HumanResponseEvent(response="approved"))
    assert await resumed == "laptop: approved"


# -- which classes a loaded snapshot may name -----------------------------------------------------------------------


@pytest.fixture
def untrusted_class(tmp_path, monkeypatch):
    """The name of a class in a module on the path, not imported yet, whose import leaves a flag file; and the
    flag. A snapshot naming this class stands for untrusted data."""
    module = f"untrusted_{uuid.uuid4().hex[:8]}"
    flag = tmp_path / "imported.flag"
    (tmp_path / f"{module}.py").write_text(
        f"import pathlib\npathlib.Path({str(flag)!r}).write_text('imported')\n"
        "from pydantic import BaseModel\n\n\nclass Probe(BaseModel):\n    x: int = 0\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield f"{module}.Probe", flag
    sys.modules.pop(module, None)


async def _snapshot_naming(engine, class_name):
    """A real snapshot of typed state, with its class name replaced by ``class_name``."""

    class Holder(engine.Workflow):
        @engine.step
        async def only(self, ctx: engine.Context[Harmless], ev: engine.StartEvent) -> engine.StopEvent:
            await ctx.store.set("x", 7)
            return engine.StopEvent()

    handler = Holder().run()
    await handler
    text = json.dumps(handler.ctx.to_dict())
    assert f"{Harmless.__module__}.Harmless" in text
    return json.loads(text.replace(f"{Harmless.__module__}.Harmless", class_name))


def _loader(engine):
    """A workflow whose state is the default dict: the class the snapshot names is none of its types."""

    class Loader(engine.Workflow):
        @engine.step
        async def only(self, ev: engine.StartEvent) -> engine.StopEvent:
            return engine.StopEvent()

    return Loader()


async def test_a_serializer_with_allowed_types_never_imports_a_class_it_does_not_list(engine, untrusted_class):
    class_name, flag = untrusted_class
    data = await _snapshot_naming(engine, class_name)
    serializer = engine.context.JsonSerializer(allowed_types=[])
    # LlamaIndex refuses with a ValueError when the state is first read, rayflow with a ContextSerdeError when
    # the snapshot is loaded: both name the class and say it is not allowed, and neither imports it.
    with pytest.raises((ValueError, engine.ContextSerdeError), match=rf"{class_name}.*allowed types"):
        restored = engine.Context.from_dict(_loader(engine), data, serializer=serializer)
        await restored.store.get_state()
    assert not flag.exists()


@pytest.mark.differs("rayflow's default JsonSerializer refuses to import a class named in the data unless allowed")
async def test_the_default_serializer_imports_the_class_a_snapshot_names(engine, untrusted_class):
    class_name, flag = untrusted_class
    data = await _snapshot_naming(engine, class_name)
    state = await engine.Context.from_dict(_loader(engine), data).store.get_state()
    assert flag.exists()
    assert (type(state).__name__, state.x) == ("Probe", 7)
