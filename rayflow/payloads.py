"""Large payloads by reference: the big buffers of an event travel as refs into Ray's object store.

The codec pickles an event with pickle protocol 5. Out-of-band buffers (numpy arrays, bytearrays, anything that
offers a ``PickleBuffer``) of at least ``RAYFLOW_INLINE_MAX_BYTES`` leave the pickle stream, and so does the stream
itself when it is still larger than that (big ``bytes``, long strings or lists). What is left is a ``Parcel``: the
small stream inline, each large buffer a *source*. Everything below the threshold stays inline, in batches, as before.

Who owns a large buffer (Ray frees an object with its owner, and an object ``ray.put`` by a step actor would die with
it; Ray 2.56 removed ``ray.put(_owner=...)``):

* **the driver** puts what it encodes (the start event, events sent through ``handler.ctx``) at once: it owns them.
* **a step actor holds** what it encodes, in this module's shelf (a private copy for an event sent while the step
  still runs, so a later change of the array is not seen; the buffer itself for the event a step returns), and the
  dispatcher *claims* it before routing the event: it calls the actor's ``hand_over``, whose return values, the
  buffers, are owned by the caller, the dispatcher (``rayflow.runtime.claims``). One copy into the object store,
  none through the dispatcher's process.
* a step actor that passes on an array it read from the store (same memory, same size) passes on the **same ref**:
  no copy, whoever owns it (the driver or the dispatcher).

A step reads a large buffer zero-copy where Ray allows it: a numpy array comes back read-only, backed by the object
store (copy it to change it); other types are rebuilt by copying. An event run on in the actor that returned it (a
loop, a lent slot) reads the held buffer itself, read-only, before any hand-over.

When the owner dies, the buffer is gone: a dispatcher that died fails its runs anyway (``WorkflowActorDiedError``;
a journaled run goes on from its last checkpoint, which holds its events by value); a read of a lost buffer raises
``PayloadLostError``, never waits. Refs are freed as soon as nothing holds their events: at the latest when the run
ends (the unfinished work of a run that did not finish is kept for ``ctx.to_dict()``, see
``RAYFLOW_ENDED_SNAPSHOTS``).
"""

from __future__ import annotations

import asyncio
import itertools
import pickle
import threading
import uuid
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import ObjectLostError, RayActorError

from rayflow.errors import PayloadLostError

__all__ = ["Parcel", "Shelf", "shelf"]


@dataclass(frozen=True, slots=True)
class Parcel:
    """An event whose large buffers travel by reference: the envelope's payload in place of pickled bytes.

    ``sources``: one per large buffer, in the pickle stream's order: an ``ObjectRef``, or, until the dispatcher
    claimed it, the number under which the step actor ``holder`` (its process ``token``) holds it. ``body``: the
    tagged pickle stream; empty when the stream is itself the last source (``stream_by_ref``).
    """

    body: bytes
    sources: tuple[Any, ...]
    nbytes: int
    stream_by_ref: bool = False
    holder: Any = None
    token: str = ""

    @property
    def held(self) -> tuple[int, ...]:
        """The numbers of the sources its holder still holds (none once claimed)."""
        return tuple(s for s in self.sources if isinstance(s, int)) if self.holder is not None else ()

    def claimed(self, refs: dict[int, Any]) -> Parcel:
        """This parcel with its held sources replaced by the refs the dispatcher got for them."""
        sources = tuple(refs[s] if isinstance(s, int) else s for s in self.sources)
        return Parcel(self.body, sources, self.nbytes, self.stream_by_ref)


