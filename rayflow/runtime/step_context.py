"""The step's side of ``Context``, inside a step actor: what ``ctx`` does while a step runs.

``StepFace`` serves one invocation: events it sends leave through the invocation's ``Outbox`` in batches (as soon as
the step awaits something, or a batch is full), ``collect_events`` buffers in the actor, ``wait_for_event`` pauses the
invocation (it ends with ``Paused`` and runs again from the start with the answer), and ``retry_info`` reads the
invocation's ``Attempts``, and ``ctx.store`` reads the actor's copy of the state when it is current
(``rayflow.runtime.state_replica``): every event the invocation emits carries the newest state version it has seen
(``Known``). ``StepHost`` is what the face uses of its actor.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from rayflow.context.context import WaitOptions
from rayflow.context.state_store import StateStore
from rayflow.core.collect import CollectBuffers
from rayflow.core.commands import Tries, WorkItem
from rayflow.core.envelope import Envelope, Kind, Waiter, derive_id
from rayflow.errors import WorkflowRuntimeError
from rayflow.events import Event
from rayflow.retry_policy import RetryInfo
from rayflow.runtime.state_replica import UNKNOWN, Known, newest
from rayflow.spec import StepConfig, WorkflowSpec

__all__ = ["Attempts", "Outbox", "Paused", "StepCode", "StepFace", "StepHost"]


@dataclass(frozen=True)
class StepHost:
    """What the step side of a context uses of its step actor."""

    spec: WorkflowSpec
    #: The step the actor's pool runs (a lent slot may run others on it).
    step: str
    collect: CollectBuffers
    loop: asyncio.AbstractEventLoop
    loop_thread: int
    flush_size: int
    #: Sends a batch of emitted envelopes of (run, step) to the dispatcher, in order.
    emit: Callable[[str, str, list[Envelope]], None]
    #: The store of a context as an invocation that has seen the state at ``Known`` reads it.
    store: Callable[[str, Known], StateStore[Any]]
    #: For each collect buffer, the newest state version among the events it was given (``Known`` of the invocation
    #: the buffer's events are released to).
    collect_versions: dict[tuple[str, str, str], int] = field(default_factory=dict)


class Paused(Exception):
    """Ends a step invocation that waits in ``ctx.wait_for_event``; it runs again once the event arrives."""

    def __init__(self, waiter: Waiter) -> None:
        super().__init__(f"waiting for {waiter.event_keys[0]}")
        self.waiter = waiter


@dataclass(frozen=True)
class StepCode:
    """What running one step takes: its method (bound to this actor's copy of the workflow) and its config."""

    name: str
    fn: Callable[..., Any]
    config: StepConfig
    is_async: bool


@dataclass
class Attempts:
    """A work item's attempts at its step before this one, and when the first began: what the retry policy is asked,
    and ``ctx.retry_info()``. Retries are new deliveries of the item, so this travels with it (``Tries``) between
    actors; times are wall-clock seconds."""

    runs: int = 0
    first: float = field(default_factory=time.time)
    last_error: Exception | None = None
    last_failed_at: datetime | None = None

    @classmethod
    def of(cls, tries: Tries, load: Callable[[Any], Any]) -> Attempts:
        """The attempts ``tries`` records (``load`` unpickles its last error)."""
        if not tries.runs:
            return cls()
        error = None
        if tries.error is not None:
            try:
                error = load(tries.error)
            except Exception:
                error = None
        if not isinstance(error, Exception):
            error = WorkflowRuntimeError(tries.message)
        failed_at = None if tries.failed_at is None else datetime.fromtimestamp(tries.failed_at, timezone.utc)
        return cls(tries.runs, tries.first, error, failed_at)

    @property
    def number(self) -> int:
        """This attempt's number, from 1: what a retry policy counts once it fails."""
        return self.runs + 1

    def elapsed(self) -> float:
        return max(time.time() - self.first, 0.0)

    def info(self) -> RetryInfo:
        return RetryInfo(self.runs, self.elapsed() if self.runs else 0.0, self.last_error, self.last_failed_at)

    def failed(self, error: Exception, dumps: Callable[[Any], Any]) -> Tries:
        """What the item carries to its retry after this attempt failed with ``error``."""
        try:
            pickled = dumps(error)
        except Exception:
            pickled = None
        return Tries(self.number, self.first, pickled, f"{type(error).__name__}: {error}", time.time())


class Outbox:
    """Events one invocation emits, sent to the dispatcher in batches while the step still runs.

    It also names them: the n-th event an invocation emits gets an id derived from the event it handles, the step,
    the attempt and rerun, and n (``rayflow.core.envelope.derive_id``), so running the same body again for the same
    delivery names its events the same way and the dispatcher routes them once.
    """

    def __init__(self, host: StepHost, item: WorkItem, step: str) -> None:
        self._host = host
        self._run_id = item.run_id
        self._step = step
        self._parent = item.envelope.event_id
        self._attempt = item.tries.runs
        self._rerun = len(item.resolved)
        self._emitted = 0
        self._items: list[Envelope] = []
        self._scheduled = False

    def next_id(self) -> bytes:
        """The id of the next event this invocation emits."""
        position = self._emitted
        self._emitted += 1
        return derive_id(self._parent, self._step, self._attempt, self._rerun, position)

    @property
    def emitted(self) -> int:
        """Events this invocation emitted so far (sent or streamed)."""
        return self._emitted

    def returned_id(self) -> bytes:
        """The id of the event the invocation returns."""
        return derive_id(self._parent, self._step, self._attempt, self._rerun, -1)

    def member_id(self, position: int) -> bytes:
        """The id of the event at ``position`` of the list the invocation returns."""
        return derive_id(self._parent, self._step, self._attempt, self._rerun, -2 - position)

    def add(self, envelope: Envelope) -> None:
        self._items.append(envelope)
        host = self._host
        on_loop = threading.get_ident() == host.loop_thread
        if len(self._items) >= host.flush_size:
            if on_loop:
                self.flush()
            else:
                host.loop.call_soon_threadsafe(self.flush)
        elif not self._scheduled:
            self._scheduled = True
            if on_loop:
                host.loop.call_soon(self.flush)
            else:
                host.loop.call_soon_threadsafe(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if self._items:
            items, self._items = self._items, []
            self._host.emit(self._run_id, self._step, items)


class StepFace:
    """The step side of ``Context``: emits through the invocation's outbox, collects in this actor."""

    def __init__(
        self, host: StepHost, item: WorkItem, outbox: Outbox, code: StepCode, attempts: Attempts, known: Known
    ) -> None:
        self._host = host
        self._item = item
        self._outbox = outbox
        self._code = code
        self._attempts = attempts
        self._known = known

    @property
    def run_id(self) -> str:
        return self._item.run_id

    def store(self, ctx_id: str) -> StateStore[Any]:
        return self._host.store(ctx_id, self._known)

    def send_event(self, event: Event, step: str | None) -> None:
        spec, name = self._host.spec, self._code.name
        if not isinstance(event, Event):
            raise WorkflowRuntimeError(f"Step {name!r} sent a {type(event).__name__}, which is not an Event")
        if step is not None:
            spec.check_target(step, event)
        event_id, version = self._outbox.next_id(), self._known.version
        # A sent event is made outside any fan-out stream, as in LlamaIndex: it never joins a list (a join of its
        # type drops it with a warning), and the stream does not wait for its work.
        self._outbox.add(spec.codec.encode(event, target=step, step=name, event_id=event_id, state_version=version))

    def write_event_to_stream(self, event: Event) -> None:
        outbox, codec, name = self._outbox, self._host.spec.codec, self._code.name
        event_id, version = outbox.next_id(), self._known.version
        outbox.add(codec.encode(event, kind=Kind.STREAM, step=name, event_id=event_id, state_version=version))

    def collect_events(self, event: Event, expected: list[type[Event]], buffer_id: str) -> list[Event] | None:
        name, config = self._code.name, self._code.config
        if not config.collects and (config.num_workers > 1 or name != self._host.step):
            raise WorkflowRuntimeError(
                f"Step {name!r} called ctx.collect_events from code rayflow could not see when the "
                "step was decorated (a helper function?). Call collect_events in the step's own body, so that "
                "every event of a run reaches the same buffer."
            )
        key = (self._item.run_id, name, buffer_id)
        versions, version = self._host.collect_versions, self._item.envelope.state_version
        held = versions.get(key, version)
        versions[key] = newest((held, version))
        released = self._host.collect.collect(key, event, type(event), expected)
        if released is not None:  # the released events' causes happened before this invocation's reads
            if versions[key] == UNKNOWN:
                self._known.doubt()
            else:
                self._known.see(versions[key])
        return released

    async def wait_for_event(self, event_type: type[Event], options: WaitOptions) -> Event:
        """The awaited event if this is the rerun it arrived for; else pause: end the invocation with a waiter."""
        codec, item = self._host.spec.codec, self._item
        keys = codec.keys_of(event_type)
        requirements = tuple(sorted((options.requirements or {}).items()))
        # An implicit id names this invocation too (its trigger event), so parallel invocations of one step that
        # wait alike are separate waits, each announcing its own waiter_event; a rerun keeps its trigger, and its id.
        waiter_id = options.waiter_id or f"waiter_{keys[0]}_{requirements!r}_{item.envelope.event_id.hex()}"
        for resolved_id, envelope in item.resolved:
            if resolved_id == waiter_id:
                if envelope is None:
                    raise asyncio.TimeoutError(f"Timed out waiting for {event_type.__name__}")
                event: Event = codec.loads(envelope.payload)
                return event
        announce = None
        if options.waiter_event is not None:
            announce = codec.encode(
                options.waiter_event, kind=Kind.STREAM, step=self._code.name, state_version=self._known.version
            )
        waiter = Waiter(waiter_id, keys, item.envelope, requirements, options.timeout, announce, item.resolved)
        raise Paused(waiter)

    def retry_info(self) -> RetryInfo:
        return self._attempts.info()

    @property
    def is_running(self) -> bool:
        return True
