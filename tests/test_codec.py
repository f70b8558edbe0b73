"""The event codec (``rayflow.codec``): events into envelopes (type keys, kind, target, payload) and back; classes
registered by name, others by value; an event that cannot travel fails naming the step and the event type."""

from __future__ import annotations

import pickle
import threading
from pathlib import Path

import pytest

from rayflow.codec import EventCodec, qualified_name
from rayflow.core.envelope import Envelope, Kind
from rayflow.errors import EventSerializationError, WorkflowRuntimeError
from rayflow.events import Event, HumanResponseEvent, InputRequiredEvent, StartEvent, StopEvent, WorkflowFailedEvent
from tests.elsewhere import NO_TEST_MODULE, run_elsewhere


class Query(Event):
    text: str


class Base(Event):
    n: int = 0


class Derived(Base):
    pass


class Finished(StopEvent):
    pass


class Question(InputRequiredEvent):
    pass


class Outer:
    class Inner(Event):
        pass


def test_encode_then_decode_gives_an_equal_event() -> None:
    codec = EventCodec({Query: "app.Query"})
    event = Query(text="what is rag?", extra=[1, 2])
    envelope = codec.encode(event)
    assert isinstance(envelope, Envelope)
    assert isinstance(envelope.payload, bytes)
    back = codec.loads(envelope.payload)
    assert back == event
    assert back is not event
    assert (back.text, back.extra, back.get("extra")) == ("what is rag?", [1, 2], [1, 2])


def test_stop_event_result_and_arbitrary_objects_round_trip() -> None:
    codec = EventCodec({})
    stop = codec.loads(codec.encode(StopEvent(result={"answer": 42})).payload)
    assert type(stop) is StopEvent
    assert stop.result == {"answer": 42}
    error = codec.loads(codec.dumps(ValueError("bad input")))
    assert type(error) is ValueError
    assert error.args == ("bad input",)


def test_type_keys_are_the_class_then_its_event_bases() -> None:
    codec = EventCodec({Derived: "app.Derived", Base: "app.Base"})
    assert codec.encode(Derived(n=1)).type_keys == ("app.Derived", "app.Base", "rayflow.events.Event")
    assert codec.encode(Base()).type_keys == ("app.Base", "rayflow.events.Event")
    # A class the workflow did not name is known by its qualified name.
    assert codec.encode(Query(text="")).type_keys == (qualified_name(Query), "rayflow.events.Event")
    assert codec.keys_of(StartEvent) == ("rayflow.events.StartEvent", "rayflow.events.Event")
    assert codec.encode(Derived()).type_name == "app.Derived"


def test_kinds_and_target() -> None:
    codec = EventCodec({})
    assert codec.encode(Query(text="")).kind is Kind.EVENT
    assert codec.encode(StopEvent()).kind is Kind.STOP
    assert codec.encode(Finished()).kind is Kind.STOP
    assert codec.encode(WorkflowFailedEvent(step_name="s")).kind is Kind.STOP
    assert codec.encode(InputRequiredEvent()).kind is Kind.INPUT_REQUIRED
    assert codec.encode(Question()).kind is Kind.INPUT_REQUIRED
    assert codec.encode(HumanResponseEvent()).kind is Kind.EVENT
    # Written to the stream: a StopEvent there is only streamed, it does not end the run.
    assert codec.encode(StopEvent(), kind=Kind.STREAM).kind is Kind.STREAM
    assert codec.encode(Query(text="")).target is None
    sent = codec.encode(Query(text=""), target="answer")
    assert (sent.kind, sent.target) == (Kind.EVENT, "answer")


def test_a_registered_class_travels_by_its_key() -> None:
    """The payload names a registered class by its key: the receiving codec's class for that key is the one built
    (in a step actor, the class the spec brought)."""

    class Ping(Event):
        n: int

    class PingElsewhere(Event):
        n: int

    sent = EventCodec({Ping: "app.Ping"}).encode(Ping(n=3))
    got = EventCodec({PingElsewhere: "app.Ping"}).loads(sent.payload)
    assert type(got) is PingElsewhere
    assert got.n == 3


def test_a_class_defined_in_a_function_travels_by_value(tmp_path: Path) -> None:
    class Note(Event):
        n: int

    class Label:
        def __init__(self, text: str) -> None:
            self.text = text

    codec = EventCodec({})
    payloads = [codec.encode(Note(n=5)).payload, codec.encode(Note(n=6, label=Label("tag"))).payload]
    program = (
        "import pickle, sys\n"
        "from rayflow.codec import EventCodec\n"
        "codec = EventCodec({})\n"
        "note, labelled = (codec.loads(p) for p in pickle.load(sys.stdin.buffer))\n"
        + NO_TEST_MODULE
        + "print(type(note).__name__, note.n, labelled.n, type(labelled.label).__name__, labelled.label.text)\n"
    )
    out = run_elsewhere(program, pickle.dumps(payloads), tmp_path).decode().split()
    assert out == ["Note", "5", "6", "Label", "tag"]


def test_an_event_that_cannot_pickle_fails_naming_the_step_and_the_event_type() -> None:
    class Holder(Event):
        pass

    codec = EventCodec({Holder: "app.Holder"})
    with pytest.raises(EventSerializationError) as info:
        codec.encode(Holder(lock=threading.Lock()), step="make")
    message = str(info.value)
    assert message.startswith("Event Holder emitted by step 'make' cannot be pickled to travel between Ray processes: ")
    assert "_thread.lock" in message
    assert isinstance(info.value, WorkflowRuntimeError)
    assert isinstance(info.value.__cause__, TypeError)
    with pytest.raises(EventSerializationError, match=r"^Event Holder emitted by the caller cannot be pickled"):
        codec.encode(Holder(lock=threading.Lock()))


def test_qualified_name() -> None:
    assert qualified_name(Query) == f"{Query.__module__}.Query"
    assert qualified_name(Outer.Inner) == f"{Outer.__module__}.Outer.Inner"
    assert qualified_name(Event) == "rayflow.events.Event"
    assert qualified_name(int) == "builtins.int"

    class Local(Event):
        pass

    assert qualified_name(Local) == f"{__name__}.test_qualified_name.<locals>.Local"
