"""Envelopes: an event in transit, described by what routing needs, with a payload routing never opens."""

from __future__ import annotations

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
    ``target`` names the one step it must go to (``ctx.send_event(ev, step=...)``).
    """

    type_keys: tuple[str, ...]
    payload: Any
    kind: Kind = Kind.EVENT
    target: str | None = None

    @property
    def type_name(self) -> str:
        return self.type_keys[0] if self.type_keys else "?"


@dataclass(frozen=True, slots=True)
class Failure:
    """A step that failed for good: the pickled error, and a pickled ``StepFailedEvent`` for catch_error."""

    step: str
    error: Any
    message: str
    failed_event: Envelope | None = None
    attempts: int = 1
