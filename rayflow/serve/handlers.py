"""The server's runs: one ``ServedRun`` per handler id, kept by the ``HandlerRegistry``.

A served run records every event its stream carries, as envelopes numbered from 0 in stream order, so any number
of readers can follow it, each from where it likes (``events_after``), and one that drops its connection resumes
with exactly the events it missed. The last event of a run is its StopEvent (or its failure, timeout or cancel
event); the run's status is set before that event is recorded, so a reader that sees the end sees the final status.

Statuses are LlamaIndex's server's: ``running``, then ``completed`` (a StopEvent), ``failed`` (a step failed for good,
the run timed out, or its actors died) or ``cancelled``. Finished runs are kept, the oldest forgotten first past
``RAYFLOW_SERVE_KEPT_HANDLERS``; a finished handler id started again continues that run's context (its store).

Everything here runs on the server's event loop: no locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone
from typing import Any, Literal

from rayflow.config import settings
from rayflow.context import Context
from rayflow.errors import WorkflowCancelledByUser
from rayflow.events import Event, StartEvent, StopEvent, WorkflowFailedEvent
from rayflow.handler import WorkflowHandler
from rayflow.serve.envelope import envelope_of, is_terminal
from rayflow.workflow import Workflow

__all__ = ["HandlerBusyError", "HandlerRegistry", "ServedRun", "Status"]

Status = Literal["running", "completed", "failed", "cancelled"]
STATUSES: tuple[Status, ...] = ("running", "completed", "failed", "cancelled")

#: Seconds the stream of a run whose handler already ended is still read for its last events. Only a run that ended
#: without publishing a terminal event (an error rayflow did not expect) waits this long.
_DRAIN_S = 1.0


class HandlerBusyError(Exception):
    """A run was started under the id of a handler that is still running."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


class ServedRun:
    """One run as the server sees it: its status, its result or error, and its recorded stream."""

    def __init__(self, handler_id: str, workflow_name: str, handler: WorkflowHandler) -> None:
        self.handler_id = handler_id
        self.workflow_name = workflow_name
        self.handler = handler
        self.status: Status = "running"
        self.error: str | None = None
        self.result: StopEvent | None = None
        self.started_at = _now()
        self.updated_at = self.started_at
        self.completed_at: datetime | None = None
        self._events: list[dict[str, Any]] = []
        self._grown = asyncio.Event()
        self.follower: asyncio.Task[None] | None = None

    @property
    def done(self) -> bool:
        return self.status != "running"

    @property
    def ctx(self) -> Context[Any]:
        return self.handler.ctx

    def last_sequence(self) -> int:
        """The number of the last recorded event, -1 before the first."""
        return len(self._events) - 1

    def finished_streaming(self) -> bool:
        """Whether the run's last event is recorded: no event will follow."""
        return bool(self._events) and is_terminal(self._events[-1])

    def record(self, event: Event) -> None:
        self._events.append(envelope_of(event))
        self.updated_at = _now()
        self._grown.set()
        self._grown = asyncio.Event()

    def end(self, status: Status, result: StopEvent | None = None, error: str | None = None) -> None:
        self.status, self.result, self.error = status, result, error
        self.updated_at = self.completed_at = _now()
        self._grown.set()

    async def events_after(
        self, sequence: int, heartbeat_s: float | None
    ) -> AsyncIterator[tuple[int, dict[str, Any]] | None]:
        """The recorded events numbered above ``sequence``, then each new one as it comes, until the run's last;
        None after every ``heartbeat_s`` seconds without an event (a reader's cue to show it is alive)."""
        cursor = sequence
        while True:
            while cursor < len(self._events) - 1:
                cursor += 1
                yield cursor, self._events[cursor]
                if is_terminal(self._events[cursor]):
                    return
            if self.done and cursor >= len(self._events) - 1:
                return
            grown = self._grown
            try:
                await asyncio.wait_for(grown.wait(), timeout=heartbeat_s)
            except asyncio.TimeoutError:
                yield None

    def to_json(self) -> dict[str, Any]:
        """The handler as LlamaIndex's server describes one (``HandlerData``)."""
        return {
            "handler_id": self.handler_id,
            "workflow_name": self.workflow_name,
            "run_id": self.handler.run_id,
            "error": self.error,
            "result": None if self.result is None else envelope_of(self.result),
            "result_unreadable": False,
            "status": self.status,
            "started_at": _iso(self.started_at),
            "updated_at": _iso(self.updated_at),
            "completed_at": _iso(self.completed_at),
        }


