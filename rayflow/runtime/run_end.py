"""How a run's end reaches its caller: the ``EndRun`` the dispatcher sent, turned into the StopEvent ``await handler``
returns, or into the event the stream ends with and the error ``await handler`` raises. Part of the session
(``rayflow.runtime.session``), which drives runs; here only the mapping from outcome to event and error.
"""

from __future__ import annotations

from collections.abc import Callable

from rayflow.codec import EventCodec
from rayflow.core.commands import EndRun, Outcome
from rayflow.errors import (
    WorkflowActorDiedError,
    WorkflowCancelledByUser,
    WorkflowRuntimeError,
    WorkflowStuckError,
    WorkflowTimeoutError,
)
from rayflow.events import (
    Event,
    StopEvent,
    WorkflowCancelledEvent,
    WorkflowFailedEvent,
    WorkflowTimedOutEvent,
)
from rayflow.journal import RunStatus

__all__ = ["JOURNAL_STATUS", "Publish", "death_of", "finish"]

#: Where a run's streamed events go on the caller's side (the handler's queue).
Publish = Callable[[Event], None]

#: The status a journal records for a run that ended without its StopEvent.
JOURNAL_STATUS = {
    Outcome.FAILED: RunStatus.FAILED,
    Outcome.STUCK: RunStatus.FAILED,
    Outcome.CANCELLED: RunStatus.CANCELLED,
    Outcome.TIMED_OUT: RunStatus.TIMED_OUT,
    Outcome.DONE: RunStatus.FAILED,  # a StopEvent that could not be read
}


def death_of(end: EndRun, codec: EventCodec) -> WorkflowActorDiedError | None:
    """The error of a run ended because an actor of its set died, else None."""
    if end.outcome is not Outcome.FAILED or end.payload is None:
        return None
    error = codec.loads(end.payload)
    return error if isinstance(error, WorkflowActorDiedError) else None


def finish(end: EndRun, codec: EventCodec, timeout: float | None, publish: Publish) -> StopEvent:
    """The run's StopEvent, published last; or, published, the event of how it failed, and its error raised."""
    if end.outcome is Outcome.DONE:
        stop: StopEvent = codec.loads(end.payload.payload)
        publish(stop)
        return stop
    if end.outcome is Outcome.TIMED_OUT:
        publish(WorkflowTimedOutEvent(timeout=timeout or 0.0, active_steps=list(end.active_steps)))
        raise WorkflowTimeoutError(end.message)
    if end.outcome is Outcome.CANCELLED:
        publish(WorkflowCancelledEvent())
        raise WorkflowCancelledByUser(end.message)
    error: BaseException
    if end.outcome is Outcome.STUCK:
        error = WorkflowStuckError(end.message)
    else:
        error = codec.loads(end.payload) if end.payload is not None else WorkflowRuntimeError(end.message)
    publish(
        WorkflowFailedEvent(
            step_name=end.step or "", exception=error, attempts=end.attempts, elapsed_seconds=end.elapsed
        )
    )
    raise error
