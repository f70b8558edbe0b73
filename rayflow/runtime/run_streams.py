"""What the dispatcher keeps for each run beside the routing core's state: the run's stream and its deadlines.

A run's *stream* is what its driver reads by long polling ``Dispatcher.next_items``: the envelopes published for the
caller (with their ids), records of step invocations as they finish, the run's book, and last its ``EndRun``. Items
that need not wake the driver (records of a quiet workflow, a book followed by the end) wait for the next that does.
A run's *deadlines* are its timeout and the timeouts of its ``wait_for_event`` waits, asyncio timers cancelled when
the run ends or the set is parked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rayflow.core.commands import EndRun, Outcome

__all__ = ["RunDeadlines", "RunStreams"]


@dataclass
class _RunStream:
    items: list[Any] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, item: Any, wake: bool) -> None:
        self.items.append(item)
        if wake:
            self.ready.set()

    async def take(self) -> list[Any]:
        await self.ready.wait()
        items, self.items = self.items, []
        self.ready.clear()
        return items


class RunStreams:
    """The streams of the runs whose drivers still read them, by run id."""

    def __init__(self) -> None:
        self._streams: dict[str, _RunStream] = {}

    def __bool__(self) -> bool:
        return bool(self._streams)

    def open(self, run_id: str) -> None:
        self._streams[run_id] = _RunStream()

    def runs(self) -> list[str]:
        """The runs whose streams are open."""
        return list(self._streams)

    def put(self, run_id: str, item: Any, wake: bool = True) -> None:
        """Add ``item`` to the run's stream (nothing if no driver reads it); ``wake=False``: it waits for the next
        item that wakes the reader (records of step invocations do not cost the driver a call each)."""
        stream = self._streams.get(run_id)
        if stream is not None:
            stream.put(item, wake)

    def end(self, end: EndRun, book: Any) -> None:
        """Put the run's book (if any) and its end on its stream: the last items its driver reads."""
        if book is not None:
            self.put(end.run_id, book, wake=False)
        self.put(end.run_id, end)

    async def take(self, run_id: str) -> list[Any]:
        """The items put on the run's stream since the last take, once there is one that wakes; the stream closes
        with its ``EndRun``. An unknown run reads as failed."""
        stream = self._streams.get(run_id)
        if stream is None:
            return [EndRun(run_id, Outcome.FAILED, message=f"Run {run_id} is not known to the dispatcher")]
        items = await stream.take()
        if items and isinstance(items[-1], EndRun):
            del self._streams[run_id]
        return items


class RunDeadlines:
    """The timers of the runs' deadlines: each calls back into the dispatcher when it passes."""

    def __init__(self) -> None:
        self._timeouts: dict[str, asyncio.TimerHandle] = {}
        self._waits: dict[str, list[asyncio.TimerHandle]] = {}

    def timeout(self, run_id: str, at: float, fire: Callable[[], None]) -> None:
        """Call ``fire`` at loop time ``at`` (the run's timeout; it replaces an earlier one)."""
        loop = asyncio.get_running_loop()
        self._timeouts[run_id] = loop.call_later(max(0.0, at - loop.time()), fire)

    def wait(self, run_id: str, after: float, fire: Callable[[], None]) -> None:
        """Call ``fire`` in ``after`` seconds (a ``wait_for_event`` timeout of the run)."""
        self._waits.setdefault(run_id, []).append(asyncio.get_running_loop().call_later(after, fire))

    def cancel(self, run_id: str) -> None:
        """The run ended: none of its deadlines fires."""
        timer = self._timeouts.pop(run_id, None)
        if timer is not None:
            timer.cancel()
        for timer in self._waits.pop(run_id, ()):
            timer.cancel()

    def cancel_all(self) -> None:
        for run_id in {*self._timeouts, *self._waits}:
            self.cancel(run_id)
