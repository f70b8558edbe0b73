"""The compiled workflow (``rayflow.spec``): compiled once per class, routes of plain data, start/stop/state types,
the event keys, the delivery rule, and a spec that travels to another process with a working codec."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from ray import cloudpickle

from rayflow import Context, Event, StartEvent, StopEvent, Workflow, step
from rayflow.codec import qualified_name
from rayflow.core.routing import StepRoute
from rayflow.errors import (
    WorkflowConfigurationError,
    WorkflowRuntimeError,
    WorkflowStepDoesNotExistError,
    WorkflowValidationError,
)
from rayflow.spec import WorkflowSpec
from tests.elsewhere import NO_TEST_MODULE, run_elsewhere


class Query(Event):
    text: str


class Answer(Event):
    """Named only in a step's body (``ctx.wait_for_event(Answer)``), never in a signature."""

    user: str = ""


class Base(Event):
    n: int = 0


class Derived(Base):
    pass


class Begin(StartEvent):
    topic: str = ""


class End(StopEvent):
    pass


class Ask(Workflow):
    @step
    async def ask(self, ctx: Context, ev: Begin) -> Query:
        await ctx.wait_for_event(Answer)
        return Query(text=ev.topic)

    @step(num_workers=3)
    async def exact(self, ev: Query) -> Base:
        return Base()

    @step(accept_event_subclasses=True)
    async def loose(self, ev: Base) -> End:
        return End()


def test_compiled_once_per_class() -> None:
    spec = WorkflowSpec.of(Ask)
    assert WorkflowSpec.of(Ask) is spec
    assert list(spec.steps) == ["ask", "exact", "loose"]
    assert spec.name == "Ask"


def test_recompiled_after_add_step() -> None:
    class Growing(Workflow):
        @step
        async def start(self, ev: StartEvent) -> Query:
            return Query(text="")

        @step
        async def end(self, ev: Base) -> StopEvent:
            return StopEvent()

    before = WorkflowSpec.of(Growing)

    @step(workflow=Growing)
    async def middle(ev: Query) -> Base:
        return Base()

    after = WorkflowSpec.of(Growing)
    assert after is not before
    assert list(before.steps) == ["start", "end"]
    assert list(after.steps) == ["start", "end", "middle"]
    assert after.steps["middle"].function is middle  # a free function travels with the spec
    assert after.steps["start"].function is None  # a method is looked up on the workflow instance
    assert WorkflowSpec.of(Growing) is after


def test_start_and_stop_events_are_found() -> None:
    spec = WorkflowSpec.of(Ask)
    assert spec.start_event is Begin
    assert spec.stop_event is End


def test_a_workflow_without_a_start_step_is_refused() -> None:
    class NoStart(Workflow):
        @step
        async def only(self, ev: Query) -> StopEvent:
            return StopEvent()

    with pytest.raises(WorkflowConfigurationError) as info:
        WorkflowSpec.of(NoStart)
    assert str(info.value) == (
        "At least one Event of type StartEvent must be received by any step. "
        "(Workflow 'NoStart' has no @step that accepts StartEvent.)"
    )


def test_a_workflow_without_a_stop_step_is_refused() -> None:
    class NoStop(Workflow):
        @step
        async def only(self, ev: StartEvent) -> Query:
            return Query(text="")

    with pytest.raises(WorkflowConfigurationError) as info:
        WorkflowSpec.of(NoStop)
    assert str(info.value) == (
        "At least one Event of type StopEvent must be returned by any step. "
        "(Workflow 'NoStop' has no @step that returns StopEvent.)"
    )


