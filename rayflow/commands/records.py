"""Events, results and errors as the commands print or store them: JSON where the value allows, its repr where not.

A value that JSON cannot hold (a set, a numpy array, a pydantic model, an arbitrary object) is converted where the
conversion is plain (set -> list, array -> nested lists, model -> its fields) and written as its ``repr`` string
otherwise, so a result never stops a command from printing or recording it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel

from rayflow.events import Event, StopEvent

__all__ = ["dumps", "error_text", "event_fields", "event_line", "jsonable"]


def _fallback(value: Any) -> Any:
    """What ``json.dumps`` writes for a value it cannot hold itself."""
    if isinstance(value, Event):
        return event_fields(value)
    if isinstance(value, BaseModel):
        try:
            return value.model_dump(mode="json")
        except Exception:
            return repr(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, PurePath):
        return str(value)
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if callable(tolist):
        try:
            return tolist()
        except Exception:
            return repr(value)
    return repr(value)


def _finite(value: Any) -> Any:
    """NaN and infinities as strings: standard JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """``value`` as one line of JSON, never raising: what JSON cannot hold is converted or written as its repr."""
    try:
        return json.dumps(value, default=_fallback, ensure_ascii=False, allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        try:
            return json.dumps(_finite(json.loads(json.dumps(value, default=_fallback))), ensure_ascii=False)
        except (ValueError, TypeError, RecursionError):
            return json.dumps(repr(value), ensure_ascii=False)


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (what :func:`dumps` would write, read back)."""
    return json.loads(dumps(value))


def event_fields(event: Event) -> dict[str, Any]:
    """An event's declared fields, then the keyword arguments it keeps undeclared, then a StopEvent's result."""
    fields = {name: getattr(event, name) for name in type(event).model_fields}
    fields.update(event.items())
    if isinstance(event, StopEvent) and event.result is not None:
        fields["result"] = event.result
    return fields


def event_line(event: Event) -> str:
    """One line for a person: the event type, then ``field=value`` with each value as JSON."""
    parts = [type(event).__name__, *(f"{name}={dumps(value)}" for name, value in event_fields(event).items())]
    return " ".join(parts)


def error_text(err: BaseException) -> str:
    """An error on one line: its type and message."""
    message = " ".join(str(err).split())
    return f"{type(err).__name__}: {message}" if message else type(err).__name__
