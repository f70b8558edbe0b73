"""The events waiting for a step (or for one actor of it), kept run by run: an actor that already runs as many calls
of one run as it may takes the next run's events instead of waiting behind them. Plain data, no I/O."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator

from rayflow.core.commands import WorkItem

__all__ = ["RunQueue"]


class RunQueue:
    """Waiting events: within a run in the order they came, and runs in the order their first waiting event came.

    A run with nothing waiting leaves the order; its next event puts it at the end.
    """

    __slots__ = ("_len", "_runs", "again")

    def __init__(self, items: Iterable[WorkItem] = ()) -> None:
        self._runs: dict[str, deque[WorkItem]] = {}
        self._len = 0
        #: How many of the waiting events are delivered again after their call was lost with its actor.
        self.again = 0
        for item in items:
            self.append(item)

    def append(self, item: WorkItem) -> None:
        """Queue ``item`` last of its run."""
        self._runs.setdefault(item.run_id, deque()).append(item)
        self._len += 1
        self.again += item.deliveries > 0

    def push_front(self, items: Iterable[WorkItem]) -> None:
        """Queue ``items`` ahead of everything, in their order: their runs come first, and each item before the
        events of its run already waiting."""
        front: dict[str, deque[WorkItem]] = {}
        for item in items:
            front.setdefault(item.run_id, deque()).append(item)
            self._len += 1
            self.again += item.deliveries > 0
        for run_id, queued in front.items():
            queued.extend(self._runs.pop(run_id, ()))
        front.update(self._runs)
        self._runs = front

    def first_run(self, eligible: Callable[[str], bool]) -> str | None:
        """The first run in the order with an event waiting that ``eligible`` accepts; None: none."""
        return next((run_id for run_id in self._runs if eligible(run_id)), None)

    def head(self, run_id: str) -> WorkItem:
        """The run's next event (the run has one waiting)."""
        return self._runs[run_id][0]

    def pop(self, run_id: str) -> WorkItem:
        """Take the run's next event (the run has one waiting)."""
        queued = self._runs[run_id]
        item = queued.popleft()
        if not queued:
            del self._runs[run_id]
        self._len -= 1
        self.again -= item.deliveries > 0
        return item

    def has(self, run_id: str) -> bool:
        return run_id in self._runs

    def clear(self) -> None:
        self._runs.clear()
        self._len = 0
        self.again = 0

    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    def __iter__(self) -> Iterator[WorkItem]:
        """Every waiting event, run by run."""
        for queued in self._runs.values():
            yield from queued

    def __repr__(self) -> str:
        return f"RunQueue({self._len} events of {len(self._runs)} runs)"
