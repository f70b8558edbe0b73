"""Serializers for context snapshots: JSON by default (no class is imported unless allowed), pickle on request."""

from __future__ import annotations

import base64
import pickle
from typing import Any

from pydantic import BaseModel

from rayflow.errors import ContextSerdeError

__all__ = ["BaseSerializer", "JsonSerializer", "PickleSerializer"]


def qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class BaseSerializer:
    """Turns state values into JSON-compatible data and back."""

    def serialize_value(self, value: Any) -> Any:
        raise NotImplementedError

    def deserialize_value(self, data: Any, allowed: dict[str, type] | None = None) -> Any:
        raise NotImplementedError


class JsonSerializer(BaseSerializer):
    """JSON data; a pydantic model is rebuilt only when its class is among ``allowed`` (the workflow's own)."""

    def serialize_value(self, value: Any) -> Any:
        if isinstance(value, BaseModel):
            data = value.model_dump(mode="json")
            return {"__model__": qualified_name(type(value)), "value": data}
        if isinstance(value, dict):
            return {str(k): self.serialize_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.serialize_value(v) for v in value]
        if value is None or isinstance(value, str | int | float | bool):
            return value
        raise ContextSerdeError(
            f"Cannot serialize a {type(value).__name__} to JSON; use PickleSerializer for such state"
        )

    def deserialize_value(self, data: Any, allowed: dict[str, type] | None = None) -> Any:
        if isinstance(data, dict) and "__model__" in data:
            name = data["__model__"]
            cls = (allowed or {}).get(name)
            if cls is None:
                raise ContextSerdeError(
                    f"Snapshot holds a {name!r}, which is not a type of this workflow; "
                    "refusing to import it (pass it in allowed types, or use PickleSerializer for trusted data)"
                )
            value = data["value"]
            extra = value.pop("_data", None) if isinstance(value, dict) else None
            model: Any = cls
            return model.model_validate(value) if not extra else model(**value, **extra)
        if isinstance(data, dict):
            return {k: self.deserialize_value(v, allowed) for k, v in data.items()}
        if isinstance(data, list):
            return [self.deserialize_value(v, allowed) for v in data]
        return data


class PickleSerializer(BaseSerializer):
    """Pickled values, base64-encoded: any object, for snapshots you trust (unpickling runs code)."""

    def serialize_value(self, value: Any) -> Any:
        return {"__pickle__": base64.b64encode(pickle.dumps(value)).decode()}

    def deserialize_value(self, data: Any, allowed: dict[str, type] | None = None) -> Any:
        if isinstance(data, dict) and "__pickle__" in data:
            return pickle.loads(base64.b64decode(data["__pickle__"]))
        return JsonSerializer().deserialize_value(data, allowed)
