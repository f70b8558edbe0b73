"""A context snapshot as data: a run's state and unfinished work (``Pending``) to the JSON of ``ctx.to_dict()``
and back. ``ctx.to_dict()`` and a journal's checkpoints (``rayflow.journal``) both write it with ``snapshot_data``.

Events and state are written with the snapshot's serializer (the default ``JsonSerializer`` rebuilds only the
workflow's own event and state classes), so loading a snapshot never imports a class the data names.
"""

from __future__ import annotations

import uuid
from typing import Any

from rayflow.codec import EventCodec, qualified_name
from rayflow.context.serializers import BaseSerializer
from rayflow.context.state_store import DictState
from rayflow.core.commands import WorkItem
from rayflow.core.envelope import Envelope, Kind, Resolved, Waiter
from rayflow.core.state import Pending
from rayflow.core.streams import JOIN_KEYS
from rayflow.errors import ContextSerdeError
from rayflow.spec import WorkflowSpec

__all__ = ["SNAPSHOT_VERSION", "pending_from_data", "pending_to_data", "snapshot_data", "snapshot_from_data"]

#: The version of the snapshot format ``snapshot_data`` writes; a loader refuses a newer one.
SNAPSHOT_VERSION = 1


def snapshot_data(
    state: Any, pending: Pending | None, is_running: bool, serializer: BaseSerializer, codec: EventCodec
) -> dict[str, Any]:
    """A snapshot of a context whose store holds ``state`` and whose run left ``pending`` (None: no run, or one that
    finished): JSON-compatible with the default serializer; ``Context.from_dict`` loads it."""
    return {
        "version": SNAPSHOT_VERSION,
        "state": {
            "state_type": qualified_name(type(state)) if state is not None else None,
            "state_data": serializer.serialize_value(state) if state is not None else None,
        },
        "is_running": is_running or pending is not None,
        "pending": None if pending is None else pending_to_data(pending, serializer, codec),
    }


def snapshot_from_data(
    data: dict[str, Any], serializer: BaseSerializer, spec: WorkflowSpec
) -> tuple[Any, Pending | None]:
    """The state and the unfinished work of a snapshot of a ``spec`` workflow's context; only the workflow's own
    state and event types are rebuilt (and what ``serializer`` allows besides). ``ContextSerdeError`` if it is not
    one."""
    try:
        version = data.get("version")
        if not isinstance(version, int) or version > SNAPSHOT_VERSION:
            raise ContextSerdeError(
                f"Cannot load serialized workflow context with version={version!r}; rayflow supports up to "
                f"version {SNAPSHOT_VERSION}. The payload was likely written by a newer version."
            )
        raw = data["state"]["state_data"]
    except (KeyError, TypeError, AttributeError) as err:
        raise ContextSerdeError(f"Not a rayflow context snapshot: missing {err}") from err
    serializer = serializer.with_types(DictState, *spec.state_types, *spec.event_keys)
    state = serializer.deserialize_value(raw) if raw is not None else None
    pending = data.get("pending")
    if not pending:
        return state, None
    try:
        return state, pending_from_data(pending, serializer, spec.codec)
    except (KeyError, TypeError, ValueError) as err:
        raise ContextSerdeError(f"The snapshot's unfinished work cannot be read: {err}") from err


def pending_to_data(pending: Pending, serializer: BaseSerializer, codec: EventCodec) -> dict[str, Any]:
    def event(envelope: Envelope) -> str:
        return serializer.serialize(codec.loads(envelope.payload))

    def resolved(answers: Resolved) -> list[list[Any]]:
        return [[waiter_id, None if envelope is None else event(envelope)] for waiter_id, envelope in answers]

    def member(envelope: Envelope) -> dict[str, Any]:
        return {"event": event(envelope), "id": envelope.event_id.hex(), "scope": list(envelope.scope)}

    def work(step: str, item: WorkItem) -> dict[str, Any]:
        if item.members is None:
            data = {"step": step, **member(item.envelope)}
        else:  # a join's invocation: its events travel as members
            data = {"step": step, "event": None, "id": item.envelope.event_id.hex(), "scope": list(item.envelope.scope)}
            data["members"] = [member(envelope) for envelope in item.members]
        return {**data, "resolved": resolved(item.resolved)}

    return {
        "items": [work(step, item) for step, item in pending.items],
        "waits": [
            {
                "step": step,
                "waiter_id": waiter.waiter_id,
                "event_keys": list(waiter.event_keys),
                "trigger": event(waiter.trigger),
                "trigger_scope": list(waiter.trigger.scope),
                "trigger_id": waiter.trigger.event_id.hex(),
                "requirements": serializer.serialize_value(dict(waiter.requirements)),
                "timeout": waiter.timeout,
                "announce": None if waiter.announce is None else event(waiter.announce),
                "resolved": resolved(waiter.resolved),
            }
            for step, waiter in pending.waits
        ],
        "awaiting_input": pending.awaiting_input,
    }


def pending_from_data(data: dict[str, Any], serializer: BaseSerializer, codec: EventCodec) -> Pending:
    def event(raw: str, kind: Kind | None = None, event_id: str | None = None, scope: Any = ()) -> Envelope:
        # The id an event was routed under names what it causes (rayflow.core.envelope.derive_id); a snapshot that
        # does not have it gets a fresh one: its events then never match events routed before it was taken.
        named = bytes.fromhex(event_id) if event_id else uuid.uuid4().bytes
        return codec.encode(serializer.deserialize(raw), kind=kind, event_id=named, scope=tuple(scope))

    def work(item: dict[str, Any]) -> WorkItem:
        scope = tuple(item.get("scope", ()))
        if item.get("members") is None:
            return WorkItem("", "", event(item["event"], None, item.get("id"), scope), resolved(item["resolved"]))
        members = tuple(event(m["event"], None, m.get("id"), m.get("scope", ())) for m in item["members"])
        invocation = Envelope(JOIN_KEYS, None, event_id=bytes.fromhex(item["id"]), scope=scope)
        return WorkItem("", "", invocation, resolved(item["resolved"]), members=members)

    def resolved(raw: list[list[Any]]) -> Resolved:
        return tuple((str(waiter_id), None if answer is None else event(answer)) for waiter_id, answer in raw)

    items = tuple((str(item["step"]), work(item)) for item in data.get("items", ()))
    waits = tuple(
        (
            str(wait["step"]),
            Waiter(
                str(wait["waiter_id"]),
                tuple(wait["event_keys"]),
                event(wait["trigger"], None, wait.get("trigger_id"), wait.get("trigger_scope", ())),
                tuple(sorted(serializer.deserialize_value(wait["requirements"]).items())),
                wait["timeout"],
                None if wait["announce"] is None else event(wait["announce"], Kind.STREAM),
                resolved(wait["resolved"]),
            ),
        )
        for wait in data.get("waits", ())
    )
    return Pending(items, waits, bool(data.get("awaiting_input", False)))
