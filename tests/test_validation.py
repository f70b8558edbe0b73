"""Validation before any actor exists: at decoration, at ``Workflow()``, and at the first run."""

from __future__ import annotations

import pytest

from rayflow import Context, Event, StartEvent, StopEvent, Workflow, step
from rayflow.errors import WorkflowConfigurationError, WorkflowRuntimeError, WorkflowValidationError


class A(Event):
    x: int = 0


class B(Event):
    pass


def test_step_needs_an_event_parameter():
    with pytest.raises(WorkflowValidationError, match="at least one parameter annotated as type Event"):

        class W(Workflow):
            @step
            async def s(self, ctx: Context, x: int) -> StopEvent:
                return StopEvent()


def test_step_needs_a_return_annotation():
    with pytest.raises(WorkflowValidationError, match="must be annotated with their type"):

        class W(Workflow):
            @step
            async def s(self, ev: StartEvent):  # type: ignore[no-untyped-def]
                return StopEvent()


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_num_workers_must_be_a_positive_int(bad):
    with pytest.raises(WorkflowValidationError, match="num_workers must be an integer greater than 0"):

        class W(Workflow):
            @step(num_workers=bad)
            async def s(self, ev: StartEvent) -> StopEvent:
                return StopEvent()


def test_free_function_step_needs_a_workflow():
    with pytest.raises(WorkflowValidationError, match="please pass a workflow class"):

        @step
        async def s(ev: StartEvent) -> StopEvent:
            return StopEvent()


def test_workflow_needs_one_start_and_one_stop_event():
    class NoStart(Workflow):
        @step
        async def s(self, ev: A) -> StopEvent:
            return StopEvent()

    class NoStop(Workflow):
        @step
        async def s(self, ev: StartEvent) -> A:
            return A()

    class MyStart(StartEvent):
        pass

    class TwoStarts(Workflow):
        @step
        async def s1(self, ev: StartEvent) -> StopEvent:
            return StopEvent()

        @step
        async def s2(self, ev: MyStart) -> StopEvent:
            return StopEvent()

    with pytest.raises(WorkflowConfigurationError, match="has no @step that accepts StartEvent"):
        NoStart()
    with pytest.raises(WorkflowConfigurationError, match="has no @step that returns StopEvent"):
        NoStop()
    with pytest.raises(WorkflowConfigurationError, match="Only one type of StartEvent is allowed"):
        TwoStarts()


def _actors_of(workflow: str) -> list[str]:
    """Named actors of workflows of the class ``workflow`` in the session's Ray, if one runs."""
    import ray

    if not ray.is_initialized():
        return []
    return [a for a in ray.util.list_named_actors() if a.startswith(f"rayflow.{workflow}.")]


async def test_first_run_checks_the_event_graph_before_any_actor():
    class Unconsumed(Workflow):
        @step
        async def s(self, ev: StartEvent) -> A | StopEvent:
            return StopEvent()

    class Unproduced(Workflow):
        @step
        async def s(self, ev: StartEvent) -> StopEvent:
            return StopEvent()

        @step
        async def t(self, ev: B) -> StopEvent:
            return StopEvent()

    with pytest.raises(WorkflowValidationError, match="produced but never consumed: A"):
        Unconsumed().run()
    with pytest.raises(WorkflowValidationError, match="consumed but never produced: B"):
        Unproduced().validate()
    Unconsumed(disable_validation=True)  # made, not run: no check, and no actor either
    assert not _actors_of("Unconsumed")


async def test_start_kwargs_that_do_not_fit_a_custom_start_event_fail_naming_it():
    class Ask(StartEvent):
        question: str

    class W(Workflow):
        @step
        async def s(self, ev: Ask) -> StopEvent:
            return StopEvent(result=ev.question)

    wf = W()
    with pytest.raises(WorkflowRuntimeError, match="start event of type 'Ask'"):
        wf.run(wrong=1)
    assert not _actors_of("W")


def test_events_behave_like_dicts_for_extra_fields():
    ev = A(x=1, query="q", k=3)
    assert ev.x == 1 and ev.query == "q" and ev["k"] == 3 and ev.get("missing", 7) == 7
    assert "query" in ev and set(ev.keys()) == {"query", "k"} and len(ev) == 2
    start = StartEvent(query="hello")
    assert start.get("query") == start.query == "hello"
    assert StopEvent(result={"a": 1}).result == {"a": 1}
    with pytest.raises(AttributeError):
        _ = ev.nope


def test_decoration_notes_which_steps_read_self():
    """A step that never reads ``self`` may run on another step's actor (a lent slot); one that does never does."""
    from rayflow.spec import config_of

    class Base(Workflow):
        @step
        async def start(self, ev: StartEvent) -> A:
            return A(x=1)

    class W(Base):
        factor = 2

        @step
        async def pure(self, ev: A) -> StopEvent:
            return StopEvent(result=ev.x * 2)

        @step
        async def reads(self, ev: B) -> StopEvent:
            return StopEvent(result=self.factor)

        @step
        async def nested(self, ev: StartEvent) -> StopEvent:
            return StopEvent(result=[(lambda: self.factor)() for _ in range(1)])

        @step
        async def start(self, ev: StartEvent) -> A:
            return await super().start(ev)

        @step
        async def other_name(this, ev: B) -> StopEvent:
            return StopEvent(result=this.factor)

    names = ("pure", "reads", "nested", "start", "other_name")
    flags = {name: config_of(getattr(W, name)).uses_self for name in names}
    assert flags == {"pure": False, "reads": True, "nested": True, "start": True, "other_name": True}