async def _follow(run: ServedRun) -> None:
    """Record the run's stream until its last event, then its status from how the handler ended."""
    handler = run.handler
    events = handler.stream_events()
    ending: asyncio.Future[StopEvent] = asyncio.ensure_future(handler.stop_event_result())
    pending_next: asyncio.Future[Event] | None = None
    last: Event | None = None
    try:
        while not isinstance(last, StopEvent):
            pending_next = pending_next or asyncio.ensure_future(events.__anext__())
            either: list[asyncio.Future[Any]] = [pending_next, ending]
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if not pending_next.done():
                # The handler ended: everything it streamed is queued for the reader by now.
                await asyncio.wait({pending_next}, timeout=_DRAIN_S)
                if not pending_next.done():
                    break
            if pending_next.cancelled() or pending_next.exception() is not None:
                break  # the stream broke off; the handler's end says why
            last, pending_next = pending_next.result(), None
            if isinstance(last, StopEvent):
                break
            run.record(last)
        try:
            stop = await asyncio.shield(ending)
        except asyncio.CancelledError:
            if not ending.cancelled():
                raise  # this follower is cancelled, not the run
            run.end("cancelled")
        except WorkflowCancelledByUser as err:
            run.end("cancelled", error=str(err) or None)
        except Exception as err:
            run.end("failed", error=str(err) or type(err).__name__)
            if not isinstance(last, StopEvent):
                last = WorkflowFailedEvent(step_name="", exception=err)
        else:
            run.end("completed", result=stop)
        if last is not None and isinstance(last, StopEvent):
            run.record(last)
    finally:
        for future in (pending_next, ending):
            if future is not None and not future.done():
                future.cancel()
        with contextlib.suppress(BaseException):
            await events.aclose()


class HandlerRegistry:
    """The runs of the served workflows by handler id: started here, followed to their end, cancelled, forgotten."""

    def __init__(self, workflows: dict[str, Workflow], keep: int | None = None) -> None:
        self.workflows = workflows
        self._runs: dict[str, ServedRun] = {}
        self._keep = settings().serve_kept_handlers if keep is None else keep

    def get(self, handler_id: str) -> ServedRun | None:
        return self._runs.get(handler_id)

    def query(self, statuses: list[str] | None, names: list[str] | None) -> list[ServedRun]:
        """The runs whose status and workflow are among those given (None: any), oldest first."""
        return [
            run
            for run in self._runs.values()
            if (statuses is None or run.status in statuses) and (names is None or run.workflow_name in names)
        ]

    def start(self, workflow_name: str, start_event: StartEvent | None, handler_id: str | None) -> ServedRun:
        """Start a run of ``workflow_name`` under ``handler_id`` (a new id if None). A finished handler's id continues
        its context; a running one's is refused with ``HandlerBusyError``."""
        handler_id = handler_id or uuid.uuid4().hex
        ctx: Context[Any] | None = None
        earlier = self._runs.get(handler_id)
        if earlier is not None:
            if not earlier.done:
                raise HandlerBusyError(f"Handler {handler_id!r} is already running")
            ctx = earlier.ctx
        handler = self.workflows[workflow_name].run(ctx=ctx, start_event=start_event)
        run = ServedRun(handler_id, workflow_name, handler)
        self._runs.pop(handler_id, None)
        self._runs[handler_id] = run
        run.follower = asyncio.get_running_loop().create_task(_follow(run), name=f"rayflow.serve.{handler_id}")
        self._forget_oldest()
        return run

    def _forget_oldest(self) -> None:
        finished = [key for key, run in self._runs.items() if run.done]
        for key in finished[: max(0, len(finished) - self._keep)]:
            del self._runs[key]

    async def wait(self, run: ServedRun) -> None:
        """Until ``run`` has ended and its status is set."""
        if run.follower is not None:
            await asyncio.shield(run.follower)

    async def cancel(self, run: ServedRun) -> None:
        """Cancel a running run and wait until it has ended (status ``cancelled``, unless it ended first)."""
        await run.handler.cancel_run()
        await self.wait(run)

    def forget(self, handler_id: str) -> None:
        self._runs.pop(handler_id, None)

    async def close(self, on_error: Callable[[BaseException], None] | None = None) -> None:
        """Cancel every running run, then close the workflows (their actors stop)."""
        running = [run for run in self._runs.values() if not run.done]
        await asyncio.gather(*(self.cancel(run) for run in running), return_exceptions=True)
        for workflow in self.workflows.values():
            try:
                await workflow.close()
            except Exception as err:
                if on_error is not None:
                    on_error(err)
