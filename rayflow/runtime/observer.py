"""The driver's view of one run's step invocations: printed, kept for a trace, turned into OpenTelemetry spans.

Step actors measure each invocation and hand the record back with their call; the dispatcher counts it in the run's
statistics and puts it on the run's stream (``rayflow.core.stats``), which the session reads; the session hands the
records here. So everything below happens in the driver's process, from what the actors reported, after the fact:

- ``verbose``: a line when an invocation begins (the step actor says so through the dispatcher, in order with the
  events it emits: sent only for a verbose workflow) and one when it ends, with the run, the actor, its node and the
  time taken;
- the trace: the records kept (up to ``RAYFLOW_TRACE_MAX_SLICES`` per run), as Chrome trace JSON
  (``rayflow.core.timeline``);
- OpenTelemetry, when the ``opentelemetry`` API is installed and an SDK tracer provider is set: a span for the run
  (a child of the caller's current span) and a child span per invocation, with the times the actor measured. With
  no provider set (the API's default proxy), nothing is created and the records are not even asked for.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from rayflow.config import settings
from rayflow.core.stats import (
    CANCELLED,
    FAILED,
    PAUSED,
    RETRY,
    Invocation,
    RunStats,
    StatsBook,
    StepsDone,
    StepStarted,
    WorkflowStats,
)
from rayflow.core.timeline import RunSpan, chrome_trace

__all__ = ["LiveStats", "RunObserver", "otel_tracer"]

#: Asks the dispatcher for a run's book and queue lengths; None when it does not know the run (any more).
LiveStats = Callable[[], Awaitable[tuple[StatsBook, dict[str, int]] | None]]


def otel_tracer() -> Any:
    """rayflow's OpenTelemetry tracer, or None: ``RAYFLOW_OTEL=0``, the ``opentelemetry`` API not imported in this
    process, or no SDK tracer provider set (the API's default proxy or no-op provider, whose spans record nothing)."""
    if not settings().otel or "opentelemetry.trace" not in sys.modules:
        return None  # whoever sets a tracer provider has imported the API: no import here, no cost
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    return provider.get_tracer("rayflow")


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class RunObserver:
    """What the driver learns of one run's step invocations (see the module docstring)."""

    def __init__(self, run_id: str, workflow: str, steps: Sequence[str], verbose: bool) -> None:
        self.run_id = run_id
        self._workflow = workflow
        self._steps = list(steps)
        self._verbose = verbose
        self._tracer = otel_tracer()
        self._limit = settings().trace_max_slices
        self._records: list[Invocation] = []
        self._span = RunSpan(run_id, workflow, time.time())
        self._otel_run: Any = None
        self._book: StatsBook | None = None
        self._dropped = 0
        self._live: LiveStats | None = None

    @property
    def forward(self) -> int:
        """How many invocation records the run's stream should carry: every one for verbose output or spans."""
        return -1 if self._verbose or self._tracer is not None else self._limit

    def begin(self, live: LiveStats) -> None:
        """The run reached its dispatcher; ``live`` asks it for the run's figures while it goes on."""
        self._live = live
        if self._tracer is not None and self._otel_run is None:
            self._otel_run = self._tracer.start_span(
                f"rayflow.run {self._workflow}",
                start_time=_ns(self._span.started),
                attributes={"rayflow.workflow": self._workflow, "rayflow.run_id": self.run_id},
            )

    def see(self, item: object) -> bool:
        """Take ``item`` from the run's stream if it is an observation (not an event or the end): True if it was."""
        if isinstance(item, StepsDone):
            for record in item.records:
                self._finished(record)
            return True
        if isinstance(item, StepStarted):
            if self._verbose:
                print(f"Running step {item.step} ({_where(item.run_id, item.actor, item.node)})", flush=True)
            return True
        if isinstance(item, RunStats):
            self._book, self._dropped = item.book, item.dropped
            return True
        return False

    def _finished(self, record: Invocation) -> None:
        if len(self._records) < self._limit:
            self._records.append(record)
        else:
            self._dropped += 1
        if self._verbose:
            where = _where(record.run_id, record.actor, record.node)
            print(f"Step {record.step} {_what(record)} in {record.seconds * 1000:.1f} ms ({where})", flush=True)
        if self._otel_run is not None:
            self._span_of(record)

    def _span_of(self, record: Invocation) -> None:
        from opentelemetry import trace

        attributes: dict[str, Any] = {
            "rayflow.step": record.step,
            "rayflow.run_id": record.run_id,
            "rayflow.actor": record.actor,
            "rayflow.node": record.node,
            "rayflow.event_in": record.event,
            "rayflow.events_out": record.emitted,
            "rayflow.outcome": record.outcome,
        }
        if record.returned is not None:
            attributes["rayflow.returned"] = record.returned
        if record.error is not None:
            attributes["rayflow.error"] = record.error
        span = self._tracer.start_span(
            f"rayflow.step {record.step}",
            context=trace.set_span_in_context(self._otel_run),
            start_time=_ns(record.started),
            attributes=attributes,
        )
        if record.outcome in (FAILED, RETRY):
            span.set_status(trace.Status(trace.StatusCode.ERROR, record.error))
        span.end(end_time=_ns(record.started + record.seconds))

    def end(self, outcome: str, error: str | None = None) -> None:
        """The run ended (once; later calls change nothing)."""
        if self._span.ended is not None:
            return
        ended = time.time()
        self._span = RunSpan(self.run_id, self._workflow, self._span.started, ended, outcome)
        if self._otel_run is not None:
            from opentelemetry import trace

            self._otel_run.set_attribute("rayflow.outcome", outcome)
            if error is not None:
                self._otel_run.set_attribute("rayflow.error", error)
                self._otel_run.set_status(trace.Status(trace.StatusCode.ERROR, error))
            self._otel_run.end(end_time=_ns(ended))

    async def stats(self) -> WorkflowStats:
        """The run's figures: asked of the dispatcher (which counts invocations finishing after the run's end too),
        else the book the run's end carried, else nothing yet."""
        answer = None
        if self._live is not None:
            try:
                answer = await self._live()
            except Exception:  # the dispatcher is gone: what the run's end brought is all there is
                answer = None
        if answer is not None:
            book, queued = answer
            return book.snapshot(self._steps, queued, run_id=self.run_id)
        return (self._book or StatsBook()).snapshot(self._steps, run_id=self.run_id)

    def trace(self) -> dict[str, Any]:
        """The run's timeline as Chrome trace JSON (a dict ready for ``json.dump``)."""
        return chrome_trace(self._span, self._records, self._dropped)

    def save_trace(self, path: str | os.PathLike[str]) -> None:
        with open(path, "w", encoding="utf-8") as out:
            json.dump(self.trace(), out)


def _where(run_id: str, actor: str, node: str) -> str:
    return f"run {run_id[:8]}, actor {actor}, node {node}"


def _what(record: Invocation) -> str:
    if record.outcome == FAILED:
        return f"failed: {record.error}"
    if record.outcome == RETRY:
        return f"failed, to be retried: {record.error}"
    if record.outcome == PAUSED:
        return "paused in wait_for_event"
    if record.outcome == CANCELLED:
        return "was cancelled"
    what = "produced no event" if record.returned is None else f"produced event {record.returned}"
    sent = record.emitted - (record.returned is not None)
    return f"{what} ({sent} sent)" if sent else what
