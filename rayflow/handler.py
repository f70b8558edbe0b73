"""``WorkflowHandler``: the caller's side of one run. Await it for the result, or stream its events.

``workflow.run()`` returns the handler at once; a task on the caller's event loop drives the run (the
runtime's session starts it on the dispatcher and reads its stream into the handler until it ends). The
stream holds what steps wrote with ``ctx.write_event_to_stream`` and, last, the StopEvent (or the failure,
timeout or cancel event). Beyond LlamaIndex, the handler tells what ran: ``await handler.stats()`` (figures per step)
and ``handler.trace()`` (the run's timeline as Chrome trace JSON).
"""

from __future__ import annotations

import asyncio
import os
import warnings
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator
from typing import Any

from rayflow.context import Context
from rayflow.core.stats import StatsBook, WorkflowStats
from rayflow.core.timeline import RunSpan, chrome_trace
from rayflow.errors import WorkflowCancelledByUser, WorkflowRuntimeError
from rayflow.events import Event, InternalDispatchEvent, StopEvent, WorkflowCancelledEvent
from rayflow.runtime.observer import RunObserver

__all__ = ["InternalDispatchEvent", "WorkflowCancelledByUser", "WorkflowCancelledEvent", "WorkflowHandler"]


class WorkflowHandler:
    """A run in progress: ``await handler`` gives the result, ``handler.stream_events()`` its events."""

    def __init__(
        self,
        ctx: Context[Any],
        run_id: str,
        drive: Callable[[Callable[[Event], None]], Coroutine[Any, Any, StopEvent]],
        cancel: Callable[[], object],
        observer: RunObserver | None = None,
        expose: Callable[[], object] = lambda: None,
    ) -> None:
        """Start driving the run: ``drive(publish)`` runs it, handing each streamed event to ``publish``;
        ``observer``: what the driver learns of its step invocations."""
        self._observer = observer
        self._ctx = ctx
        self.run_id = run_id
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._streamed = False
        self._result: StopEvent | None = None
        self._cancel = cancel
        self._expose = expose
        self._task = asyncio.get_running_loop().create_task(drive(self._queue.put_nowait))

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

    def cancel(self) -> None:
        """Deprecated: ``await handler.cancel_run()``. Cancel the run without waiting for it to stop; ``await
        handler`` then raises ``asyncio.CancelledError`` (as cancelling a task does)."""
        warnings.warn(
            "WorkflowHandler.cancel() is deprecated: use 'await handler.cancel_run()'", DeprecationWarning, stacklevel=2
        )
        if not self._task.done():
            self._cancel()  # the run's work in flight stops on its actors too
            self._task.cancel()

    def cancelled(self) -> bool:
        """Deprecated: ``handler.done()`` and the ``WorkflowCancelledByUser`` that ``await handler`` raises. Whether
        the run was cancelled (by ``cancel_run()`` or ``cancel()``)."""
        warnings.warn(
            "WorkflowHandler.cancelled() is deprecated: a cancelled run's handler raises WorkflowCancelledByUser",
            DeprecationWarning,
            stacklevel=2,
        )
        if not self._task.done():
            return False
        if self._task.cancelled():
            return True
        error = self._task.exception()
        if error is not None:
            return isinstance(error, WorkflowCancelledByUser)
        return isinstance(self._task.result(), WorkflowCancelledEvent)

    async def stream_events(self, expose_internal: bool = False) -> AsyncGenerator[Event, None]:
        """The run's streamed events in the order they were written, ending with the run's last event.

        A handler's stream can be read once: a second read raises ``WorkflowRuntimeError``. With
        ``expose_internal`` it also has the engine's internal events (``StepStateChanged`` for each invocation,
        ``WorkflowIdleEvent``, ``UnhandledEvent``): made only for a stream that asks, from the run's start when asked
        before the run reached its dispatcher (``stream_events`` called right after ``run()``), else from then on.
        """
        if self._streamed:
            raise WorkflowRuntimeError("All the streamed events have already been consumed.")
        self._streamed = True
        if expose_internal:
            self._expose()
        while True:
            event = await self._queue.get()
            if not expose_internal and isinstance(event, InternalDispatchEvent):
                continue
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

    async def stats(self) -> WorkflowStats:
        """The run's figures per step (``rayflow.stats.StepStats``): events in and out, events queued now, retries,
        failures, latency percentiles per invocation, seconds busy per actor. Asked of the dispatcher while it knows
        the run (during it, and after it for its last ``RAYFLOW_ENDED_SNAPSHOTS`` runs), else what the run's end
        brought. ``format_stats(await handler.stats())`` makes a text table, ``.to_dict()`` plain data."""
        if self._observer is None:
            return StatsBook().snapshot(run_id=self.run_id)
        return await self._observer.stats()

    def trace(self) -> dict[str, Any]:
        """The run's timeline as Chrome trace JSON (open it in Perfetto or chrome://tracing): a slice per step
        invocation on a track per actor, grouped by node. Complete once the run is over; up to
        ``RAYFLOW_TRACE_MAX_SLICES`` invocations."""
        if self._observer is None:
            return chrome_trace(RunSpan(self.run_id, "", 0.0), ())
        return self._observer.trace()

    def save_trace(self, path: str | os.PathLike[str]) -> None:
        """Write ``trace()`` to ``path`` as JSON."""
        if self._observer is None:
            raise WorkflowRuntimeError("This run has no trace")
        self._observer.save_trace(path)

    def __str__(self) -> str:
        return f"WorkflowHandler(run_id={self.run_id}, done={self.is_done()})"
