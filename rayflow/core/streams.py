"""Fan-out streams and the joins that wait on them; steps that take one event of each of several types. Part of the
reducer; plain data, no I/O.

A step that returns a list opens a *stream*: each event of the list goes on as its own event, its envelope's
``scope`` one stream id longer than the scope of the event the step ran for, and every event made while handling
it carries that scope on. A stream counts the work items made inside it (at any depth) that are not over: queued,
running, paused in ``wait_for_event`` or waiting for a retry. When the count falls to zero at the end of a tick,
the stream is over, and each join of its source step (a step with a ``list[E]`` parameter, see ``rayflow.collect``)
that has not run for it yet runs once, with the events of its types the stream's work produced, in their order
of arrival, as one work item in the stream's parent scope. A join with ``Take(n)`` runs at the n-th event instead
and takes none after. Streams nest: an inner stream's join runs in the outer stream, whose count it keeps open.

An event for a join is not a work item: it waits in its stream, the innermost one of its scope that the join's
source steps opened. One that belongs to no such stream (sent with ``ctx.send_event`` outside any stream the join
takes, say) is dropped with a warning on the run's stream of events, as LlamaIndex drops it.

A step with several event parameters runs once one event of each type has arrived, taking the oldest of each.

Costs: O(depth of the scope) per event made or ended; a stream's end, O(joins of its source).
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import replace

from rayflow.core.commands import WorkItem
from rayflow.core.envelope import Envelope
from rayflow.core.state import Run, Stream

__all__ = ["JOIN_KEYS", "count", "fan_out", "finish_streams", "stream_for", "take_join", "take_slot"]

#: The type keys of a join's invocation envelope (its events travel as the work item's members).
JOIN_KEYS = ("rayflow.collect.Join",)


def source_of(stream_id: str) -> str:
    """The step that opened a stream, from its id (``step#n``): a resumed run rebuilds its streams from scopes."""
    return stream_id.rsplit("#", 1)[0]


def fan_out(run: Run, source: str, scope: tuple[str, ...], members: tuple[Envelope, ...]) -> list[Envelope]:
    """Open a stream for the list ``source`` returned while handling an event of ``scope``; ``members`` with their
    scope one stream longer, to route as events. The stream is over once their work is (at once, if there is
    none)."""
    stream_id = f"{source}#{run.next_stream}"
    run.next_stream += 1
    run.streams[stream_id] = Stream(stream_id, source, scope)
    run.ending.add(stream_id)  # an empty list, or members all taken by joins, end it with no work ever counted
    inner = (*scope, stream_id)
    return [replace(member, scope=inner) for member in members]


def count(run: Run, scope: tuple[str, ...], delta: int) -> None:
    """A work item of ``scope`` was made (+1) or is over (-1): every stream of its scope counts it."""
    for depth, stream_id in enumerate(scope):
        stream = run.streams.get(stream_id)
        if stream is None:
            if delta < 0:
                continue  # the stream is over: its run was resumed without it, or it ended already
            stream = run.streams[stream_id] = Stream(stream_id, source_of(stream_id), scope[:depth])
        stream.open += delta
        if stream.open <= 0:
            run.ending.add(stream_id)


def stream_for(run: Run, sources: frozenset[str], envelope: Envelope) -> Stream | None:
    """The stream an event for a join of ``sources`` waits in: the innermost of its scope opened by one of them;
    None when there is none."""
    scope = envelope.scope
    depth = next((d for d in range(len(scope) - 1, -1, -1) if source_of(scope[d]) in sources), None)
    if depth is None:
        return None
    stream = run.streams.get(scope[depth])
    if stream is None:  # a resumed run's: its work items are queued again after their joins' events
        stream = run.streams[scope[depth]] = Stream(scope[depth], source_of(scope[depth]), scope[:depth])
        run.ending.add(stream.stream_id)
    return stream


def take_join(run: Run, stream: Stream, join: str, take: int | None, envelope: Envelope) -> WorkItem | None:
    """An event for ``join`` waits in ``stream``: the join's work item when this is its ``take``-th event, else
    None (it waits, or the join ran already)."""
    if join in stream.released:
        return None
    buffer = stream.buffers.setdefault(join, [])
    buffer.append(envelope)
    if take is not None and len(buffer) >= take:
        return _release(run, stream, join)
    return None


def finish_streams(run: Run, joins_of: dict[str, list[str]]) -> list[tuple[str, WorkItem]]:
    """The streams whose work is over end, innermost first; the work items of their joins that did not run yet
    (``joins_of``: the joins of each fan-out step), to queue as (join, item). Each counts in the parent stream,
    which therefore stays open until that join's work is over."""
    items: list[tuple[str, WorkItem]] = []
    while run.ending:
        ending = sorted(run.ending, key=lambda s: -len(run.streams[s].parent) if s in run.streams else 0)
        run.ending.clear()
        for stream_id in ending:
            stream = run.streams.get(stream_id)
            if stream is None or stream.open > 0:
                continue
            del run.streams[stream_id]
            for join in joins_of.get(stream.source, ()):
                if join not in stream.released:
                    item = _release(run, stream, join)
                    count(run, item.envelope.scope, +1)
                    items.append((join, item))
    return items


def take_slot(run: Run, step: str, parameters: int, fits: list[int], envelope: Envelope) -> WorkItem | None:
    """An event for a step of several event parameters, which it fits (the indexes ``fits``); the step's work item
    once one event of each parameter waits (the oldest of each), else None. An event that fits several parameters
    (they take the same type) goes to the one with the fewest waiting, the first of those: the events of a type
    fill its parameters in the order they arrive."""
    waiting = run.slots.setdefault(step, [deque() for _ in range(parameters)])
    index = min(fits, key=lambda i: (len(waiting[i]), i))
    waiting[index].append(envelope)
    if not all(waiting):
        return None
    members = tuple(queue.popleft() for queue in waiting)
    digest = hashlib.blake2b(digest_size=12)
    for member in members:
        digest.update(member.event_id or member.type_name.encode())
    invocation = Envelope(
        JOIN_KEYS,
        None,
        event_id=digest.digest(),
        state_version=max(member.state_version for member in members),
        scope=members[0].scope,
    )
    return WorkItem(run.run_id, run.ctx_id, invocation, members=members)


def _release(run: Run, stream: Stream, join: str) -> WorkItem:
    stream.released.add(join)
    members = tuple(stream.buffers.pop(join, ()))
    versions = [member.state_version for member in members]
    invocation = Envelope(
        JOIN_KEYS,
        None,
        event_id=hashlib.blake2b(f"{stream.stream_id}|{join}".encode(), digest_size=12).digest(),
        state_version=-1 if any(v < 0 for v in versions) else max(versions, default=-1),
        scope=stream.parent,
    )
    return WorkItem(run.run_id, run.ctx_id, invocation, members=members)
