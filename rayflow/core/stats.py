"""Step statistics: what each step invocation cost, folded into bounded tallies per step. Plain data, no I/O.

A step actor measures every invocation it runs (an ``Invocation``: the step, the actor and node, when it began, how
long it took, the event it handled, the events it emitted, how it ended) and hands the records back with its call.
The dispatcher folds each record into the ``StatsBook`` of its run and into the one of the workflow instance: O(1)
per invocation (counters, a busy-time sum per actor, and a latency ``Sketch`` whose size is bounded by the range of
latencies, never by their number). ``StatsBook.snapshot`` gives the typed figures users read (``WorkflowStats``).

What counts: ``events_in`` is the invocations of the step (each handles one event; a retried attempt or a step
rerun after ``wait_for_event`` is another invocation); ``events_out`` the events the invocations emitted (returned,
sent with ``send_event``, or written to the stream); ``retries`` the attempts that failed and were tried again by the
step's retry policy; ``failures`` the attempts that failed for good.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = [
    "RELATIVE_ERROR",
    "Invocation",
    "RunStats",
    "RunWatch",
    "Sketch",
    "StatsBook",
    "StepStarted",
    "StepStats",
    "StepTally",
    "StepsDone",
    "WorkflowStats",
    "format_stats",
]

#: How far a reported percentile may lie from a latency actually measured (relative).
RELATIVE_ERROR = 0.01
_GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_LOG_GAMMA = math.log(_GAMMA)
#: Latencies are clamped to this range (1 microsecond to about 11.6 days): at most ~1,700 buckets per step.
_FLOOR, _CEIL = 1e-6, 1e6

#: How an invocation ended.
DONE, FAILED, RETRY, PAUSED, CANCELLED = "done", "failed", "retry", "paused", "cancelled"


class Invocation(NamedTuple):
    """One step invocation as its actor measured it (a tuple on the wire: cheap to pickle by the thousand)."""

    run_id: str
    step: str
    #: The actor that ran it, as ``<step>.<index>`` of its pool (a chained step runs on the caller's actor).
    actor: str
    #: The first 8 hex digits of the Ray node id it ran on.
    node: str
    #: Wall-clock seconds (``time.time()``) when it began.
    started: float
    seconds: float
    #: The type of the event it handled.
    event: str
    #: Events it emitted: returned, sent, or written to the stream.
    emitted: int
    #: The type of the event it returned, if any.
    returned: str | None
    #: ``done``, ``failed``, ``retry`` (failed, to be tried again), ``paused`` (in ``wait_for_event``), ``cancelled``.
    outcome: str
    error: str | None = None


class StepStarted(NamedTuple):
    """A step invocation began (sent only for ``Workflow(verbose=True)``, to say so while it runs)."""

    run_id: str
    step: str
    actor: str
    node: str
    started: float
    event: str


class StepsDone(NamedTuple):
    """Records of finished step invocations of one run, on their way to its driver (its run stream)."""

    records: list[Invocation]


class RunStats(NamedTuple):
    """A run's book at its end, on its way to its driver just before the run's end; ``dropped``: records of its
    invocations not sent to the driver (past ``RAYFLOW_TRACE_MAX_SLICES``)."""

    book: StatsBook
    dropped: int


@dataclass(slots=True)
class Sketch:
    """Latencies in logarithmic buckets: a quantile is within ``RELATIVE_ERROR`` of a latency in the bucket it falls
    in; adding is O(1), the memory bounded by the range of latencies; two sketches merge by adding their buckets."""

    buckets: dict[int, int] = field(default_factory=dict)
    count: int = 0
    total: float = 0.0
    low: float = math.inf
    high: float = 0.0

    def add(self, seconds: float) -> None:
        key = math.ceil(math.log(min(max(seconds, _FLOOR), _CEIL)) / _LOG_GAMMA)
        self.buckets[key] = self.buckets.get(key, 0) + 1
        self.count += 1
        self.total += seconds
        if seconds < self.low:
            self.low = seconds
        if seconds > self.high:
            self.high = seconds

    def merge(self, other: Sketch) -> None:
        for key, n in other.buckets.items():
            self.buckets[key] = self.buckets.get(key, 0) + n
        self.count += other.count
        self.total += other.total
        self.low = min(self.low, other.low)
        self.high = max(self.high, other.high)

    def quantiles(self, qs: Iterable[float]) -> list[float | None]:
        """The latencies at the quantiles ``qs`` (ascending, each in [0, 1]), None for each when nothing was added.
        Each lies within the smallest and largest latency added, so they are ordered."""
        wanted = list(qs)
        if not self.count:
            return [None] * len(wanted)
        answers: list[float | None] = []
        keys = iter(sorted(self.buckets))
        seen, key = 0, None
        for q in wanted:
            rank = q * (self.count - 1)
            while key is None or seen <= rank:
                key = next(keys)
                seen += self.buckets[key]
            value = 2 * _GAMMA**key / (_GAMMA + 1)  # within RELATIVE_ERROR of anything in the bucket
            answers.append(min(max(value, self.low), self.high))
        return answers


@dataclass(slots=True)
class StepTally:
    """What the invocations of one step added up to so far."""

    events_in: int = 0
    events_out: int = 0
    retries: int = 0
    failures: int = 0
    latency: Sketch = field(default_factory=Sketch)
    #: Seconds spent in this step's invocations, per actor that ran them.
    busy: dict[str, float] = field(default_factory=dict)

    def add(self, record: Invocation) -> None:
        self.events_in += 1
        self.events_out += record.emitted
        if record.outcome == RETRY:
            self.retries += 1
        elif record.outcome == FAILED:
            self.failures += 1
        self.latency.add(record.seconds)
        self.busy[record.actor] = self.busy.get(record.actor, 0.0) + record.seconds

    def merge(self, other: StepTally) -> None:
        self.events_in += other.events_in
        self.events_out += other.events_out
        self.retries += other.retries
        self.failures += other.failures
        self.latency.merge(other.latency)
        for actor, seconds in other.busy.items():
            self.busy[actor] = self.busy.get(actor, 0.0) + seconds


@dataclass(slots=True)
class StatsBook:
    """The tallies of every step that ran, for one run or for a workflow instance across its runs."""

    steps: dict[str, StepTally] = field(default_factory=dict)
    runs: int = 0

    def add(self, record: Invocation) -> None:
        tally = self.steps.get(record.step)
        if tally is None:
            tally = self.steps[record.step] = StepTally()
        tally.add(record)

    def merge(self, other: StatsBook) -> None:
        self.runs += other.runs
        for step, tally in other.steps.items():
            mine = self.steps.get(step)
            if mine is None:
                mine = self.steps[step] = StepTally()
            mine.merge(tally)

    def snapshot(
        self, steps: Iterable[str] = (), queued: Mapping[str, int] | None = None, run_id: str | None = None
    ) -> WorkflowStats:
        """The figures now: one ``StepStats`` for each step in ``steps`` (in that order) and each step that ran;
        ``queued``: the events waiting for each step now."""
        queued = queued or {}
        names = list(dict.fromkeys([*steps, *self.steps]))
        figures = {}
        for name in names:
            tally = self.steps.get(name) or StepTally()
            p50, p95, p99 = tally.latency.quantiles((0.5, 0.95, 0.99))
            count = tally.latency.count
            figures[name] = StepStats(
                step=name,
                events_in=tally.events_in,
                events_out=tally.events_out,
                queued=queued.get(name, 0),
                retries=tally.retries,
                failures=tally.failures,
                p50_s=p50,
                p95_s=p95,
                p99_s=p99,
                mean_s=tally.latency.total / count if count else None,
                max_s=tally.latency.high if count else None,
                busy_s=dict(sorted(tally.busy.items())),
            )
        return WorkflowStats(steps=figures, runs=self.runs, run_id=run_id)


@dataclass(slots=True)
class RunWatch:
    """A run's book at the dispatcher, and how many more invocation records its driver wants (-1: every one)."""

    book: StatsBook
    forward: int
    dropped: int = 0

    def take(self, records: list[Invocation]) -> list[Invocation]:
        """Add ``records`` (of this run) to the book; those to send on to the driver."""
        for record in records:
            self.book.add(record)
        if self.forward < 0:
            return records
        kept = records[: self.forward]
        self.forward -= len(kept)
        self.dropped += len(records) - len(kept)
        return kept