class Shelf:
    """One process's side of large payloads: where it ships large buffers (put now, or held for a hand-over), the
    buffers it holds, and the store-backed buffers it read (to pass them on by the same ref)."""

    def __init__(self) -> None:
        self.token = uuid.uuid4().hex
        self._holder: Any = None
        self._held: dict[int, memoryview] = {}
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()  # sync steps encode in threads
        #: Address of a store-backed buffer this process read -> (a weak ref to it, its size, its object ref).
        self._read: dict[int, tuple[weakref.ref[Any], int, Any]] = {}

    def hold_here(self, holder: Any) -> None:
        """Hold large buffers here (a step actor, whose handle is ``holder``) until the dispatcher claims them."""
        self._holder = holder

    @property
    def holding(self) -> int:
        """How many buffers this process holds, unclaimed."""
        return len(self._held)

    def pack(self, stream: bytes, buffers: list[pickle.PickleBuffer], *, copy: bool, limit: int) -> bytes | Parcel:
        """The payload of an event pickled to ``stream`` with out-of-band ``buffers`` (each at least ``limit``
        bytes): ``stream`` itself when nothing is large, else a ``Parcel``. ``copy``: hold a private copy of a
        buffer that is not store-backed (the event is sent while the step may still change it)."""
        if not buffers and len(stream) <= limit:
            return stream
        raws = [b.raw() for b in buffers]
        stream_by_ref = len(stream) > limit
        if stream_by_ref:
            raws.append(memoryview(stream))
        nbytes = sum(raw.nbytes for raw in raws)
        body = b"" if stream_by_ref else stream
        if self._holder is None:
            refs = tuple(ray.put(pickle.PickleBuffer(raw)) for raw in raws)
            return Parcel(body, refs, nbytes, stream_by_ref)
        sources = tuple(self._source(raw, copy and i < len(buffers)) for i, raw in enumerate(raws))
        if all(not isinstance(s, int) for s in sources):  # all passed on by ref: nothing to claim
            return Parcel(body, sources, nbytes, stream_by_ref)
        return Parcel(body, sources, nbytes, stream_by_ref, self._holder, self.token)

    def _source(self, raw: memoryview, copy: bool) -> Any:
        ref = self._known(raw)
        if ref is not None:
            return ref
        kept = memoryview(bytes(raw)) if copy and not raw.readonly else raw.toreadonly()
        with self._lock:
            number = next(self._numbers)
            self._held[number] = kept
        return number

    def _known(self, raw: memoryview) -> Any:
        """The ref of the store-backed buffer ``raw`` is (same memory, same size), if this process read it."""
        if not raw.readonly or not self._read:
            return None
        entry = self._read.get(_address(raw))
        if entry is None:
            return None
        alive, size, ref = entry
        return ref if alive() is not None and size == raw.nbytes else None

    def unpack(self, parcel: Parcel) -> tuple[Any, list[Any]]:
        """The pickle stream and the out-of-band buffers of ``parcel``; ``PayloadLostError`` if one is gone."""
        buffers, refs = self._start_unpack(parcel)
        if refs:
            try:
                values = ray.get([ref for _, ref in refs])
            except (ObjectLostError, RayActorError) as err:
                raise _lost(parcel, err) from err
            self._fill(buffers, refs, values)
        return self._finish_unpack(parcel, buffers)

    async def unpack_async(self, parcel: Parcel) -> tuple[Any, list[Any]]:
        """``unpack`` without blocking the event loop while the buffers come (from another node)."""
        buffers, refs = self._start_unpack(parcel)
        if refs:
            try:
                values = await asyncio.gather(*(ref for _, ref in refs))
            except (ObjectLostError, RayActorError) as err:
                raise _lost(parcel, err) from err
            self._fill(buffers, refs, values)
        return self._finish_unpack(parcel, buffers)

    def _start_unpack(self, parcel: Parcel) -> tuple[list[Any], list[tuple[int, Any]]]:
        """The buffers held here filled in; the (position, ref) of those to read from the store."""
        if parcel.holder is not None and parcel.token != self.token:
            raise PayloadLostError("An event's large payload was never handed over by the step actor holding it")
        buffers: list[Any] = [None] * len(parcel.sources)
        refs = []
        for i, source in enumerate(parcel.sources):
            if not isinstance(source, int):
                refs.append((i, source))
                continue
            held = self._held.get(source)
            if held is None:
                raise PayloadLostError(f"An event's large payload ({parcel.nbytes:,} bytes) is no longer held here")
            buffers[i] = held
        return buffers, refs

    def _fill(self, buffers: list[Any], refs: list[tuple[int, Any]], values: list[Any]) -> None:
        for (i, ref), value in zip(refs, values, strict=True):
            buffers[i] = self._remember(value, ref)

    @staticmethod
    def _finish_unpack(parcel: Parcel, buffers: list[Any]) -> tuple[Any, list[Any]]:
        stream = buffers.pop() if parcel.stream_by_ref else parcel.body
        return stream, buffers

    def _remember(self, value: Any, ref: Any) -> Any:
        """``value`` (a store-backed buffer) as a numpy byte array; remembered, in a step actor, by its address."""
        import numpy as np

        array = np.frombuffer(value, dtype=np.uint8)
        if self._holder is not None and array.nbytes:
            address: int = array.ctypes.data
            self._read[address] = (weakref.ref(array, lambda _: self._forget(address)), array.nbytes, ref)
        return array

    def _forget(self, address: int) -> None:
        entry = self._read.get(address)
        if entry is not None and entry[0]() is None:
            del self._read[address]

    def hand_over(self, numbers: Iterable[int]) -> tuple[Any, ...]:
        """Give up the buffers held under ``numbers``: ``("ok", buffer, ...)``, the return values of the dispatcher's
        call (which then owns them). ``KeyError`` for a number not held."""
        with self._lock:
            views = [self._held.pop(n) for n in numbers]
        return ("ok", *(pickle.PickleBuffer(view) for view in views))

    def release(self, numbers: Iterable[int]) -> None:
        """Drop held buffers no event refers to any more (an event run on in this actor, never handed over)."""
        with self._lock:
            for number in numbers:
                self._held.pop(number, None)


def _lost(parcel: Parcel, err: Exception) -> PayloadLostError:
    return PayloadLostError(
        f"An event's large payload ({parcel.nbytes:,} bytes) is gone from Ray's object store: the actor that owned "
        f"it (the workflow's dispatcher, or the driver) died ({type(err).__name__})"
    )


def _address(raw: memoryview) -> int:
    import numpy as np

    address: int = np.frombuffer(raw, dtype=np.uint8).ctypes.data
    return address


#: The shelf of this process (each Ray actor is a process of its own).
shelf = Shelf()
