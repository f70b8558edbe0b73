"""``ctx.store`` inside a step actor: reads served from a copy of the state kept in the actor, when it is current.

The guarantee: a read in a step sees every write that happened before the event the step handles (a write, then an
event emitted, then a read by the step that receives it, in whatever actor), and whatever the step itself wrote
before the read. Reads may see writes made since, by steps running at the same time, or may not. ``edit_state``
stays atomic across actors: it takes the context actor's lock and edits the state the lock holder gets from there.

The protocol: versions carried by events.

- The context actor numbers each context's writes: every write returns the state's new version
  (``rayflow.runtime.context_actor``).
- Each step invocation keeps ``Known``: the newest version it has seen or made. It starts at the version its event
  carries (and those of the events ``collect_events`` gave it, and of the events that answered its
  ``wait_for_event``), and rises with each version it reads or writes. Every event it emits (sent, streamed or
  returned) carries ``Known`` as it is then: a lower bound for its receiver's reads.
- A step actor keeps one copy of each context's state it has read (``StateReplicas``, at most
  ``RAYFLOW_STATE_REPLICAS`` of them, the least recently used dropped), tagged with its version and when the
  context actor last confirmed it. A read is served from the copy if the copy's version is at least ``Known`` and
  it was confirmed less than ``RAYFLOW_STATE_MAX_AGE_S`` (0.1 s) ago; else the actor asks the context actor (one
  round trip; the state is sent only if it changed) and keeps the answer. Concurrent reads that need a newer copy
  share one request. The age bound is what lets a step see writes made meanwhile by steps running at the same time
  (a step polling the store for a condition another step sets sees it within that time).
- A write of the step's own goes to the context actor; the copy follows it in place when it was exactly one
  version behind (nothing else was written in between), and otherwise is left to be asked for again.
- A state whose pickle is larger than ``RAYFLOW_STATE_COPY_MAX_BYTES`` (1 MiB) is not copied: the context actor
  answers with its size (``Oversized``), and reads of it go to the context actor path by path, as round trips.
- Events from the caller carry the newest version the caller's face has seen: its seed, its writes, and the
  versions on the stream it read (``rayflow.runtime.session``). An event with no version (-1: from a snapshot, or
  an event with no known cause) makes its step's first read ask the context actor.

Happened-before is carried by events, so the guarantee holds across step actors and the caller without asking the
context actor when nothing changed. A copy is a cache: dropping it costs one round trip, never a stale read.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from rayflow.context.state_store import write_path
from rayflow.core.paths import PathNotFound, get_path
from rayflow.runtime.context_actor import ContextActor, Oversized

__all__ = ["UNKNOWN", "Known", "ReplicaReads", "StateReplicas", "newest"]

#: No version known: the first read asks the context actor.
UNKNOWN = -1


def newest(versions: Iterable[int]) -> int:
    """The version the reads of a step handling events of ``versions`` must see: the newest of them, or ``UNKNOWN``
    if any is unknown (its cause's writes may be newer than all the others)."""
    found = list(versions)
    return UNKNOWN if UNKNOWN in found else max(found, default=UNKNOWN)


class Known:
    """The newest state version one step invocation has seen or made: what the events it emits carry."""

    def __init__(self, version: int = UNKNOWN) -> None:
        self.version = version

    def see(self, version: int) -> None:
        if version > self.version:
            self.version = version

    def doubt(self) -> None:
        """Something this invocation handles has an unknown version: its next read asks the context actor."""
        self.version = UNKNOWN


@dataclass
class _Copy:
    version: int
    state: Any
    #: When (the replicas' clock) the context actor was asked for this version: it was current then.
    checked: float


class StateReplicas:
    """The copies of context states one step actor keeps, by context id."""

    def __init__(
        self,
        context: ContextActor,
        limit: int,
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._context = context
        self._limit = max(limit, 1)
        self._max_age_s = max_age_s
        self._clock = clock
        self._copies: OrderedDict[str, _Copy] = OrderedDict()
        self._asking: dict[str, asyncio.Task[_Copy]] = {}

    def _serves(self, held: _Copy | None, known: Known) -> bool:
        return (
            held is not None
            and known.version != UNKNOWN
            and held.version >= known.version
            and self._clock() - held.checked < self._max_age_s
        )

    def forget(self, ctx_id: str) -> None:
        self._copies.pop(ctx_id, None)

    async def current(self, ctx_id: str, known: Known) -> _Copy:
        """A copy of the state at ``known``'s version or newer; ``known`` rises to the copy's version."""
        held = self._copies.get(ctx_id)
        if held is not None and self._serves(held, known):
            self._copies.move_to_end(ctx_id)
            known.see(held.version)
            return held
        asking = self._asking.get(ctx_id)
        if asking is not None and known.version != UNKNOWN:
            # A request already on its way may have been answered before the write this read must see: share it,
            # and ask again only if its answer is too old.
            held = await asyncio.shield(asking)
            if self._serves(held, known):
                known.see(held.version)
                return held
        held = await self._ask(ctx_id)
        known.see(held.version)
        return held

    async def _ask(self, ctx_id: str) -> _Copy:
        """Ask the context actor for the state (sent only if it changed since the copy held here)."""
        task = asyncio.get_running_loop().create_task(self._fetch(ctx_id))
        self._asking[ctx_id] = task
        try:
            return await asyncio.shield(task)
        finally:
            if self._asking.get(ctx_id) is task:
                del self._asking[ctx_id]

    async def _fetch(self, ctx_id: str) -> _Copy:
        held = self._copies.get(ctx_id)
        asked = self._clock()
        have = UNKNOWN if held is None else held.version
        version, state = await self._context.read(ctx_id, have)
        if state is None and held is not None and held.version == have:
            held.checked = max(held.checked, asked)  # unchanged since the copy was taken
            return held
        return self._keep(ctx_id, _Copy(version, state, asked))

    def _keep(self, ctx_id: str, fresh: _Copy) -> _Copy:
        held = self._copies.get(ctx_id)
        if held is not None and held.version > fresh.version:
            return held  # a newer copy arrived meanwhile
        self._copies[ctx_id] = fresh
        self._copies.move_to_end(ctx_id)
        while len(self._copies) > self._limit:
            self._copies.popitem(last=False)
        return fresh

    def wrote(self, ctx_id: str, version: int, path: str, value: Any) -> None:
        """The actor wrote ``value`` at ``path``, making ``version``: follow it if the copy was one version behind."""
        held = self._copies.get(ctx_id)
        if held is not None and held.version == version - 1 and not isinstance(held.state, Oversized):
            held.state = write_path(held.state, path, copy.deepcopy(value))
            held.version = version

    def replaced(self, ctx_id: str, version: int, state: Any, asked: float) -> None:
        """The actor wrote the whole state (``set_state``, an edit's end, sent at ``asked``), making ``version``: kept
        in place of a copy held (a state of unknown size, or known to be too large, is not copied)."""
        held = self._copies.get(ctx_id)
        if held is not None and not isinstance(held.state, Oversized):
            self._keep(ctx_id, _Copy(version, copy.deepcopy(state), asked))

    def now(self) -> float:
        return self._clock()


class ReplicaReads:
    """The backend of a step invocation's ``ctx.store``: reads from the actor's copies, writes to the context actor.

    It has the context actor client's interface (every method names the context), as ``StateStore`` expects.
    """

    def __init__(self, replicas: StateReplicas, context: ContextActor, known: Known) -> None:
        self._replicas = replicas
        self._context = context
        self._known = known

    async def get(self, ctx_id: str, path: str) -> tuple[bool, Any]:
        held = await self._replicas.current(ctx_id, self._known)
        if isinstance(held.state, Oversized):  # too large to copy here: the context actor reads the path
            found, value, version = await self._context.get_versioned(ctx_id, path)
            self._known.see(version)
            return found, value
        try:
            return True, copy.deepcopy(get_path(held.state, path))
        except PathNotFound:
            return False, None

    async def get_state(self, ctx_id: str) -> Any:
        held = await self._replicas.current(ctx_id, self._known)
        if isinstance(held.state, Oversized):
            version, state = await self._context.read(ctx_id, UNKNOWN, whole=True)
            self._known.see(version)
            return state
        return copy.deepcopy(held.state)

    async def set(self, ctx_id: str, path: str, value: Any) -> None:
        version = await self._context.set(ctx_id, path, value)
        self._replicas.wrote(ctx_id, version, path, value)
        self._known.see(version)

    async def set_state(self, ctx_id: str, state: Any) -> None:
        asked = self._replicas.now()
        version = await self._context.set_state(ctx_id, state)
        self._replicas.replaced(ctx_id, version, state, asked)
        self._known.see(version)

    async def clear(self, ctx_id: str) -> None:
        version = await self._context.clear(ctx_id)
        self._replicas.forget(ctx_id)
        self._known.see(version)

    @asynccontextmanager
    async def edit(self, ctx_id: str) -> AsyncIterator[Any]:
        asked = self._replicas.now()

        def saved(before: int, after: int, state: Any) -> None:
            self._known.see(before)
            if after == before + 1:  # the lock kept every other write out: ``state`` is the state at ``after``
                self._replicas.replaced(ctx_id, after, state, asked)
            self._known.see(after)

        async with self._context.edit(ctx_id, saved) as state:
            yield state
