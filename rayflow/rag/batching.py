"""The pure policy of model pools: how a call is cut into chunks, which replica gets a chunk, which queued requests
a replica runs together and when, which results it remembers, and when an idle replica should exit.

Where it sits: ``ModelPool`` (client) uses ``plan_chunks`` / ``pick_replica``; the replica actor drives a
``BatchQueue`` and a ``ResultCache`` and asks ``is_idle``. No Ray, no event loop, no clock: times are passed in, so
every rule is tested with plain numbers.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["MISS", "BatchQueue", "Request", "ResultCache", "is_idle", "pick_replica", "plan_chunks"]

#: What ``ResultCache.lookup`` gives for an input it does not hold.
MISS: Any = object()


def plan_chunks(n: int, max_batch: int) -> list[tuple[int, int]]:
    """``[start, end)`` ranges of at most ``max_batch`` items covering ``range(n)``."""
    return [(start, min(start + max_batch, n)) for start in range(0, n, max_batch)]


def pick_replica(inflight: list[int], turn: int) -> int:
    """The replica with the fewest chunks in flight; ties go round-robin from ``turn``."""
    n = len(inflight)
    return min(range(n), key=lambda i: (inflight[i], (i - turn) % n))


@dataclass(slots=True)
class Request:
    items: list[Any]
    key: tuple[str, str]
    kwargs: dict[str, Any]
    arrived: float
    future: Any  # an asyncio.Future in the replica; anything in tests


class BatchQueue:
    """The replica's waiting requests and the rule that decides when and what to run.

    A batch is the oldest request plus the following requests with the same key (method and kwargs), in order,
    up to ``max_batch`` items in all; it stops at the first same-key request that does not fit, so requests run in
    arrival order within a key. The batch is due when it cannot grow any more, or ``max_wait_s`` after its oldest
    request arrived.
    """

    def __init__(self, max_batch: int, max_wait_s: float) -> None:
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._pending: deque[Request] = deque()

    def __len__(self) -> int:
        return len(self._pending)

    def push(self, request: Request) -> None:
        self._pending.append(request)

    def _plan(self) -> tuple[list[int], bool]:
        head = self._pending[0]
        chosen: list[int] = []
        total = 0
        for i, request in enumerate(self._pending):
            if request.key != head.key:
                continue
            if chosen and total + len(request.items) > self.max_batch:
                return chosen, True
            chosen.append(i)
            total += len(request.items)
        return chosen, total >= self.max_batch

    def due_at(self) -> float | None:
        """When the next batch should run (a past time means now); None when nothing waits."""
        if not self._pending:
            return None
        head = self._pending[0]
        _, full = self._plan()
        return head.arrived if full else head.arrived + self.max_wait_s

    def take(self) -> list[Request]:
        """Remove and return the next batch (call when ``due_at()`` has passed)."""
        chosen, _ = self._plan()
        batch = [self._pending[i] for i in chosen]
        for i in reversed(chosen):
            del self._pending[i]
        return batch


class ResultCache:
    """The last ``capacity`` results of a replica, one per (batch key, input): least recently used goes first.

    A model call's result has one row per input; a row is kept under its input (which must be hashable: a text, a
    tuple of texts; other inputs are never cached). Used so that an input computed moments ago (the query the
    retriever embedded, embedded again by the reranker) is answered without running the model.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._rows: OrderedDict[tuple[Hashable, Hashable], Any] = OrderedDict()

    def __len__(self) -> int:
        return len(self._rows)

    def lookup(self, key: Hashable, items: Sequence[Any]) -> list[Any]:
        """The cached row of each input, or ``MISS``."""
        if self.capacity <= 0:
            return [MISS] * len(items)
        out = []
        for item in items:
            try:
                row = self._rows.get((key, item), MISS)
            except TypeError:  # an unhashable input
                row = MISS
            if row is not MISS:
                self._rows.move_to_end((key, item))
            out.append(row)
        return out

    def store(self, key: Hashable, items: Sequence[Any], rows: Sequence[Any]) -> None:
        """Remember ``rows[i]`` as the result of ``items[i]``."""
        if self.capacity <= 0:
            return
        for item, row in zip(items, rows, strict=True):
            try:
                self._rows[(key, item)] = row
            except TypeError:
                continue
            self._rows.move_to_end((key, item))
        while len(self._rows) > self.capacity:
            self._rows.popitem(last=False)


def is_idle(now: float, last_active: float, busy: bool, idle_s: float) -> bool:
    """Whether a replica with no queued or running work since ``last_active`` should exit."""
    return idle_s > 0 and not busy and now - last_active >= idle_s
