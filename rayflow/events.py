"""Events: the typed messages steps exchange, and the events that end a run.

An event is a pydantic model that also behaves like a dict for fields it does not declare
(``ev.query``, ``ev["query"]``, ``ev.get("query", default)``, ``"query" in ev``). Events cross process
boundaries as copies: whatever a step changes on an event it received is not seen by any other step.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, KeysView, ValuesView
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SerializationInfo, model_serializer

__all__ = [
    "BUILTIN_EVENTS",
    "DUMP_EXTRA",
    "DictLikeModel",
    "Event",
    "HumanResponseEvent",
    "InputRequiredEvent",
    "InternalDispatchEvent",
    "StartEvent",
    "StepFailedEvent",
    "StepState",
    "StepStateChanged",
    "StopEvent",
    "UnhandledEvent",
    "WorkflowCancelledEvent",
    "WorkflowFailedEvent",
    "WorkflowIdleEvent",
    "WorkflowTimedOutEvent",
    "internal_event",
]


#: ``model_dump(context={DUMP_EXTRA: False})`` leaves a dict-like model's undeclared fields out of the dump.
DUMP_EXTRA = "rayflow_dump_extra"


class DictLikeModel(BaseModel):
    """A pydantic model whose undeclared keyword arguments live in a dict reachable by attribute or key."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    _data: dict[str, Any] = PrivateAttr(default_factory=dict)

    def __init__(self, **params: Any) -> None:
        fields: dict[str, Any] = {}
        private: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in params.items():
            if key in type(self).model_fields:
                fields[key] = value
            elif key in self.__private_attributes__:
                private[key] = value
            else:
                extra[key] = value
        super().__init__(**fields)
        for key, value in private.items():
            super().__setattr__(key, value)
        if extra:
            self._data.update(extra)

    def __getattr__(self, name: str) -> Any:
        if name in self.__private_attributes__ or name in type(self).model_fields:
            return super().__getattr__(name)  # type: ignore[misc]
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'") from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.__private_attributes__ or name in type(self).model_fields:
            super().__setattr__(name, value)
        else:
            self._data[name] = value

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def keys(self) -> KeysView[str]:
        return self._data.keys()

    def values(self) -> ValuesView[Any]:
        return self._data.values()

    def items(self) -> ItemsView[str, Any]:
        return self._data.items()

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[str]:  # type: ignore[override]
        return iter(self._data)

    def to_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self._data

    def __bool__(self) -> bool:
        return True

    @model_serializer(mode="wrap")
    def _dump_with_extra(self, handler: Any, info: SerializationInfo) -> dict[str, Any]:
        data = handler(self)
        if self._data and (info.context or {}).get(DUMP_EXTRA, True):
            data["_data"] = self._data
        return data


class Event(DictLikeModel):
    """Base class of every workflow event: declared fields are validated, extra keyword arguments kept."""


class StartEvent(Event):
    """The event a run starts with; ``run(**kwargs)`` puts the kwargs on it."""


class StopEvent(Event):
    """The event that ends a run; ``await handler`` gives ``result``, or the event itself for a subclass."""

    _result: Any = PrivateAttr(default=None)

    def __init__(self, result: Any = None, **kwargs: Any) -> None:
        super().__init__(_result=result, **kwargs)  # type: ignore[call-arg]

    def _get_result(self) -> Any:
        return self._result

    @property
    def result(self) -> Any:
        return self._get_result()

    @model_serializer(mode="wrap")
    def _dump_with_result(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        if self._result is not None:
            data["result"] = self._result
        return data

    def __repr__(self) -> str:
        parts = [f"{k}={v!r}" for k, v in {**self._data, **self.model_dump()}.items()]
        return f"{type(self).__name__}({', '.join(parts)})"

    def __str__(self) -> str:
        return str(self._result)


class WorkflowTimedOutEvent(StopEvent):
    """Streamed when a run exceeds its timeout, before ``await handler`` raises ``WorkflowTimeoutError``."""

    timeout: float
    active_steps: list[str]


class WorkflowCancelledEvent(StopEvent):
    """Streamed when a run is cancelled, before ``await handler`` raises ``WorkflowCancelledByUser``."""


class WorkflowFailedEvent(StopEvent):
    """Streamed when a step fails for good (retries spent), before ``await handler`` raises its error."""

    step_name: str
    exception: Any = None
    attempts: int | None = None
    elapsed_seconds: float | None = None


class StepFailedEvent(Event):
    """Delivered to a ``@catch_error`` step when a step has spent its retries."""

    step_name: str
    input_event: Any = None
    exception: Any = None
    attempts: int = 1
    elapsed_seconds: float = 0.0
    failed_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))


class InputRequiredEvent(Event):
    """Asks the caller for input; returned from a step it goes to the stream and needs no consumer."""


class HumanResponseEvent(Event):
    """The caller's answer to an ``InputRequiredEvent``, sent with ``handler.ctx.send_event``."""


class InternalDispatchEvent(Event):
    """What the engine does, streamed only to ``handler.stream_events(expose_internal=True)``."""


class WorkflowIdleEvent(InternalDispatchEvent):
    """The run has nothing running or queued and waits for an event from outside (a paused wait, a question)."""


class UnhandledEvent(InternalDispatchEvent):
    """An event sent into the run that no step and no wait took (it was ignored)."""

    event_type: str = Field(description="The event's class name.")
    qualified_name: str = Field(description="The event's class, module and name.")
    step_name: str | None = Field(default=None, description="The step it was sent to, if sent to one.")
    idle: bool = Field(description="Whether the run is idle once the event was ignored.")


class StepState(Enum):
    """Where one invocation of a step is: queued with no actor free, running, or over."""

    PREPARING = "preparing"
    RUNNING = "running"
    NOT_RUNNING = "not_running"


class StepStateChanged(InternalDispatchEvent):
    """One invocation of a step changed state: on which worker (rayflow: the number of the actor in the step's
    pool), for which event, and, once over, which event it returned."""

    name: str = Field(description="The step's name.")
    step_state: StepState = Field(description="preparing, running or not_running.")
    worker_id: str = Field(description="The worker (actor number) it runs on; '<enqueued>' while preparing.")
    input_event_name: str = Field(description="The event the step runs for.")
    output_event_name: str | None = Field(default=None, description="The event it returned, once over.")


def internal_event(fields: tuple[Any, ...]) -> InternalDispatchEvent:
    """The internal event the dispatcher described as plain ``fields`` (its core never builds events)."""
    kind, *rest = fields
    if kind == "step":
        name, state, worker, given, returned = rest
        return StepStateChanged(
            name=name, step_state=StepState(state), worker_id=worker, input_event_name=given, output_event_name=returned
        )
    if kind == "unhandled":
        event_type, qualified, step_name, idle = rest
        return UnhandledEvent(event_type=event_type, qualified_name=qualified, step_name=step_name, idle=idle)
    return WorkflowIdleEvent()


#: rayflow's own event classes: every workflow knows them, and snapshots rebuild them without being told.
BUILTIN_EVENTS: tuple[type[Event], ...] = (
    Event,
    StartEvent,
    StopEvent,
    InputRequiredEvent,
    HumanResponseEvent,
    StepFailedEvent,
    WorkflowFailedEvent,
    WorkflowTimedOutEvent,
    WorkflowCancelledEvent,
    WorkflowIdleEvent,
    UnhandledEvent,
    StepStateChanged,
)
