"""The dispatcher's statistics: the book of each run going on, of the runs ended lately, and of each instance.

Part of the dispatcher (``rayflow.runtime.dispatcher_actor``), which hands it the records of each step call's
invocations as the call comes back, before it applies the call's results (so the book a run's end carries counts the
invocation that ended it). Each record counts in its run's book, O(1) (``rayflow.core.stats``); the book of the
run's instance (its *tenant*: equal instances may share a dispatcher, ``rayflow.runtime.sharing``) takes a run's
book when the run ends. A record of a run that has already ended (a step that sent events and went on running while
they ended the run) still counts, in the ended run's book and the instance's; asking for those books waits a moment
for such calls to come back.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Iterable

from rayflow.config import settings
from rayflow.core.stats import Invocation, RunStats, RunWatch, StatsBook, StepsDone

__all__ = ["RunStatsKeeper"]


class RunStatsKeeper:
    """The books of one dispatcher's runs and of the instances they belong to (see the module docstring)."""

    def __init__(self) -> None:
        self._instances: dict[str, StatsBook] = {}
        self._live: dict[str, RunWatch] = {}
        self._tenants: dict[str, str] = {}
        self._ended: OrderedDict[str, tuple[str, StatsBook]] = OrderedDict()
        #: Notified when a step call came back while someone waits in ``book``.
        self._calls_back = asyncio.Condition()
        self._waiting = 0

    def open(self, run_id: str, forward: int, tenant: str = "") -> None:
        """A run of instance ``tenant`` starts; ``forward``: how many records of its invocations its driver wants
        (-1: every one)."""
        self._live[run_id] = RunWatch(StatsBook(runs=1), forward)
        self._tenants[run_id] = tenant

    def _instance(self, tenant: str) -> StatsBook:
        book = self._instances.get(tenant)
        if book is None:
            book = self._instances[tenant] = StatsBook()
        return book

    def observe(self, records: list[Invocation]) -> list[StepsDone]:
        """Count the records of a call's invocations; what to put on the streams of their runs (one per run)."""
        by_run: dict[str, list[Invocation]] = {}
        for record in records:
            mine = by_run.get(record.run_id)
            if mine is None:
                by_run[record.run_id] = [record]
            else:
                mine.append(record)
        out = []
        for run_id, mine in by_run.items():
            watch = self._live.get(run_id)
            if watch is None:
                tenant, ended = self._ended.get(run_id, ("", None))
                instance = self._instance(tenant)
                for record in mine:
                    instance.add(record)
                    if ended is not None:
                        ended.add(record)
                continue
            kept = watch.take(mine)
            if kept:
                out.append(StepsDone(kept))
        return out

    def close(self, run_id: str) -> RunStats | None:
        """The run ended: its book joins its instance's; what its stream carries before its end."""
        watch = self._live.pop(run_id, None)
        if watch is None:
            return None
        tenant = self._tenants.pop(run_id, "")
        self._instance(tenant).merge(watch.book)
        self._ended[run_id] = (tenant, watch.book)
        if len(self._ended) > settings().ended_snapshots:
            self._ended.popitem(last=False)
        return RunStats(watch.book, watch.dropped)

    async def call_back(self) -> None:
        """A step call came back (its records counted)."""
        if self._waiting:
            async with self._calls_back:
                self._calls_back.notify_all()

    async def book(
        self, run_id: str | None, carried: Callable[[], Iterable[str]], tenant: str = ""
    ) -> StatsBook | None:
        """The book of run ``run_id`` (None: of instance ``tenant``, its live runs included); None for a run not known
        (any more). For an ended run (or an instance) it first waits, up to ``RAYFLOW_SHUTDOWN_GRACE_S``, until no
        call in flight carries items of an ended run (``carried``: the runs of the items of the calls in flight)."""
        live = self._live.get(run_id) if run_id is not None else None
        if live is not None:
            return live.book
        await self._settled(run_id, carried)
        if run_id is not None:
            ended = self._ended.get(run_id)
            return None if ended is None else ended[1]
        book = StatsBook()
        book.merge(self._instance(tenant))
        for live_id, watch in self._live.items():
            if self._tenants.get(live_id, "") == tenant:
                book.merge(watch.book)
        return book

    async def _settled(self, run_id: str | None, carried: Callable[[], Iterable[str]]) -> None:
        def settled() -> bool:
            if run_id is not None:
                return run_id not in carried()
            return all(carrying in self._live for carrying in carried())

        if settled():
            return
        self._waiting += 1
        try:
            async with self._calls_back:
                await asyncio.wait_for(self._calls_back.wait_for(settled), settings().shutdown_grace_s)
        except TimeoutError:
            pass  # a call that does not come back (a blocked step) is not waited for
        finally:
            self._waiting -= 1
