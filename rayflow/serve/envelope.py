"""Events as JSON on the wire: the envelope the server sends, and the events clients post in.

The envelope is the shape LlamaIndex's workflow server uses, so its clients read ours unchanged::

    {"value": {...the event's fields...}, "qualified_name": "module.Class", "type": "Class", "types": [...]}

``types`` names the event's ancestors up to (not including) ``Event``, nearest first, or is null. rayflow's own
event classes mirror ``workflows.events`` name for name, so their ``qualified_name`` is given as LlamaIndex's
(``workflows.events.StopEvent``): a LlamaIndex client resolves them to its own classes. A value JSON cannot carry
(an exception, an arbitrary object) is sent as a description, never as a failed response.

Clients post events as an envelope (``{"type": "Class", "value": {...}}``, or ``qualified_name`` instead of
``type``; ``data`` is read as ``value``), as a JSON string of one, or, where the event type is known (a run's start
event), as the bare fields. Only the event types of the workflow (and the human-in-the-loop ones) are accepted:
nothing is imported by name.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from rayflow.events import Event, HumanResponseEvent, InputRequiredEvent, StartEvent, StopEvent

__all__ = ["EventDecodeError", "envelope_of", "event_registry", "is_terminal", "parse_event", "qualified_name"]

_MIRRORED_MODULE = "rayflow.events"
_LLAMAINDEX_MODULE = "workflows.events"
#: Event types every served workflow accepts from clients besides its own.
_ALWAYS_ACCEPTED: tuple[type[Event], ...] = (StartEvent, StopEvent, InputRequiredEvent, HumanResponseEvent)


class EventDecodeError(ValueError):
    """What a client sent is not an event this workflow accepts; the message says why (type, field)."""


def qualified_name(cls: type[Event]) -> str:
    """``module.Class`` of an event type, LlamaIndex's module for rayflow's built-in events."""
    module = _LLAMAINDEX_MODULE if cls.__module__ == _MIRRORED_MODULE else cls.__module__
    return f"{module}.{cls.__qualname__}"


def _ancestors(cls: type[Event]) -> list[str] | None:
    names: list[str] = []
    for base in cls.__mro__[1:]:
        if base is Event or not (isinstance(base, type) and issubclass(base, Event)):
            break
        names.append(base.__name__)
    return names or None


def _describe(value: Any) -> Any:
    """A JSON stand-in for a value pydantic cannot put in JSON."""
    if isinstance(value, BaseException):
        kind = type(value)
        return {"exception_type": f"{kind.__module__}.{kind.__qualname__}", "exception_message": str(value)}
    return repr(value)


def envelope_of(event: Event, include_qualified_name: bool = True) -> dict[str, Any]:
    """The JSON envelope of ``event``."""
    cls = type(event)
    return {
        "value": event.model_dump(mode="json", fallback=_describe),
        "qualified_name": qualified_name(cls) if include_qualified_name else None,
        "type": cls.__name__,
        "types": _ancestors(cls),
    }


def is_terminal(envelope: dict[str, Any]) -> bool:
    """Whether the envelope holds a StopEvent (or a subclass: failed, cancelled, timed out), the last of a run."""
    return envelope["type"] == StopEvent.__name__ or StopEvent.__name__ in (envelope["types"] or [])


def event_registry(events: Iterable[type[Event]]) -> dict[str, type[Event]]:
    """Event types by class name: the workflow's own, then the built-in ones it may be sent."""
    registry = {cls.__name__: cls for cls in _ALWAYS_ACCEPTED}
    registry.update((cls.__name__, cls) for cls in events)
    return registry


def _field_errors(err: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in problem['loc']) or '(event)'}: {problem['msg']}" for problem in err.errors()
    )


def _resolve(envelope: dict[str, Any], registry: dict[str, type[Event]]) -> type[Event]:
    kind = envelope.get("type")
    if kind is not None:
        if not isinstance(kind, str) or kind not in registry:
            raise EventDecodeError(f"Invalid event type: {kind}. Expected one of {', '.join(registry)}")
        return registry[kind]
    name = envelope.get("qualified_name")
    if name is None:
        raise EventDecodeError("Invalid event: an envelope needs a 'type' (or a 'qualified_name') beside its 'value'")
    for cls in registry.values():
        if name in (qualified_name(cls), f"{cls.__module__}.{cls.__qualname__}"):
            return cls
    raise EventDecodeError(f"Event type {name} is not declared by this workflow")


def parse_event(data: Any, registry: dict[str, type[Event]], bare: type[Event] | None = None) -> Event:
    """The event that ``data`` (an envelope, its JSON text, or with ``bare`` the event's own fields) describes.

    ``EventDecodeError`` names what is wrong: not JSON, not an object, an unknown type, a field that fails validation.
    """
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as err:
            raise EventDecodeError(f"Invalid event: not a JSON object ({err.msg})") from err
    if not isinstance(data, dict):
        raise EventDecodeError(f"Invalid event: expected a JSON object, got {type(data).__name__}")
    if "value" not in data and "data" in data:
        data = {**data, "value": data["data"]}
    if "value" in data:
        cls, value = _resolve(data, registry), data["value"]
    elif bare is not None:
        cls, value = bare, data
    else:
        raise EventDecodeError("Invalid event: expected an envelope with 'type' and 'value'")
    if value is None:
        value = {}
    try:
        return cls.model_validate(value)
    except ValidationError as err:
        raise EventDecodeError(f"Invalid {cls.__name__}: {_field_errors(err)}") from err
