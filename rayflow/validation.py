"""Checks of a workflow's event graph, run at ``Workflow()`` and at the first ``run()``, before any actor exists."""

from __future__ import annotations

from rayflow.decorators import StepConfig
from rayflow.errors import WorkflowConfigurationError, WorkflowRuntimeError, WorkflowValidationError
from rayflow.events import (
    Event,
    HumanResponseEvent,
    InputRequiredEvent,
    StartEvent,
    StepFailedEvent,
    StopEvent,
)


def _sub(cls: object, base: type | tuple[type, ...]) -> bool:
    return isinstance(cls, type) and issubclass(cls, base)


def start_event_class(steps: dict[str, StepConfig], workflow: str) -> type[StartEvent]:
    """The one StartEvent type the steps accept (``WorkflowConfigurationError`` for none or several)."""
    found = {t for cfg in steps.values() for t in cfg.accepted_events if _sub(t, StartEvent)}
    if not found:
        raise WorkflowConfigurationError(
            "At least one Event of type StartEvent must be received by any step. "
            f"(Workflow '{workflow}' has no @step that accepts StartEvent.)"
        )
    if len(found) > 1:
        raise WorkflowConfigurationError(
            f"Only one type of StartEvent is allowed per workflow, found {len(found)}: "
            f"{found} in workflow '{workflow}'."
        )
    return found.pop()  # type: ignore[return-value]


def stop_event_class(steps: dict[str, StepConfig], workflow: str) -> type[StopEvent]:
    """The one StopEvent type the steps return (``WorkflowConfigurationError`` for none or several)."""
    found = {t for cfg in steps.values() for t in cfg.return_types if _sub(t, StopEvent)}
    if not found:
        raise WorkflowConfigurationError(
            "At least one Event of type StopEvent must be returned by any step. "
            f"(Workflow '{workflow}' has no @step that returns StopEvent.)"
        )
    if len(found) > 1:
        raise WorkflowConfigurationError(
            f"Only one type of StopEvent is allowed per workflow, found {len(found)}: {found} in workflow '{workflow}'."
        )
    return found.pop()


def check_target(steps: dict[str, StepConfig], step: str, event: Event) -> None:
    """Refuse ``send_event(event, step=step)`` to a step that does not exist or does not accept the event."""
    config = steps.get(step)
    if config is None:
        raise WorkflowRuntimeError(f"Step {step} does not exist")
    if not _accepts(config, type(event)):
        raise WorkflowRuntimeError(f"Step {step} does not accept event of type {type(event)}")


def _accepts(cfg: StepConfig, produced: type) -> bool:
    return any(produced is t or (cfg.accept_event_subclasses and _sub(produced, t)) for t in cfg.accepted_events)


def validate_graph(steps: dict[str, StepConfig], start: type[StartEvent]) -> None:
    """Refuse steps accepting StopEvent, events consumed but never produced, and produced but never consumed."""
    produced: set[type] = {start}
    for cfg in steps.values():
        produced.update(t for t in cfg.return_types if t is not type(None))
    stop_takers = [n for n, cfg in steps.items() if any(_sub(t, StopEvent) for t in cfg.accepted_events)]
    if stop_takers:
        names = "', '".join(stop_takers)
        plural = "" if len(stop_takers) == 1 else "s"
        raise WorkflowValidationError(
            f"Step{plural} '{names}' cannot accept StopEvent. StopEvent signals the end of the workflow. "
            "Use a different Event type instead."
        )
    boundary_in = (InputRequiredEvent, HumanResponseEvent, StopEvent, StepFailedEvent)
    never_produced = sorted(
        {
            t.__name__
            for cfg in steps.values()
            for t in cfg.accepted_events
            if not _sub(t, boundary_in)
            and not any(p is t or (cfg.accept_event_subclasses and _sub(p, t)) for p in produced)
        }
    )
    if never_produced:
        raise WorkflowValidationError(
            f"The following events are consumed but never produced: {', '.join(never_produced)}"
        )
    boundary_out = (InputRequiredEvent, HumanResponseEvent, StopEvent)
    unused = sorted(
        p.__name__
        for p in produced
        if _sub(p, Event) and not _sub(p, boundary_out) and not any(_accepts(c, p) for c in steps.values())
    )
    if unused:
        raise WorkflowValidationError(f"The following events are produced but never consumed: {', '.join(unused)}")
