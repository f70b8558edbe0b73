"""The event codec: an event becomes an ``Envelope`` (type keys, kind, pickled payload) and back.

Each event is pickled once, by the process that emits it, and unpickled once by each step that receives
it; the dispatcher in between routes on the type keys and never opens the payload. Event classes of the
workflow (what its steps accept and return) are pickled by name through a registry shared by every
actor of the workflow, so a class defined in a script's ``__main__`` costs nothing per event; any other
object that plain pickle cannot address by name travels by value through cloudpickle.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping
from typing import Any

from ray import cloudpickle

from rayflow.core.envelope import Envelope, Kind
from rayflow.errors import EventSerializationError
from rayflow.events import Event, InputRequiredEvent, StopEvent

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
    ) -> Envelope:
        """Pickle ``event`` into an envelope (named ``event_id``, carrying ``state_version``); an event that cannot
        pickle fails naming ``step`` and its type."""
        cls = type(event)
        if kind is None:
            kind = (
                Kind.STOP
                if isinstance(event, StopEvent)
                else Kind.INPUT_REQUIRED
                if isinstance(event, InputRequiredEvent)
                else Kind.EVENT
            )
        return Envelope(self.keys_of(cls), self.dumps(event, step=step), kind, target, event_id, state_version)

    def dumps(self, obj: Any, *, step: str | None = None) -> bytes:
        buffer = io.BytesIO()
        buffer.write(_PLAIN)
        pickler = pickle.Pickler(buffer, protocol=5)
        pickler.persistent_id = self._persistent_id  # type: ignore[method-assign]
        try:
            pickler.dump(obj)
            return buffer.getvalue()
        except (_NeedsCloudpickle, pickle.PicklingError, AttributeError, TypeError):
            pass
        try:
            return _CLOUD + cloudpickle.dumps(obj, protocol=5)
        except Exception as err:
            where = f"step {step!r}" if step else "the caller"
            raise EventSerializationError(
                f"Event {type(obj).__name__} emitted by {where} cannot be pickled to travel between "
                f"Ray processes: {err}"
            ) from err

    def loads(self, payload: bytes) -> Any:
        tag, body = payload[:1], memoryview(payload)[1:]
        if tag == _CLOUD:
            return cloudpickle.loads(body)
        unpickler = pickle.Unpickler(io.BytesIO(body))
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
