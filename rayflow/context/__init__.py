"""The context of a run: state shared by its steps (``ctx.store``), event collection, and the stream."""

from rayflow.context.context import Context
from rayflow.context.serializers import BaseSerializer, JsonSerializer, PickleSerializer
from rayflow.context.state_store import DictState, StateStore

__all__ = ["BaseSerializer", "Context", "DictState", "JsonSerializer", "PickleSerializer", "StateStore"]
