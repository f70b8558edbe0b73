"""Serializers for context snapshots: JSON by default, rebuilding only classes it was told about.

The format is LlamaIndex's (``{"__is_pydantic": true, "value": ..., "qualified_name": ...}``). Unlike
LlamaIndex's default, a name that was not allowed is never imported: loading a snapshot from untrusted data
cannot run code. ``Context.from_dict`` allows the workflow's own event and state types; more can be
passed as classes (``allowed_types=[MyModel]``), or as import names, for data you trust.
"""

from __future__ import annotations

import base64
import importlib
import json
import pickle
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from ray import cloudpickle

from rayflow.codec import qualified_name
from rayflow.errors import ContextSerdeError
from rayflow.events import BUILTIN_EVENTS, DUMP_EXTRA, DictLikeModel

__all__ = ["BaseSerializer", "JsonPickleSerializer", "JsonSerializer", "PickleSerializer"]


class BaseSerializer:
    """Turns state values into JSON text and back."""

    def serialize_value(self, value: Any) -> Any:
        raise NotImplementedError

    def deserialize_value(self, data: Any) -> Any:
        raise NotImplementedError

    def serialize(self, value: Any) -> str:
        """``value`` as a JSON string (``ValueError`` if it cannot be)."""
        try:
            return json.dumps(self.serialize_value(value))
        except (TypeError, ValueError, ContextSerdeError) as err:
            raise ValueError(f"Failed to serialize value: {type(value)}: {value!s}") from err

    def deserialize(self, value: str) -> Any:
        return self.deserialize_value(json.loads(value))

    def with_types(self, *classes: type[Any]) -> BaseSerializer:
        """A serializer that also rebuilds ``classes``."""
        return self


class JsonSerializer(BaseSerializer):
    """JSON; pydantic models are rebuilt only for rayflow's own events and the classes in ``allowed_types`` (or
    import names listed there)."""

    def __init__(self, *, allowed_types: Iterable[type[Any] | str] = ()) -> None:
        self._types: dict[str, type[Any]] = {}
        self._names: set[str] = set()
        for entry in (*BUILTIN_EVENTS, *allowed_types):
            if isinstance(entry, str):
                self._names.add(entry)
            else:
                self._types[qualified_name(entry)] = entry
                self._types[f"{entry.__module__}.{entry.__name__}"] = entry

    def with_types(self, *classes: type[Any]) -> JsonSerializer:
        return type(self)(allowed_types=[*self._types.values(), *self._names, *classes])

    def resolve_class(self, name: str) -> type[Any]:
        """The class a snapshot names: a registered one, or an import of a name explicitly allowed."""
        cls = self._types.get(name)
        if cls is not None:
            return cls
        if name not in self._names:
            raise ContextSerdeError(
                f"Snapshot holds a {name!r}, which is not among the allowed types; refusing to import it. "
                f"Pass JsonSerializer(allowed_types=[...]) with that class (or its name, for trusted data)."
            )
        module, _, attr = name.rpartition(".")
        found = getattr(importlib.import_module(module), attr)
        if not isinstance(found, type):
            raise ContextSerdeError(f"{name!r} is not a class")
        return found

    def serialize_value(self, value: Any) -> Any:
        if isinstance(value, BaseModel):
            dumped = value.model_dump(mode="json", context={DUMP_EXTRA: False})
            if isinstance(value, DictLikeModel) and len(value):  # undeclared fields (the dict state's keys) one by one,
                dumped["_data"] = {k: self._entry(k, v) for k, v in value.items()}  # so models in them stay models
            return {"__is_pydantic": True, "value": dumped, "qualified_name": qualified_name(type(value))}
        if isinstance(value, dict):
            return {str(k): self.serialize_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.serialize_value(v) for v in value]
        if value is None or isinstance(value, str | int | float | bool):
            return value
        raise ContextSerdeError(f"Cannot serialize a {type(value).__name__} to JSON; use PickleSerializer")

    def deserialize_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            if data.get("__is_pydantic") and data.get("qualified_name"):
                model: Any = self.resolve_class(data["qualified_name"])
                value = dict(data["value"])
                extra = value.pop("_data", None)
                if not extra:
                    return model.model_validate(value)
                return model(**value, **{k: self._entry_back(k, v) for k, v in extra.items()})
            if data.get("__is_pickle"):
                raise ValueError(
                    "Failed to deserialize a value written by PickleSerializer: load the snapshot with "
                    "PickleSerializer() (only for data you trust: unpickling runs code)"
                )
            return {k: self.deserialize_value(v) for k, v in data.items()}
        if isinstance(data, list):
            return [self.deserialize_value(v) for v in data]
        return data

    def _entry(self, key: str, value: Any) -> Any:
        try:
            return self.serialize_value(value)
        except (ValueError, TypeError, ContextSerdeError) as err:
            raise ValueError(f"Failed to serialize state value for key {key}: {err}") from err

    def _entry_back(self, key: str, data: Any) -> Any:
        try:
            return self.deserialize_value(data)
        except (ValueError, TypeError, ContextSerdeError) as err:
            raise ValueError(f"Failed to deserialize state value for key {key}: {err}") from err


class PickleSerializer(JsonSerializer):
    """JSON where it can, pickle (base64) for anything else: only for snapshots you trust (unpickling runs code)."""

    def serialize_value(self, value: Any) -> Any:
        try:
            return json.loads(json.dumps(super().serialize_value(value)))
        except Exception:  # anything JSON cannot hold (a function, a model field of any type) is pickled
            return {"__is_pickle": True, "value": base64.b64encode(cloudpickle.dumps(value)).decode()}

    def deserialize_value(self, data: Any) -> Any:
        if isinstance(data, dict) and data.get("__is_pickle"):
            return pickle.loads(base64.b64decode(data["value"]))  # opt-in: trusted data only
        return super().deserialize_value(data)


#: LlamaIndex's other name for ``PickleSerializer``.
JsonPickleSerializer = PickleSerializer
