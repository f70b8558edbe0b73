"""``WorkflowHandler``: the caller's side of one run. Await it for the result, or stream its events.

``workflow.run()`` returns the handler at once; a task on the caller's event loop starts the run on the
dispatcher and reads the run's stream until the run ends. The stream holds what steps wrote with
``ctx.write_event_to_stream`` and, last, the StopEvent (or the failure, timeout or cancel event).
``HandlerFace`` is the caller's side of the run's ``Context`` (``handler.ctx``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any

from rayflow.context.state_store import StateStore
from rayflow.core.envelope import Envelope, Kind
from rayflow.errors import ContextStateError, WorkflowRuntimeError
from rayflow.events import Event, StopEvent

if TYPE_CHECKING:
    from rayflow.context import Context
    from rayflow.context.context import WaitOptions
    from rayflow.workflow import Workflow

__all__ = ["HandlerFace", "WorkflowHandler"]


class WorkflowHandler:
    """A run in progress: ``await handler`` gives the result, ``handler.stream_events()`` its events."""

    def __init__(
        self,
        ctx: Context[Any],
        run_id: str,
        drive: Callable[[WorkflowHandler], Coroutine[Any, Any, StopEvent]],
        cancel: Callable[[], object],
    ) -> None:
        self._ctx = ctx
        self.run_id = run_id
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._streamed = False
        self._result: StopEvent | None = None
        self._cancel = cancel
        self._task = asyncio.get_running_loop().create_task(drive(self))

    def _publish(self, event: Event) -> None:
        self._queue.put_nowait(event)

    @property
    def ctx(self) -> Context[Any]:
        """The run's context: its store, and ``send_event`` into the running run."""
        return self._ctx

    async def _await_result(self) -> Any:
        stop = await asyncio.shield(self._task)
        self._result = stop
        return stop.result if type(stop) is StopEvent else stop

    def __await__(self) -> Generator[Any, Any, Any]:
        return self._await_result().__await__()

    async def stop_event_result(self) -> StopEvent:
        """The StopEvent that ended the run."""
        return await asyncio.shield(self._task)

    def get_stop_event(self) -> StopEvent | None:
        """The StopEvent once the run is over, else None."""
        if self._task.done() and not self._task.cancelled() and self._task.exception() is None:
            return self._task.result()
        return None

    def is_done(self) -> bool:
        """Whether the run is over."""
        return self._task.done()

    def done(self) -> bool:
        return self._task.done()

    def exception(self) -> BaseException | None:
        return self._task.exception() if self._task.done() else None

    async def stream_events(self, expose_internal: bool = False) -> AsyncGenerator[Event, None]:
        """The run's streamed events in the order they were written, ending with the run's last event.

        A handler's stream can be read once: a second read raises ``WorkflowRuntimeError``.
        """
        if self._streamed:
            raise WorkflowRuntimeError("All the streamed events have already been consumed.")
        self._streamed = True
        while True:
            event = await self._queue.get()
            yield event
            if isinstance(event, StopEvent):
                break

    async def cancel_run(self, *, timeout: float = 5.0) -> None:
        """Cancel the run: its work in flight is stopped and ``await handler`` raises ``WorkflowCancelledByUser``."""
        if self._task.done():
            return
        self._cancel()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=timeout)
        except BaseException:
            pass

    async def send_event(self, event: Event, step: str | None = None) -> None:
        """Send ``event`` into the running run (to ``step`` only, if given)."""
        self._ctx.send_event(event, step)

    def __str__(self) -> str:
        return f"WorkflowHandler(run_id={self.run_id}, done={self.is_done()})"


class HandlerFace:
    """The handler side of ``Context``: store through the context actor, events into the run."""

    def __init__(self, workflow: Workflow, ctx: Context[Any]) -> None:
        self._workflow = workflow
        self._ctx = ctx
        self.run_id: str | None = None
        self.running = False
        #: Events sent before the run reached the dispatcher; None once it has.
        self.pending: list[Envelope] | None = None

    def store(self, ctx_id: str) -> StateStore[Any]:
        async def actor() -> Any:
            _, context = await self._workflow._runtime.start(self._workflow)
            await self._workflow._seed_context(self._ctx, context)
            return context

        return StateStore(ctx_id, actor)

    def send_event(self, event: Event, step: str | None) -> None:
        if not self.running:
            raise ContextStateError("send_event() called before workflow started. Call workflow.run() first.")
        self._workflow._check_target(event, step)
        self._emit(self._workflow._codec.encode(event, target=step))

    def write_event_to_stream(self, event: Event) -> None:
        if not self.running:
            raise ContextStateError("write_event_to_stream() called before workflow started.")
        self._emit(self._workflow._codec.encode(event, kind=Kind.STREAM))

    def _emit(self, envelope: Envelope) -> None:
        dispatcher = self._workflow._runtime.dispatcher
        if self.pending is not None or dispatcher is None or self.run_id is None:
            assert self.pending is not None
            self.pending.append(envelope)  # sent as soon as the run has reached the dispatcher
        else:
            dispatcher.emit(self.run_id, [envelope])

    def collect_events(self, event: Event, expected: list[type[Event]], buffer_id: str) -> list[Event] | None:
        raise ContextStateError("collect_events only works inside a step")

    async def wait_for_event(self, event_type: type[Event], options: WaitOptions) -> Event:
        raise ContextStateError("wait_for_event only works inside a step")

    @property
    def is_running(self) -> bool:
        return self.running
