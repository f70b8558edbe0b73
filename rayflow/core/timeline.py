"""A run's timeline as Chrome trace JSON (the Trace Event Format that Perfetto and chrome://tracing open).

One complete slice (``"ph": "X"``) per step invocation, on a track per actor: the process (``pid``) is the Ray node
it ran on, the thread (``tid``) the actor; metadata records name them (``node 1a2b3c4d``, ``fanout.0``). The slice
carries the run id, the event handled, the events emitted, the event returned, the outcome and any error in its
``args``. The run itself is one slice on a track of its own (process 0, ``driver``). Times are wall-clock
microseconds, as the actors' clocks read them. Plain data in, plain data out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rayflow.core.stats import Invocation

__all__ = ["RunSpan", "chrome_trace"]


@dataclass(frozen=True)
class RunSpan:
    """A run as its driver saw it: wall-clock seconds from its start to its end (None while it goes on)."""

    run_id: str
    workflow: str
    started: float
    ended: float | None = None
    outcome: str | None = None


def _us(seconds: float) -> float:
    return round(seconds * 1e6, 3)


def chrome_trace(run: RunSpan, invocations: Iterable[Invocation], dropped: int = 0) -> dict[str, Any]:
    """The Chrome trace of ``run`` and its step ``invocations``; ``dropped``: invocations left out (a bound)."""
    nodes: dict[str, int] = {}
    actors: dict[tuple[int, str], int] = {}
    events: list[dict[str, Any]] = [
        {"ph": "M", "name": "process_name", "pid": 0, "tid": 0, "args": {"name": "driver"}},
        {"ph": "M", "name": "thread_name", "pid": 0, "tid": 0, "args": {"name": f"run {run.run_id[:8]}"}},
    ]
    for record in invocations:
        pid = nodes.get(record.node)
        if pid is None:
            pid = nodes[record.node] = len(nodes) + 1
            events.append(
                {"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": f"node {record.node}"}}
            )
        tid = actors.get((pid, record.actor))
        if tid is None:
            tid = actors[(pid, record.actor)] = len(actors) + 1
            events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": record.actor}})
        args: dict[str, Any] = {
            "run_id": record.run_id,
            "actor": record.actor,
            "node": record.node,
            "event": record.event,
            "emitted": record.emitted,
            "returned": record.returned,
            "outcome": record.outcome,
        }
        if record.error is not None:
            args["error"] = record.error
        events.append(
            {
                "ph": "X",
                "cat": "step",
                "name": record.step,
                "pid": pid,
                "tid": tid,
                "ts": _us(record.started),
                "dur": _us(record.seconds),
                "args": args,
            }
        )
    if run.ended is not None:
        events.append(
            {
                "ph": "X",
                "cat": "run",
                "name": run.workflow,
                "pid": 0,
                "tid": 0,
                "ts": _us(run.started),
                "dur": _us(max(run.ended - run.started, 0.0)),
                "args": {"run_id": run.run_id, "outcome": run.outcome, "dropped_invocations": dropped},
            }
        )
    return {"traceEvents": events, "displayTimeUnit": "ms", "otherData": {"run_id": run.run_id}}
