"""Envelopes: an event in transit, described by what routing needs, with a payload routing never opens."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import Enum
from typing import Any


class Kind(str, Enum):
    """What an envelope is for the run: an event for steps, the run's end, or something for the stream."""

    EVENT = "event"
    STOP = "stop"
    STREAM = "stream"
    INPUT_REQUIRED = "input_required"


@dataclass(frozen=True, slots=True)
class Envelope:
    """One event: its type keys (its class first, then its event bases), its kind, and an opaque payload.

    ``payload`` is the pickled event (bytes) or an object ref to it; the core only carries it along.
    ``target`` names the one step it must go to (``ctx.send_event(ev, step=...)``). ``event_id``: the event's
    rayflow id, derived from its cause (``derive_id``), so the same event emitted again by a step body that runs
    again (after its actor died) is routed once; empty for an event that has no cause to derive it from.
    ``state_version``: the newest version of the run's state its emitter had seen or made when it emitted it, which
    the receiving step's reads must see (-1: unknown, its first read asks the context actor).
    ``scope``: the fan-out streams the event was made in, outermost first (``rayflow.core.streams``); an event a
    step emits carries the scope of the event the step ran for, and each event of a returned list one stream more.
    """

    type_keys: tuple[str, ...]
    payload: Any
    kind: Kind = Kind.EVENT
    target: str | None = None
    event_id: bytes = b""
    state_version: int = -1
    scope: tuple[str, ...] = ()

    @property
    def type_name(self) -> str:
        return self.type_keys[0] if self.type_keys else "?"

    @property
    def class_name(self) -> str:
        """The event's class name, for messages (its type key without the module)."""
        return self.type_name.rsplit(".", 1)[-1]


@dataclass(frozen=True, slots=True)
class Failure:
    """A step that failed for good: the pickled error, and a pickled ``StepFailedEvent`` for catch_error."""

    step: str
    error: Any
    message: str
    failed_event: Envelope | None = None
    attempts: int = 1
    #: Seconds from the first attempt to the last failure.
    elapsed: float = 0.0


#: Field values an event must have to answer a ``ctx.wait_for_event`` (its ``requirements``), as sorted pairs.
Requirements = tuple[tuple[str, Any], ...]

#: What a step resumed after ``ctx.wait_for_event`` finds for each wait resolved so far: the event that arrived,
#: or None where the wait timed out.
Resolved = tuple[tuple[str, "Envelope | None"], ...]


@dataclass(frozen=True, slots=True)
class Waiter:
    """A step invocation paused in ``ctx.wait_for_event``; it runs again from the start once the event arrives.

    ``event_keys``: the type keys of the awaited event class (its own first). ``requirements``: field values the
    event must have. ``announce``: the ``waiter_event``, put on the stream when the wait begins. ``trigger`` and
    ``resolved``: the event the invocation ran for, and the waits resolved before this one (for the rerun).
    """

    waiter_id: str
    event_keys: tuple[str, ...]
    trigger: Envelope
    requirements: Requirements = ()
    timeout: float | None = None
    announce: Envelope | None = None
    resolved: Resolved = ()


#: The type keys of an internal event (a step's state changed, the run is idle, an event was ignored): its payload
#: is a tuple of plain values (``rayflow.core.internal``), made into the event by the caller's side.
INTERNAL_KEYS = ("rayflow.events.InternalDispatchEvent",)

#: The id of every run's start event: the root its other events' ids derive from.
START_ID = b"start"


def derive_id(parent: bytes, step: str, attempt: int, rerun: int, position: int) -> bytes:
    """The id of the event at ``position`` among what one invocation of ``step`` emitted (its sent and streamed
    events in order; its returned event is -1) while handling the event ``parent``.

    ``attempt`` (retries) and ``rerun`` (reruns after ``wait_for_event``) tell apart the runs of a step body that
    emit again on purpose, as in LlamaIndex. A body run again for the same delivery, because its actor died or
    was stopped, derives the same ids. Fixed size, whatever the length of the chain of causes.
    """
    digest = hashlib.blake2b(parent, digest_size=12)
    digest.update(f"|{step}|{attempt}|{rerun}|{position}".encode())
    return digest.digest()
