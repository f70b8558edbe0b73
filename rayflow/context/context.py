"""``Context``: what a step (or the caller, through ``handler.ctx``) can do with its run.

One class with two faces. Inside a step it emits events (``send_event``), writes to the stream, and
collects events; on the handler it sends events into a running run and snapshots it. Both reach the
shared state through ``ctx.store``, held by the workflow's context actor. The faces are the runtime's:
a step actor builds its context with its face; ``Context(workflow)`` in the caller's code asks the
workflow's host (its driver-side session, bound here by the runtime when the workflow is made) for one.
"""

from __future__ import annotations

import asyncio
import uuid
import warnings
import weakref
from collections.abc import AsyncGenerator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from rayflow.context.serializers import BaseSerializer, JsonSerializer
from rayflow.context.snapshot import snapshot_data, snapshot_from_data
from rayflow.context.state_store import StateStore
from rayflow.core.state import Pending
from rayflow.errors import ContextStateError, WorkflowRuntimeError
from rayflow.events import Event, StopEvent
from rayflow.retry_policy import RetryInfo
from rayflow.spec import WorkflowSpec

__all__ = ["Context", "ContextHost", "DriverFace", "Face", "WaitOptions", "bind_host", "face_of", "step_context"]

StateT = TypeVar("StateT", bound=BaseModel)
EventT = TypeVar("EventT", bound=Event)
_MISSING: Any = object()

#: The context of the step invocation running in this task (set by ``step_context`` in the step actor, per task).
_step_ctx: ContextVar[Context[Any]] = ContextVar("rayflow_step_context")


@dataclass(frozen=True)
class WaitOptions:
    """The arguments of one ``ctx.wait_for_event`` call besides the event type."""

    waiter_event: Event | None = None
    waiter_id: str | None = None
    requirements: dict[str, Any] | None = None
    timeout: float | None = 2000


class Face(Protocol):
    """What a context needs from where it lives (a step actor, or the driver)."""

    @property
    def run_id(self) -> str | None: ...
    def store(self, ctx_id: str) -> StateStore[Any]: ...
    def send_event(self, event: Event, step: str | None) -> None: ...
    def write_event_to_stream(self, event: Event) -> None: ...
    def collect_events(self, event: Event, expected: list[type[Event]], buffer_id: str) -> list[Event] | None: ...
    async def wait_for_event(self, event_type: type[Event], options: WaitOptions) -> Event: ...
    def retry_info(self) -> RetryInfo: ...
    @property
    def is_running(self) -> bool: ...


class DriverFace(Face, Protocol):
    """The caller's side of a context: it also holds what the context starts from (a snapshot's state and
    unfinished work), reads what a snapshot takes, and knows the handler of its latest run."""

    spec: WorkflowSpec
    seed: Any
    resume: Pending | None
    #: The workflow instance the context belongs to.
    workflow: Any
    #: The handler of the context's latest run (None before its first).
    handler: Any

    def read_state(self) -> Any: ...
    def read_pending(self) -> Pending | None: ...
    async def running_steps(self) -> list[str]: ...


class ContextHost(Protocol):
    """The driver's side of one workflow instance, as ``Context(workflow)`` reaches it."""

    @property
    def spec(self) -> WorkflowSpec: ...
    def driver_face(self, ctx_id: str) -> DriverFace: ...


_hosts: dict[int, ContextHost] = {}
#: The tasks filling ``Context.streaming_queue`` queues (held so they are not collected while they run).
_pumps: set[asyncio.Task[None]] = set()


def bind_host(workflow: object, host: ContextHost) -> None:
    """Make ``host`` the one ``Context(workflow)`` uses, for as long as ``workflow`` lives."""
    key = id(workflow)
    _hosts[key] = host
    weakref.finalize(workflow, _hosts.pop, key, None)


def _host_of(workflow: object) -> ContextHost:
    host = _hosts.get(id(workflow))
    if host is None:
        raise ContextStateError(f"Context(workflow) needs a rayflow Workflow instance, got {type(workflow).__name__}")
    return host


