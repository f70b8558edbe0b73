"""The engine's internal events, for a caller that streams them (``stream_events(expose_internal=True)``): each
invocation's state (preparing, running, not running), the run going idle, an event no step or wait took. Made
only for runs whose caller asked (``Run.internal``), as plain tuples on the run's stream; the caller's side builds
the events (``rayflow.events.internal_event``). Part of the reducer; plain data, no I/O."""

from __future__ import annotations

from rayflow.core.commands import Publish, WorkItem
from rayflow.core.envelope import INTERNAL_KEYS, Envelope, Kind
from rayflow.core.state import Run

__all__ = ["idle", "ignored", "step_state"]


def step_state(
    run_id: str, step: str, state: str, worker: str, item: WorkItem, returned: Envelope | None = None
) -> Publish:
    """An invocation of ``step`` for ``item`` is ``state`` on ``worker``. As in LlamaIndex, its input is named by
    class name while it prepares and runs, and as ``<class '...'>`` (with the output) once it is over."""
    given = item.envelope.class_name if item.members is None else "list"
    if state == "not_running":
        given = f"<class '{item.envelope.type_name}'>"
        output = None if returned is None else f"<class '{returned.type_name}'>"
    else:
        output = None
    return _publish(run_id, ("step", step, state, worker, given, output))


def idle(run: Run) -> Publish | None:
    """The run waits for an event from outside, told once each time it becomes so."""
    if run.idle_told:
        return None
    run.idle_told = True
    return _publish(run.run_id, ("idle",))


def ignored(run: Run, envelope: Envelope, idle_now: bool) -> Publish:
    """``envelope`` reached the run and nothing took it."""
    qualified = envelope.type_name
    return _publish(run.run_id, ("unhandled", envelope.class_name, qualified, envelope.target, idle_now))


def _publish(run_id: str, fields: tuple[object, ...]) -> Publish:
    return Publish(run_id, Envelope(INTERNAL_KEYS, fields, Kind.STREAM))
