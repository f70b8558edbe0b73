"""Dotted paths into run state: ``"user.profile.name"`` through dicts, models, lists and dict-like events."""

from __future__ import annotations

from typing import Any


class PathNotFound(KeyError):
    """A segment of the path does not exist."""


def _step_into(obj: Any, segment: str) -> Any:
    if isinstance(obj, list | tuple):
        try:
            return obj[int(segment)]
        except (ValueError, IndexError) as err:
            raise PathNotFound(segment) from err
    if isinstance(obj, dict):
        if segment in obj:
            return obj[segment]
        raise PathNotFound(segment)
    if segment in getattr(type(obj), "model_fields", {}):  # a pydantic model's declared field
        return getattr(obj, segment)
    data = getattr(obj, "_data", None)  # a dict-like event or DictState's undeclared keys
    if isinstance(data, dict) and segment in data:
        return data[segment]
    attrs = getattr(obj, "__dict__", {})
    if segment in attrs:
        return attrs[segment]
    raise PathNotFound(segment)


def get_path(root: Any, path: str) -> Any:
    """The value at ``path`` (``PathNotFound`` naming the first missing segment)."""
    obj = root
    for segment in path.split("."):
        obj = _step_into(obj, segment)
    return obj


def set_path(root: Any, path: str, value: Any) -> None:
    """Set ``path`` to ``value``, creating dicts for missing intermediate segments."""
    *parents, last = path.split(".")
    obj = root
    for segment in parents:
        try:
            obj = _step_into(obj, segment)
        except PathNotFound:
            child: dict[str, Any] = {}
            _assign(obj, segment, child)
            obj = child
    _assign(obj, last, value)


def _assign(obj: Any, segment: str, value: Any) -> None:
    if isinstance(obj, dict):
        obj[segment] = value
    elif isinstance(obj, list):
        obj[int(segment)] = value
    else:
        setattr(obj, segment, value)