@dataclass(frozen=True)
class StepStats:
    """One step's figures: invocations (events in), events out, events queued now, retries and failures, latency
    per invocation (seconds, None before any), and seconds busy per actor (``<step>.<index>``)."""

    step: str
    events_in: int
    events_out: int
    queued: int
    retries: int
    failures: int
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    mean_s: float | None
    max_s: float | None
    busy_s: Mapping[str, float]

    def to_dict(self) -> dict[str, Any]:
        """The figures as JSON-ready plain data."""
        return {
            "step": self.step,
            "events_in": self.events_in,
            "events_out": self.events_out,
            "queued": self.queued,
            "retries": self.retries,
            "failures": self.failures,
            "p50_s": self.p50_s,
            "p95_s": self.p95_s,
            "p99_s": self.p99_s,
            "mean_s": self.mean_s,
            "max_s": self.max_s,
            "busy_s": dict(self.busy_s),
        }


@dataclass(frozen=True)
class WorkflowStats:
    """The figures of every step of one run (``run_id``) or of a workflow instance across ``runs`` runs."""

    steps: Mapping[str, StepStats]
    runs: int = 0
    run_id: str | None = None

    def __getitem__(self, step: str) -> StepStats:
        return self.steps[step]

    def to_dict(self) -> dict[str, Any]:
        """The figures as JSON-ready plain data: ``{"run_id", "runs", "steps": {name: {...}}}``."""
        return {
            "run_id": self.run_id,
            "runs": self.runs,
            "steps": {name: stats.to_dict() for name, stats in self.steps.items()},
        }

    def table(self) -> str:
        """``format_stats(self)``."""
        return format_stats(self)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def format_stats(stats: WorkflowStats) -> str:
    """A short text table of ``stats``, a line per step: events in, out and queued, retries, failures, latency
    percentiles in milliseconds, and seconds busy summed over the step's actors (how many in brackets)."""
    header = ("step", "in", "out", "queued", "retries", "failed", "p50 ms", "p95 ms", "p99 ms", "busy s")
    rows = [header]
    for s in stats.steps.values():
        busy = f"{sum(s.busy_s.values()):.3f} ({len(s.busy_s)})"
        rows.append(
            (
                s.step,
                str(s.events_in),
                str(s.events_out),
                str(s.queued),
                str(s.retries),
                str(s.failures),
                _ms(s.p50_s),
                _ms(s.p95_s),
                _ms(s.p99_s),
                busy,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    return "\n".join(lines)
