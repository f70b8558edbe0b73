"""What is refused before anything runs, and when: a step's signature when ``@step`` decorates it, the start and
stop events when ``Workflow()`` is made, the event graph at the first ``run()`` (or ``validate()``).

(Named ``test_workflow_validation`` because ``tests/test_validation.py`` holds rayflow's own validation tests.)
"""

import pytest


def test_a_step_without_an_event_parameter_is_refused_when_decorated(engine):
    with pytest.raises(engine.WorkflowValidationError, match="Event"):

        class NoEvent(engine.Workflow):
            @engine.step
            async def lonely(self, count: int) -> engine.StopEvent:
                return engine.StopEvent()

    def bare() -> None:
        pass

    with pytest.raises(engine.WorkflowValidationError, match="parameter"):
        engine.step()(bare)


def test_a_step_without_a_return_annotation_is_refused_when_decorated(engine):
    with pytest.raises(engine.WorkflowValidationError, match=r"[Rr]eturn"):

        class Unannotated(engine.Workflow):
            @engine.step
            async def vague(self, ev: engine.StartEvent):
                return engine.StopEvent()


@pytest.mark.parametrize("workers", [0, -2, 0.5, "3"])
def test_num_workers_must_be_a_positive_int(engine, workers):
    with pytest.raises(engine.WorkflowValidationError, match="num_workers must be an integer greater than 0"):

        class Crowd(engine.Workflow):
            @engine.step(num_workers=workers)
            async def gather(self, ev: engine.StartEvent) -> engine.StopEvent:
                return engine.StopEvent()


def test_a_free_function_step_needs_its_workflow_named(engine):
    with pytest.raises(engine.WorkflowValidationError, match="stray") as caught:

        @engine.step
        async def stray(ev: engine.StartEvent) -> engine.StopEvent:
            return engine.StopEvent()

    assert "workflow" in str(caught.value)


def test_add_step_refuses_a_name_already_taken_and_an_undecorated_function(engine):
    class Kitchen(engine.Workflow):
        @engine.step
        async def cook(self, ev: engine.StartEvent) -> engine.StopEvent:
            return engine.StopEvent()

    with pytest.raises(engine.WorkflowValidationError, match="cook") as caught:

        @engine.step(workflow=Kitchen)
        async def cook(ev: engine.StartEvent) -> engine.StopEvent:
            return engine.StopEvent()

    assert "already" in str(caught.value)

    async def wash(ev: engine.StartEvent) -> engine.StopEvent:
        return engine.StopEvent()

    with pytest.raises(engine.WorkflowValidationError, match="wash") as caught:
        Kitchen.add_step(wash)
    assert "@step" in str(caught.value)


def test_a_workflow_with_no_step_taking_a_start_event_is_refused_when_made(engine):
    class Middle(engine.Event):
        pass

    class Headless(engine.Workflow):
        @engine.step
        async def middle(self, ev: Middle) -> engine.StopEvent:
            return engine.StopEvent()

    with pytest.raises(engine.WorkflowConfigurationError) as caught:
        Headless()
    assert "StartEvent" in str(caught.value)
    assert "Headless" in str(caught.value)


def test_a_workflow_with_no_step_returning_a_stop_event_is_refused_when_made(engine):
    class Middle(engine.Event):
        pass

    class Endless(engine.Workflow):
        @engine.step
        async def begin(self, ev: engine.StartEvent) -> Middle:
            return Middle()

        @engine.step
        async def middle(self, ev: Middle) -> None:
            return None

    with pytest.raises(engine.WorkflowConfigurationError) as caught:
        Endless()
    assert "StopEvent" in str(caught.value)
    assert "Endless" in str(caught.value)


def test_a_workflow_with_two_start_or_two_stop_event_types_is_refused_when_made(engine):
    class Kickoff(engine.StartEvent):
        pass

    class Whistle(engine.StopEvent):
        pass

    class TwoStarts(engine.Workflow):
        @engine.step
        async def one(self, ev: Kickoff) -> engine.StopEvent:
            return engine.StopEvent()

        @engine.step
        async def other(self, ev: engine.StartEvent) -> engine.StopEvent:
            return engine.StopEvent()

    with pytest.raises(engine.WorkflowConfigurationError, match="StartEvent") as caught:
        TwoStarts()
    assert "found 2" in str(caught.value)

    class TwoStops(engine.Workflow):
        @engine.step
        async def one(self, ev: engine.StartEvent) -> Whistle:
            return Whistle()

        @engine.step
        async def other(self, ev: engine.StartEvent) -> engine.StopEvent:
            return engine.StopEvent()

    with pytest.raises(engine.WorkflowConfigurationError, match="StopEvent") as caught:
        TwoStops()
    assert "found 2" in str(caught.value)


def test_an_event_produced_but_never_consumed_is_refused_at_the_first_run(engine):
    class Leftover(engine.Event):
        pass

    class Wasteful(engine.Workflow):
        @engine.step
        async def make(self, ev: engine.StartEvent) -> Leftover | engine.StopEvent:
            return engine.StopEvent()

    wasteful = Wasteful()  # the graph is not checked yet
    with pytest.raises(engine.WorkflowValidationError, match="never consumed: Leftover"):
        wasteful.run()
    with pytest.raises(engine.WorkflowValidationError, match="never consumed: Leftover"):
        wasteful.validate()


def test_an_event_consumed_but_never_produced_is_refused_at_the_first_run(engine):
    class Ghost(engine.Event):
        pass

    class Haunted(engine.Workflow):
        @engine.step
        async def begin(self, ev: engine.StartEvent) -> engine.StopEvent:
            return engine.StopEvent()

        @engine.step
        async def wait(self, ev: Ghost) -> engine.StopEvent:
            return engine.StopEvent()

    haunted = Haunted()
    with pytest.raises(engine.WorkflowValidationError, match="never produced: Ghost"):
        haunted.run()


def test_a_step_accepting_a_stop_event_is_refused_at_the_first_run(engine):
    class Afterlife(engine.Workflow):
        @engine.step
        async def begin(self, ev: engine.StartEvent) -> engine.StopEvent:
            return engine.StopEvent()

        @engine.step
        async def after_the_end(self, ev: engine.StopEvent) -> engine.StopEvent:
            return engine.StopEvent()

    afterlife = Afterlife()
    with pytest.raises(engine.WorkflowValidationError, match="after_the_end") as caught:
        afterlife.run()
    assert "cannot accept StopEvent" in str(caught.value)


async def test_disable_validation_runs_a_graph_that_validate_still_refuses(engine):
    class Spare(engine.Event):
        pass

    class Lenient(engine.Workflow):
        @engine.step
        async def begin(self, ev: engine.StartEvent) -> Spare | engine.StopEvent:
            return engine.StopEvent(result="ran anyway")

    lenient = Lenient(disable_validation=True)
    assert await lenient.run() == "ran anyway"
    with pytest.raises(engine.WorkflowValidationError, match="Spare"):
        lenient.validate()