def test_two_start_or_two_stop_event_types_are_refused() -> None:
    class TwoStarts(Workflow):
        @step
        async def one(self, ev: StartEvent) -> StopEvent:
            return StopEvent()

        @step
        async def two(self, ev: Begin) -> StopEvent:
            return StopEvent()

    class TwoStops(Workflow):
        @step
        async def one(self, ev: StartEvent) -> StopEvent | End:
            return StopEvent()

    with pytest.raises(
        WorkflowConfigurationError, match=r"^Only one type of StartEvent is allowed per workflow, found 2: "
    ) as info:
        WorkflowSpec.of(TwoStarts)
    assert str(info.value).endswith(" in workflow 'TwoStarts'.")
    with pytest.raises(
        WorkflowConfigurationError, match=r"^Only one type of StopEvent is allowed per workflow, found 2: "
    ) as info:
        WorkflowSpec.of(TwoStops)
    assert str(info.value).endswith(" in workflow 'TwoStops'.")


def test_every_event_class_gets_a_key_including_those_named_in_a_step_body() -> None:
    keys = WorkflowSpec.of(Ask).event_keys
    for cls in (Begin, End, Query, Base, Answer, Event, StartEvent, StopEvent):
        assert keys[cls] == qualified_name(cls)
    assert Derived not in keys  # named nowhere in the workflow