class Context(Generic[StateT]):
    """A run's context. ``Context(workflow)`` in your code makes one to pass to ``run(ctx=...)``.

    Runs started with the same context share its store, so a second run continues where the first left.
    ``Context[MyState]`` in a step signature types the store with a pydantic model.
    """

    def __init__(self, workflow: Any, *, ctx_id: str | None = None) -> None:
        self._ctx_id = ctx_id or uuid.uuid4().hex
        driver = _host_of(workflow).driver_face(self._ctx_id)
        self._face: Face = driver
        self._driver: DriverFace | None = driver

    @staticmethod
    def get_step_context() -> Context[Any]:
        """The context of the step running now, for code that has no ``ctx`` parameter at hand (a helper, a
        decorator around a step); the same object the step's ``ctx`` parameter gets. ``WorkflowRuntimeError``
        outside a step."""
        try:
            return _step_ctx.get()
        except LookupError:
            raise WorkflowRuntimeError(
                "Context.get_step_context() may only be called from within a step function"
            ) from None

    # -- state -------------------------------------------------------------------------------

    @property
    def store(self) -> StateStore[StateT]:
        """The shared state of this context (held by the context actor; every read is a copy)."""
        return self._face.store(self._ctx_id)

    async def set(self, key: str, value: Any, make_private: bool = False) -> None:
        """Deprecated: use ``await ctx.store.set(key, value)``."""
        warnings.warn(
            "Context.set(key, value) is deprecated. Use 'await ctx.store.set(key, value)' instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        await self.store.set(key, value)

    async def get(self, key: str, default: Any = _MISSING) -> Any:
        """Deprecated: use ``await ctx.store.get(key, default=...)``."""
        warnings.warn(
            "Context.get() is deprecated. Use 'await ctx.store.get()' instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        if default is _MISSING:
            return await self.store.get(key)
        return await self.store.get(key, default=default)

    # -- events ------------------------------------------------------------------------------

    def send_event(self, message: Event, step: str | None = None) -> None:
        """Emit ``message`` to every step accepting its type, or only to ``step``.

        Inside a step, events are batched and leave when the step next awaits, finishes, or has
        emitted a batch-full; the order between events of one step is kept.
        """
        self._face.send_event(message, step)

    def write_event_to_stream(self, ev: Event | None) -> None:
        """Put ``ev`` on the run's stream (``handler.stream_events()``); it reaches no step."""
        if ev is not None:
            self._face.write_event_to_stream(ev)

    def collect_events(
        self, ev: Event, expected: list[type[Event]], buffer_id: str | None = None
    ) -> list[Event] | None:
        """Buffer ``ev``; None until the buffer holds ``expected`` (with multiplicity), then those events.

        The events come back in the order of ``expected`` and the buffer is emptied. Cost is O(1) per
        event. Only inside a step.
        """
        return self._face.collect_events(ev, expected, buffer_id or "default")

    async def wait_for_event(
        self,
        event_type: type[EventT],
        waiter_event: Event | None = None,
        waiter_id: str | None = None,
        requirements: dict[str, Any] | None = None,
        timeout: float | None = 2000,
    ) -> EventT:
        """The next event of ``event_type`` (with the field values in ``requirements``) sent to the run.

        As in LlamaIndex Workflows, the step pauses by ending, and runs again from the start once the event
        arrives; this call then returns it. Keep it near the top of the step and make the work before it safe to
        repeat. ``waiter_event`` goes to the stream once per ``waiter_id`` when the wait begins; past ``timeout``
        seconds (None: never) this raises ``asyncio.TimeoutError``. Only inside a step.
        """
        options = WaitOptions(waiter_event, waiter_id, requirements, timeout)
        return await self._face.wait_for_event(event_type, options)  # type: ignore[return-value]

    def retry_info(self) -> RetryInfo:
        """Which attempt of the running step this is (``retry_number``, 0 on the first) and, after a failure,
        the exception and time of the last one. Only inside a step; a step resumed by ``wait_for_event`` starts
        again at 0."""
        return self._face.retry_info()

    @property
    def is_running(self) -> bool:
        return self._face.is_running

    # -- the caller's view of its run ----------------------------------------------------------

    def _run_handler(self, call: str) -> Any:
        """The handler of this context's latest run, for a call only the caller's context has."""
        driver = self._driver
        if driver is None:
            raise ContextStateError(f"{call} is only available from the caller's context, not from within a step")
        if driver.handler is None:
            raise ContextStateError(f"{call} needs a run of this context: call workflow.run(ctx=ctx) first")
        return driver.handler

    async def running_steps(self) -> list[str]:
        """The names of the steps that have an invocation of this context's run going on now (none once it ended).
        Only on the caller's context, once a run started."""
        self._run_handler("running_steps()")
        assert self._driver is not None
        return await self._driver.running_steps()

    def stream_events(self) -> AsyncGenerator[Event, None]:
        """The events of this context's latest run, as ``handler.stream_events(expose_internal=True)`` gives them
        (the engine's internal events included): the run's one stream, so a handler that read it already makes
        this raise, and the other way round. Only on the caller's context, once a run started."""
        handler = self._run_handler("stream_events()")
        stream: AsyncGenerator[Event, None] = handler.stream_events(expose_internal=True)
        return stream

    @property
    def streaming_queue(self) -> asyncio.Queue[Event]:
        """Deprecated: iterate ``ctx.stream_events()`` (or the handler's). A queue filled from ``stream_events()``
        by a task on the running event loop, until the run's last event."""
        warnings.warn(
            "Context.streaming_queue is deprecated: iterate 'ctx.stream_events()' or 'handler.stream_events()'",
            DeprecationWarning,
            stacklevel=2,
        )
        events = self.stream_events()
        queue: asyncio.Queue[Event] = asyncio.Queue()

        async def pump() -> None:
            async for event in events:
                queue.put_nowait(event)

        task = asyncio.get_running_loop().create_task(pump())
        _pumps.add(task)
        task.add_done_callback(_pumps.discard)
        return queue

    def get_result(self) -> Any:
        """Deprecated: ``await handler`` (or ``await workflow.run(ctx=ctx)``). The result of this context's latest
        run once it ended with its StopEvent; ``WorkflowRuntimeError`` before (and for a run that failed)."""
        warnings.warn(
            "Context.get_result() is deprecated: await the handler workflow.run() returns for its result",
            DeprecationWarning,
            stacklevel=2,
        )
        handler = self._run_handler("get_result()")
        stop = handler.get_stop_event()
        if stop is None:
            raise WorkflowRuntimeError(f"Run {handler.run_id} of this context has not ended with a StopEvent")
        return stop.result if type(stop) is StopEvent else stop

    # -- snapshots ---------------------------------------------------------------------------

    def to_dict(self, serializer: BaseSerializer | None = None, *, include_state: bool = True) -> dict[str, Any]:
        """A snapshot of this context: its state and, for a run not finished (running, cancelled, timed out or
        failed), its unfinished work: ``run(ctx=Context.from_dict(...))`` resumes from there, running the steps
        that were running again. JSON-compatible with the default serializer (``Workflow(serializer=...)`` sets
        another for the workflow's contexts). ``include_state=False`` leaves the state out: a context made from
        the snapshot starts from an empty one."""
        driver = self._driver
        if driver is None:
            raise ContextStateError("ctx.to_dict() works on the handler's context, not inside a step")
        serializer = _snapshot_serializer(serializer, driver.workflow)
        if include_state:
            state = driver.seed if driver.seed is not None else driver.read_state()
        else:
            state = None
        pending = driver.resume if driver.resume is not None else driver.read_pending()
        return snapshot_data(state, pending, self.is_running, serializer, driver.spec.codec)

    @classmethod
    def from_dict(cls, workflow: Any, data: dict[str, Any], serializer: BaseSerializer | None = None) -> Context[Any]:
        """A context that resumes from ``data``; only the workflow's own state types are rebuilt."""
        serializer = _snapshot_serializer(serializer, workflow)
        state, pending = snapshot_from_data(data, serializer, _host_of(workflow).spec)
        ctx: Context[Any] = cls(workflow)
        driver = ctx._driver
        assert driver is not None
        driver.seed, driver.resume = state, pending
        return ctx


def _snapshot_serializer(given: BaseSerializer | None, workflow: Any) -> BaseSerializer:
    """A snapshot's serializer: the one the call gives, else the workflow's (``Workflow(serializer=...)``), else
    ``JsonSerializer()``."""
    return given or getattr(workflow, "serializer", None) or JsonSerializer()


def step_context(ctx_id: str, face: Face) -> Context[Any]:
    """The context a step receives, built by its step actor with the actor's face."""
    ctx: Context[Any] = Context.__new__(Context)
    ctx._ctx_id = ctx_id
    ctx._face = face
    ctx._driver = None
    _step_ctx.set(ctx)  # each invocation runs in a task of its own: this holds for that task only
    return ctx


def face_of(ctx: Context[Any]) -> DriverFace | None:
    """The caller's face of ``ctx`` (None for a step's context): how the runtime drives the runs of a context."""
    return ctx._driver
