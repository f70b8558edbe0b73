"""``Context``: what a step (or the caller, through ``handler.ctx``) can do with its run.

One class with two faces. Inside a step it emits events (``send_event``), writes to the stream, and
collects events; on the handler it sends events into a running run and snapshots it. Both reach the
shared state through ``ctx.store``, held by the workflow's context actor.
"""

from __future__ import annotations

import uuid
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from rayflow.context.serializers import BaseSerializer, JsonSerializer, qualified_name
from rayflow.context.snapshot import pending_from_data, pending_to_data
from rayflow.context.state_store import DictState, StateStore
from rayflow.core.state import Pending
from rayflow.errors import ContextSerdeError, ContextStateError
from rayflow.events import Event

if TYPE_CHECKING:
    from rayflow.workflow import Workflow

__all__ = ["Context", "WaitOptions"]

StateT = TypeVar("StateT", bound=BaseModel)
EventT = TypeVar("EventT", bound=Event)
_MISSING: Any = object()
_SNAPSHOT_VERSION = 1


@dataclass(frozen=True)
class WaitOptions:
    """The arguments of one ``ctx.wait_for_event`` call besides the event type."""

    waiter_event: Event | None = None
    waiter_id: str | None = None
    requirements: dict[str, Any] | None = None
    timeout: float | None = 2000


class _Face(Protocol):
    """What a context needs from where it lives (a step actor, or the driver)."""

    def store(self, ctx_id: str) -> StateStore[Any]: ...
    def send_event(self, event: Event, step: str | None) -> None: ...
    def write_event_to_stream(self, event: Event) -> None: ...
    def collect_events(self, event: Event, expected: list[type[Event]], buffer_id: str) -> list[Event] | None: ...
    async def wait_for_event(self, event_type: type[Event], options: WaitOptions) -> Event: ...
    @property
    def is_running(self) -> bool: ...


class Context(Generic[StateT]):
    """A run's context. ``Context(workflow)`` in your code makes one to pass to ``run(ctx=...)``.

    Runs started with the same context share its store, so a second run continues where the first left.
    ``Context[MyState]`` in a step signature types the store with a pydantic model.
    """

    def __init__(self, workflow: Workflow, *, ctx_id: str | None = None) -> None:
        self._workflow = workflow
        self._ctx_id = ctx_id or uuid.uuid4().hex
        self._seed: Any = None
        self._resume: Pending | None = None
        self._face: _Face = workflow._driver_face(self)

    @classmethod
    def _in_step(cls, ctx_id: str, face: _Face) -> Context[Any]:
        ctx = cls.__new__(cls)
        ctx._workflow = None  # type: ignore[assignment]
        ctx._ctx_id = ctx_id
        ctx._seed = None
        ctx._resume = None
        ctx._face = face
        return ctx

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

    @property
    def is_running(self) -> bool:
        return self._face.is_running

    # -- snapshots ---------------------------------------------------------------------------

    def to_dict(self, serializer: BaseSerializer | None = None) -> dict[str, Any]:
        """A snapshot of this context: its state and, for a run not finished (running, cancelled, timed out or
        failed), its unfinished work: ``run(ctx=Context.from_dict(...))`` resumes from there, running the steps
        that were running again. JSON-compatible with the default serializer."""
        if self._workflow is None:
            raise ContextStateError("ctx.to_dict() works on the handler's context, not inside a step")
        serializer = serializer or JsonSerializer()
        workflow = self._workflow
        state = self._seed if self._seed is not None else workflow._read_state(self._ctx_id)
        run_id = getattr(self._face, "run_id", None)
        pending = self._resume if self._resume is not None else workflow._read_pending(run_id) if run_id else None
        return {
            "version": _SNAPSHOT_VERSION,
            "state": {
                "state_type": qualified_name(type(state)) if state is not None else None,
                "state_data": serializer.serialize_value(state) if state is not None else None,
            },
            "is_running": self.is_running or pending is not None,
            "pending": None if pending is None else pending_to_data(pending, serializer, workflow._codec),
        }

    @classmethod
    def from_dict(
        cls, workflow: Workflow, data: dict[str, Any], serializer: BaseSerializer | None = None
    ) -> Context[Any]:
        """A context that resumes from ``data``; only the workflow's own state types are rebuilt."""
        serializer = serializer or JsonSerializer()
        try:
            version = data.get("version")
            if not isinstance(version, int) or version > _SNAPSHOT_VERSION:
                raise ContextSerdeError(
                    f"Cannot load serialized workflow context with version={version!r}; rayflow supports up to "
                    f"version {_SNAPSHOT_VERSION}. The payload was likely written by a newer version."
                )
            raw = data["state"]["state_data"]
        except (KeyError, TypeError, AttributeError) as err:
            raise ContextSerdeError(f"Not a rayflow context snapshot: missing {err}") from err
        serializer = serializer.with_types(DictState, *workflow._state_types(), *workflow._event_keys)
        ctx: Context[Any] = cls(workflow)
        ctx._seed = serializer.deserialize_value(raw) if raw is not None else None
        pending = data.get("pending")
        if pending:
            try:
                ctx._resume = pending_from_data(pending, serializer, workflow._codec)
            except (KeyError, TypeError, ValueError) as err:
                raise ContextSerdeError(f"The snapshot's unfinished work cannot be read: {err}") from err
        return ctx