def test_a_class_defined_in_a_function_and_named_in_a_step_body_gets_a_key() -> None:
    class Reply(Event):
        pass

    class Local(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> StopEvent:
            return StopEvent(result=await ctx.wait_for_event(Reply))

    key = WorkflowSpec.of(Local).event_keys[Reply]
    assert key == f"{__name__}.test_a_class_defined_in_a_function_and_named_in_a_step_body_gets_a_key.<locals>.Reply"


def _plain_values(value: Any) -> list[Any]:
    """Every leaf value inside ``value``, going through routes, tuples, lists, sets and dicts."""
    if isinstance(value, StepRoute):
        return [leaf for f in dataclasses.fields(value) for leaf in _plain_values(getattr(value, f.name))]
    if isinstance(value, tuple | list | frozenset | set):
        return [leaf for item in value for leaf in _plain_values(item)]
    if isinstance(value, dict):
        return [leaf for pair in value.items() for leaf in _plain_values(pair)]
    return [value]


def test_routes_are_plain_strings_and_numbers() -> None:
    spec = WorkflowSpec.of(Ask)
    leaves = _plain_values(spec.routes)
    assert leaves and all(v is None or type(v) in (str, int, float, bool) for v in leaves), leaves
    exact = next(r for r in spec.routes if r.name == "exact")
    assert exact.accepts == frozenset({qualified_name(Query)})
    assert exact.returns == frozenset({qualified_name(Base)})
    assert exact.num_workers == 3
    assert not exact.accept_subclasses
    assert next(r for r in spec.routes if r.name == "loose").accept_subclasses


def test_routes_load_in_a_process_that_never_imports_the_workflow(tmp_path: Path) -> None:
    """What the dispatcher gets: plain pickle of the routes loads with rayflow alone, no test module imported."""
    spec = WorkflowSpec.of(Ask)
    program = (
        "import pickle, sys\n"
        "routes = pickle.load(sys.stdin.buffer)\n"
        + NO_TEST_MODULE
        + "print(sorted((r.name, sorted(r.accepts)) for r in routes))\n"
    )
    out = run_elsewhere(program, pickle.dumps(spec.routes), tmp_path)
    assert out.decode().strip() == repr(sorted((r.name, sorted(r.accepts)) for r in spec.routes))


def test_accepts_exact_types_and_subclasses_only_when_asked() -> None:
    spec = WorkflowSpec.of(Ask)
    assert spec.accepts("exact", Query)
    assert not spec.accepts("exact", Base)
    assert spec.accepts("loose", Base)
    assert spec.accepts("loose", Derived)  # accept_event_subclasses=True
    assert not spec.accepts("loose", Query)
    assert spec.accepts("ask", Begin)
    assert not spec.accepts("ask", StartEvent)  # a base of the declared type is not taken

    class Strict(Workflow):
        @step
        async def start(self, ev: StartEvent) -> Base:
            return Base()

        @step
        async def end(self, ev: Base) -> StopEvent:
            return StopEvent()

    strict = WorkflowSpec.of(Strict)
    assert strict.accepts("end", Base)
    assert not strict.accepts("end", Derived)


def test_check_target_refuses_unknown_steps_and_events_they_do_not_take() -> None:
    spec = WorkflowSpec.of(Ask)
    spec.check_target("exact", Query(text="q"))
    spec.check_target("loose", Derived())
    with pytest.raises(WorkflowStepDoesNotExistError, match=r"^Step nowhere does not exist$") as info:
        spec.check_target("nowhere", Query(text="q"))
    assert isinstance(info.value, WorkflowRuntimeError)
    with pytest.raises(WorkflowRuntimeError) as wrong:
        spec.check_target("exact", Base())
    assert type(wrong.value) is WorkflowRuntimeError
    assert str(wrong.value) == f"Step exact does not accept event of type {Base}"


class Notes(BaseModel):
    lines: list[str] = []


class Tally(BaseModel):
    count: int = 0


def test_state_type_is_the_one_the_steps_declare() -> None:
    class Typed(Workflow):
        @step
        async def start(self, ctx: Context[Tally], ev: StartEvent) -> Query:
            return Query(text="")

        @step
        async def end(self, ctx: Context[Tally], ev: Query) -> StopEvent:
            return StopEvent()

    assert WorkflowSpec.of(Typed).state_type is Tally
    assert WorkflowSpec.of(Ask).state_type is None


def test_state_type_refuses_two_different_state_types() -> None:
    class Mixed(Workflow):
        @step
        async def start(self, ctx: Context[Tally], ev: StartEvent) -> Query:
            return Query(text="")

        @step
        async def end(self, ctx: Context[Notes], ev: Query) -> StopEvent:
            return StopEvent()

    spec = WorkflowSpec.of(Mixed)  # compiling does not refuse it; asking for the one state type does
    with pytest.raises(WorkflowValidationError) as info:
        spec.state_type  # noqa: B018
    assert str(info.value) == "Steps of Mixed declare different state types: ['Notes', 'Tally']"


def test_spec_pickles_and_its_codec_works_after_unpickling() -> None:
    spec = WorkflowSpec.of(Ask)
    sent = spec.codec.encode(Derived(n=7, note="extra"), step="exact")
    copy = cloudpickle.loads(cloudpickle.dumps(spec))
    assert copy is not spec
    assert list(copy.steps) == list(spec.steps)
    assert copy.routes == spec.routes
    assert (copy.start_event, copy.stop_event) == (Begin, End)
    assert dict(copy.event_keys) == dict(spec.event_keys)
    got = copy.codec.loads(sent.payload)
    assert type(got) is Derived
    assert (got.n, got.note) == (7, "extra")
    back = spec.codec.loads(copy.codec.encode(got).payload)
    assert back == got
    assert copy.accepts("loose", Derived)


def test_spec_of_a_class_defined_in_a_function_decodes_events_in_another_process(tmp_path: Path) -> None:
    """Like a step actor: the spec arrives by value, and its codec decodes and encodes the workflow's events."""

    class Ping(Event):
        n: int

    class Pong(Event):
        n: int

    class Local(Workflow):
        @step
        async def start(self, ev: StartEvent) -> Ping:
            return Ping(n=1)

        @step
        async def pong(self, ev: Ping) -> StopEvent:
            return StopEvent(result=Pong(n=ev.n))

    spec = WorkflowSpec.of(Local)
    payload = spec.codec.encode(Ping(n=41)).payload
    program = (
        "import sys\n"
        "from ray import cloudpickle\n"
        "spec, payload = cloudpickle.load(sys.stdin.buffer)\n" + NO_TEST_MODULE + "ping = spec.codec.loads(payload)\n"
        "pong = next(c for c in spec.event_keys if c.__name__ == 'Pong')\n"
        "assert spec.accepts('pong', type(ping))\n"
        "sys.stdout.buffer.write(spec.codec.encode(pong(n=ping.n + 1)).payload)\n"
    )
    answer = spec.codec.loads(run_elsewhere(program, cloudpickle.dumps((spec, payload)), tmp_path))
    assert type(answer) is Pong  # the key the other process wrote names this process's class
    assert answer.n == 42
