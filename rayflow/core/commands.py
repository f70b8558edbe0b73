"""Commands: what the reducer asks the runtime to do; the runtime carries them out and decides nothing."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from rayflow.core.envelope import Envelope, Requirements, Resolved


@dataclass(frozen=True, slots=True)
class Tries:
    """The attempts a step has made at one work item so far: each retry is a new delivery of the item, so a
    retry's wait holds no actor. What the retry policy and ``ctx.retry_info()`` read."""

    runs: int = 0
    #: Wall-clock seconds (``time.time()``) when the first attempt began.
    first: float = 0.0
    #: The last attempt's error: pickled (None where it does not pickle), and in words.
    error: Any = None
    message: str = ""
    failed_at: float | None = None


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One event for one step in one run; ``resolved``: the waits a rerun after ``wait_for_event`` finds answered."""

    run_id: str
    ctx_id: str
    envelope: Envelope
    resolved: Resolved = ()
    tries: Tries = Tries()
    #: Times a call carrying this item was lost with its actor (a crash): bounded, see ``RAYFLOW_MAX_DELIVERIES``.
    deliveries: int = 0
    #: Set when its last attempt ran past the step's timeout (its actor was stopped): the seconds allowed. The
    #: next actor counts that attempt as failed with a ``StepTimeoutError`` before anything else.
    timed_out: float | None = None
    #: For a join (a ``list[E]`` parameter) or a step of several event parameters: the events it runs with, in
    #: order; ``envelope`` then only names the invocation (its id, scope and state version). None for one event.
    members: tuple[Envelope, ...] | None = None


@dataclass(frozen=True, slots=True)
class Warn:
    """Something of run ``run_id`` the user should know that does not stop it, for the driver's log."""

    run_id: str
    message: str


@dataclass(frozen=True, slots=True)
class StartActor:
    """Create actor number ``actor`` of ``step``'s pool; answer with ActorStarted or ActorStartFailed."""

    step: str
    actor: int


@dataclass(frozen=True, slots=True)
class CallStep:
    """Send ``items`` to ``actor`` of ``step``'s pool; answer with CallFinished(call_id).

    ``loans``: steps whose slot is lent to this call: the actor may run an event that only one of them accepts
    itself, at once, instead of returning it (a chain of small steps without a dispatcher round trip per hop).
    """

    call_id: int
    step: str
    actor: int
    items: list[WorkItem]
    loans: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Publish:
    """Put an event on a run's stream."""

    run_id: str
    envelope: Envelope


class Outcome(str, Enum):
    """How a run ended."""

    DONE = "done"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    #: Nothing runs or waits and no StopEvent came: the run can never finish.
    STUCK = "stuck"


@dataclass(frozen=True, slots=True)
class EndRun:
    """The run is over: tell the driver (``payload``: the StopEvent or the pickled error) and cancel its work."""

    run_id: str
    outcome: Outcome
    payload: Any = None
    message: str = ""
    step: str | None = None
    active_steps: tuple[str, ...] = ()
    #: For a run failed by a step: its attempts and the seconds they took.
    attempts: int | None = None
    elapsed: float | None = None
    #: For a stuck run: the actors holding its collect buffers, as (step, actor), to ask what they wait for.
    collecting: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class ArmTimeout:
    """Fire TimeoutReached for ``run_id`` at time ``at``."""

    run_id: str
    at: float


@dataclass(frozen=True, slots=True)
class ArmWaiterTimeout:
    """Fire WaiterTimedOut(run_id, wait) after ``after`` seconds."""

    run_id: str
    wait: int
    after: float


#: Waits to check an event against: (wait number, its requirements) each.
Checks = tuple[tuple[int, Requirements], ...]


@dataclass(frozen=True, slots=True)
class CheckRequirements:
    """Ask ``actor`` of ``step``'s pool which of ``checks`` (wait number, required field values) ``envelope`` meets:
    only a step actor opens a payload. Answer with RequirementsChecked; ``held``: steps whose delivery of the
    envelope waits for the answer (it goes to each that no answered wait takes)."""

    run_id: str
    step: str
    actor: int
    envelope: Envelope
    checks: Checks
    held: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StopActor:
    """End actor ``actor`` of ``step``'s pool now (killed: it may be blocked); it already left its pool. Its calls
    in flight come back lost; locks it held on the store are released."""

    step: str
    actor: int
    reason: str


@dataclass(frozen=True, slots=True)
class WatchCall:
    """Fire CallOverdue(call_id) after ``after`` seconds: a call of a step with a timeout that must be back by then."""

    call_id: int
    after: float


@dataclass(frozen=True, slots=True)
class ArmRetry:
    """Fire RetryDue(run_id, number) after ``after`` seconds: a failed item waits for its retry off the actors."""

    run_id: str
    number: int
    after: float


@dataclass(frozen=True, slots=True)
class ArmGrowth:
    """Fire GrowthDue(step) after ``after`` seconds: a pool held to the cores while its step's kind is unknown."""

    step: str
    after: float


@dataclass(frozen=True, slots=True)
class ConfirmStopped:
    """A run ended: ask the actors that hold calls with its items to stop its invocations, and report with
    ActorUnresponsive any that does not answer within the grace period (its event loop is blocked)."""

    run_id: str
    actors: tuple[tuple[str, int], ...]


Command = (
    StartActor
    | CallStep
    | Publish
    | EndRun
    | ArmTimeout
    | ArmWaiterTimeout
    | CheckRequirements
    | StopActor
    | WatchCall
    | ArmRetry
    | ArmGrowth
    | ConfirmStopped
    | Warn
)
