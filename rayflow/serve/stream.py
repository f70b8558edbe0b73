"""A run's events as an HTTP body: server-sent events (the default) or newline-delimited JSON.

Server-sent events carry each event's number as its ``id``, so a browser's ``EventSource`` (or any client) that
reconnects with ``Last-Event-ID`` gets exactly the events after the last one it saw. While no event comes, a
comment line (``: heartbeat``) is sent every ``heartbeat_s`` seconds to keep proxies from closing the connection;
NDJSON sends no heartbeats. The body ends after the run's last event.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from rayflow.serve.handlers import ServedRun

__all__ = ["NDJSON", "SSE", "event_frames"]

SSE = "text/event-stream"
NDJSON = "application/x-ndjson"


def _json(envelope: dict[str, Any], include_qualified_name: bool) -> str:
    if not include_qualified_name:
        envelope = {**envelope, "qualified_name": None}
    return json.dumps(envelope, separators=(",", ":"))


async def event_frames(
    run: ServedRun, after: int, *, sse: bool, include_qualified_name: bool, heartbeat_s: float | None
) -> AsyncIterator[str]:
    """The body's pieces: one per event numbered above ``after`` (and a heartbeat comment per idle interval)."""
    async for item in run.events_after(after, heartbeat_s if sse else None):
        if item is None:
            yield ": heartbeat\n\n"
            continue
        sequence, envelope = item
        data = _json(envelope, include_qualified_name)
        yield f"id: {sequence}\ndata: {data}\n\n" if sse else f"{data}\n"
