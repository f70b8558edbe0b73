"""The event codec: an event becomes an ``Envelope`` (type keys, kind, pickled payload) and back.

Each event is pickled once, by the process that emits it, and unpickled once by each step that receives
it; the dispatcher in between routes on the type keys and never opens the payload. Event classes of the
workflow (what its steps accept and return) are pickled by name through a registry shared by every
actor of the workflow, so a class defined in a script's ``__main__`` costs nothing per event; any other
object that plain pickle cannot address by name travels by value through cloudpickle.

Large payloads do not ride inline: events are pickled with protocol 5, and out-of-band buffers of at least
``RAYFLOW_INLINE_MAX_BYTES`` (numpy arrays, bytearrays), or the whole pickle stream when it is larger than that, go
into Ray's object store, owned by the driver or the dispatcher, never by a step actor; the envelope's payload is
then a ``rayflow.payloads.Parcel`` holding the small rest inline. A step reads a large numpy array zero-copy and
read-only. Who owns what, when it is freed and what a dead owner means: ``rayflow.payloads``. Errors and retry
bookkeeping (``dumps``) always stay inline.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping
from typing import Any

from ray import cloudpickle

from rayflow.config import settings
from rayflow.core.envelope import Envelope, Kind
from rayflow.errors import EventSerializationError
from rayflow.events import Event, InputRequiredEvent, StopEvent
from rayflow.payloads import Parcel, shelf

__all__ = ["EventCodec", "qualified_name"]

_PLAIN = b"P"
_CLOUD = b"C"


def qualified_name(cls: type) -> str:
    """The name a class is known by, in routing and in snapshots: ``module.QualName``."""
    return f"{cls.__module__}.{cls.__qualname__}"


class _NeedsCloudpickle(Exception):
    pass


class EventCodec:
    """Encodes and decodes events for one workflow, with that workflow's event classes registered."""

    def __init__(self, keys: Mapping[type, str]) -> None:
        """``keys`` names each of the workflow's event classes, as the driver named them.

        The names travel with the workflow instead of being recomputed in each actor: a class rebuilt by
        value in another process may not keep its ``__qualname__`` (a class defined in a function).
        """
        self._by_class: dict[type, str] = dict(keys)
        self._by_key: dict[str, type] = {key: cls for cls, key in keys.items()}
        self._keys_cache: dict[type, tuple[str, ...]] = {}

    def key_of(self, cls: type) -> str:
        return self._by_class.get(cls) or qualified_name(cls)

    def keys_of(self, cls: type) -> tuple[str, ...]:
        """The class's key, then the keys of its event bases (for ``accept_event_subclasses``)."""
        keys = self._keys_cache.get(cls)
        if keys is None:
            bases = (c for c in cls.__mro__ if isinstance(c, type) and issubclass(c, Event))
            keys = self._keys_cache[cls] = tuple(self.key_of(c) for c in bases)
        return keys

    def encode(
        self,
        event: Event,
        *,
        kind: Kind | None = None,
        target: str | None = None,
        step: str | None = None,
        event_id: bytes = b"",
        state_version: int = -1,
        copy: bool = True,
        scope: tuple[str, ...] = (),
    ) -> Envelope:
        """Pickle ``event`` into an envelope (named ``event_id``, carrying ``state_version``); an event that cannot
        pickle fails naming ``step`` and its type. Its large buffers travel by reference (``rayflow.payloads``);
        ``copy=False`` lets a step actor hold a returned event's buffers without a private copy (the step is done
        with them)."""
        cls = type(event)
        if kind is None:
            kind = (
                Kind.STOP
                if isinstance(event, StopEvent)
                else Kind.INPUT_REQUIRED
                if isinstance(event, InputRequiredEvent)
                else Kind.EVENT
            )
        limit = settings().inline_max_bytes
        large: list[pickle.PickleBuffer] = []

        def out_of_band(buffer: pickle.PickleBuffer) -> bool:
            """Keep a small buffer in the stream (True); set a large one aside."""
            if buffer.raw().nbytes < limit:
                return True
            large.append(buffer)
            return False

        stream = self._pickle(event, step, out_of_band, large.clear)
        payload = shelf.pack(stream, large, copy=copy, limit=limit)
        return Envelope(self.keys_of(cls), payload, kind, target, event_id, state_version, scope)

    def dumps(self, obj: Any, *, step: str | None = None) -> bytes:
        """``obj`` pickled, all inline (errors, retry bookkeeping)."""
        return self._pickle(obj, step, None, lambda: None)

    def _pickle(self, obj: Any, step: str | None, buffer_callback: Any, restart: Any) -> bytes:
        buffer = io.BytesIO()
        buffer.write(_PLAIN)
        pickler = pickle.Pickler(buffer, protocol=5, buffer_callback=buffer_callback)
        pickler.persistent_id = self._persistent_id  # type: ignore[method-assign]
        try:
            pickler.dump(obj)
            return buffer.getvalue()
        except (_NeedsCloudpickle, pickle.PicklingError, AttributeError, TypeError):
            restart()  # buffers set aside by the failed attempt
        try:
            return _CLOUD + cloudpickle.dumps(obj, protocol=5, buffer_callback=buffer_callback)
        except Exception as err:
            where = f"step {step!r}" if step else "the caller"
            raise EventSerializationError(
                f"Event {type(obj).__name__} emitted by {where} cannot be pickled to travel between "
                f"Ray processes: {err}"
            ) from err

    def loads(self, payload: bytes | Parcel) -> Any:
        """The object in ``payload``; a large payload's buffers are read from Ray's object store (``PayloadLostError``
        if they are gone)."""
        if isinstance(payload, Parcel):
            return self._unpickle(*shelf.unpack(payload))
        return self._unpickle(payload, None)

    async def loads_async(self, payload: bytes | Parcel) -> Any:
        """``loads`` that awaits a large payload's buffers instead of blocking the event loop."""
        if isinstance(payload, Parcel):
            return self._unpickle(*await shelf.unpack_async(payload))
        return self._unpickle(payload, None)

    def _unpickle(self, stream: Any, buffers: list[Any] | None) -> Any:
        view = memoryview(stream)
        tag, body = bytes(view[:1]), view[1:]
        if tag == _CLOUD:
            return cloudpickle.loads(body, buffers=buffers)
        unpickler = pickle.Unpickler(io.BytesIO(body), buffers=buffers)
        unpickler.persistent_load = self._persistent_load  # type: ignore[method-assign]
        return unpickler.load()

    def _persistent_id(self, obj: Any) -> str | None:
        if isinstance(obj, type):
            key = self._by_class.get(obj)
            if key is not None:
                return key
            if obj.__module__ == "__main__" or "<locals>" in obj.__qualname__:
                raise _NeedsCloudpickle
        return None

    def _persistent_load(self, key: str) -> type:
        return self._by_key[key]
