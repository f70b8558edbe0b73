"""Every error rayflow raises: one family, each picklable so it survives crossing Ray processes."""

from __future__ import annotations

__all__ = [
    "ContextSerdeError",
    "ContextStateError",
    "EventSerializationError",
    "JournalError",
    "PayloadLostError",
    "RayflowError",
    "ServeConfigurationError",
    "StateLockLost",
    "StepTimeoutError",
    "WorkflowActorDiedError",
    "WorkflowCancelledByUser",
    "WorkflowConfigurationError",
    "WorkflowDone",
    "WorkflowRuntimeError",
    "WorkflowStepDoesNotExistError",
    "WorkflowStuckError",
    "WorkflowTimeoutError",
    "WorkflowValidationError",
]


class RayflowError(Exception):
    """Base class of the errors rayflow raises."""


class WorkflowValidationError(RayflowError):
    """A step signature or the workflow's event graph is invalid."""


class WorkflowConfigurationError(RayflowError):
    """The workflow's configuration is invalid (found before any actor is created)."""


class WorkflowTimeoutError(RayflowError):
    """A run exceeded its timeout."""


class WorkflowRuntimeError(RayflowError):
    """A step or an event misbehaved while a run was going on."""


class WorkflowDone(RayflowError):
    """The run already ended (LlamaIndex's name, kept for code that catches it; rayflow does not raise it)."""


class WorkflowCancelledByUser(RayflowError):
    """The run was cancelled through its handler."""


class WorkflowStepDoesNotExistError(WorkflowRuntimeError):
    """An event was addressed to a step the workflow does not have."""


class ContextSerdeError(RayflowError):
    """A context snapshot could not be written or read."""


class ContextStateError(RayflowError):
    """A context method was called where it cannot work (e.g. a step-only call from the handler)."""


class WorkflowStuckError(WorkflowTimeoutError, WorkflowRuntimeError):
    """A run can never finish (nothing runs or waits, no StopEvent came): raised at once, not after the timeout."""


class EventSerializationError(WorkflowRuntimeError):
    """An event could not be pickled to travel between steps; names the step and the event type."""


class StepTimeoutError(WorkflowRuntimeError, TimeoutError):
    """A step invocation ran past its ``@step(timeout=...)``; it was stopped (its actor replaced if it was blocked)."""


class StateLockLost(ContextStateError):
    """An ``edit_state`` block lost its lock (its lease ran out, or its holder was released): nothing was saved."""


class WorkflowActorDiedError(WorkflowRuntimeError):
    """An actor of the workflow instance died (its dispatcher or its context actor): every run it served fails."""


class PayloadLostError(WorkflowActorDiedError):
    """An event's large payload is gone from Ray's object store: the actor that owned or held it died."""


class JournalError(RayflowError):
    """A run journal could not be read or written, or holds no record of the run asked for."""


class ServeConfigurationError(RayflowError):
    """``rayflow serve`` was told to listen where it may not (beyond this machine without a token)."""
