"""Ticks: the things that happen to the dispatcher, each a plain record fed to the reducer."""

from __future__ import annotations

from dataclasses import dataclass, field

from rayflow.core.commands import WorkItem
from rayflow.core.envelope import Envelope, Failure, Waiter
from rayflow.core.state import Pending


@dataclass(frozen=True, slots=True)
class RunStarted:
    """The driver started a run with its start event; ``timeout`` in seconds, None for none."""

    run_id: str
    ctx_id: str
    start: Envelope
    timeout: float | None
    now: float
    #: The caller streams the engine's internal events (``stream_events(expose_internal=True)``).
    internal: bool = False


@dataclass(frozen=True, slots=True)
class RunResumed:
    """The driver resumed a run from a snapshot: its unfinished work instead of a start event."""

    run_id: str
    ctx_id: str
    pending: Pending
    timeout: float | None
    now: float


@dataclass(frozen=True, slots=True)
class WarmUp:
    """Start every step pool up to its warm size (the workflow's actors are being started)."""


@dataclass(frozen=True, slots=True)
class EventsEmitted:
    """A step (or the handler, ``step=None``) emitted events or stream items for a run."""

    run_id: str
    step: str | None
    envelopes: list[Envelope]


@dataclass(frozen=True, slots=True)
class ItemDone:
    """One work item of a step call ended: with the event it returned, with a failure, or with nothing."""

    run_id: str
    output: Envelope | None = None
    failure: Failure | None = None
    #: The step that returned ``output`` when it is not the step called (the item ran on through lent steps).
    step: str | None = None
    #: Set when the step paused in ``ctx.wait_for_event``: what it waits for.
    waiting: Waiter | None = None
    #: Set when the step failed and its retry policy retries: the item to deliver again (to ``step``, or the step
    #: called) after ``retry_after`` seconds.
    retry: WorkItem | None = None
    retry_after: float = 0.0
    #: The item did not run (its actor is retiring): deliver it again as it was.
    requeue: bool = False
    #: For a collecting step: whether the actor still holds collect buffers of this run for the step afterwards.
    holding: bool = False
    #: The events of a returned list, in order (``output`` is then None): they fan out as one new stream.
    fan_out: tuple[Envelope, ...] | None = None


@dataclass(frozen=True, slots=True)
class CallFinished:
    """A step call came back from an actor with one ``ItemDone`` per work item it carried."""

    call_id: int
    results: list[ItemDone] = field(default_factory=list)
    #: Seconds the actor spent on the call (sizes the step's next batches).
    elapsed: float = 0.0
    #: Set when the call itself failed (the actor died): its items are delivered again, to a live actor.
    lost: str | None = None
    #: Set when the actor must be replaced after this call (a stopped step left a thread blocked): why.
    retire: str | None = None
    #: CPU seconds the actor's process used while the call ran (much less than ``elapsed``: the step waits).
    cpu: float | None = None


@dataclass(frozen=True, slots=True)
class ActorStarted:
    """A new actor of a step's pool is ready to take calls."""

    step: str
    actor: int


@dataclass(frozen=True, slots=True)
class ActorStartFailed:
    """A step actor could not start (its constructor raised, or no resources)."""

    step: str
    actor: int
    message: str
    error: object = None


@dataclass(frozen=True, slots=True)
class TimeoutReached:
    """A run's deadline passed (the runtime's clock fired it at ``now``)."""

    run_id: str
    now: float


@dataclass(frozen=True, slots=True)
class CancelRequested:
    """The handler asked to cancel a run."""

    run_id: str


@dataclass(frozen=True, slots=True)
class WaiterTimedOut:
    """A ``ctx.wait_for_event`` wait ran out of time (see ArmWaiterTimeout); ``wait`` numbers it in its run."""

    run_id: str
    wait: int


@dataclass(frozen=True, slots=True)
class RequirementsChecked:
    """The answer to CheckRequirements: the waits (by number) whose requirements the envelope meets."""

    run_id: str
    envelope: Envelope
    matched: tuple[int, ...]
    held: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CallOverdue:
    """A call of a step with a timeout is not back in time (see WatchCall): its step is blocked."""

    call_id: int


@dataclass(frozen=True, slots=True)
class ActorUnresponsive:
    """An actor did not answer within the grace period after a run it was running ended (see ConfirmStopped)."""

    step: str
    actor: int


@dataclass(frozen=True, slots=True)
class RetryDue:
    """A failed item's retry wait is over (see ArmRetry)."""

    run_id: str
    number: int


@dataclass(frozen=True, slots=True)
class GrowthDue:
    """A step's pool, bounded by the cluster's cores until its kind (computing or waiting) is known, may grow to
    ``num_workers`` if its first calls have still not come back (see ArmGrowth)."""

    step: str


@dataclass(frozen=True, slots=True)
class CallWaiting:
    """A call of ``step`` is seen awaiting while its pool does not know yet whether the step computes or waits (its
    actor's event loop idle most of the call's time so far). The step waits on I/O, so calls of other runs may share
    its actors at once instead of waiting for new ones, until a call that comes back says otherwise."""

    step: str


@dataclass(frozen=True, slots=True)
class InternalAsked:
    """The caller of run ``run_id`` streams the engine's internal events from now on."""

    run_id: str


Tick = (
    WarmUp
    | InternalAsked
    | RunStarted
    | RunResumed
    | EventsEmitted
    | CallFinished
    | ActorStarted
    | ActorStartFailed
    | TimeoutReached
    | CancelRequested
    | WaiterTimedOut
    | RequirementsChecked
    | CallOverdue
    | ActorUnresponsive
    | RetryDue
    | GrowthDue
    | CallWaiting
)
