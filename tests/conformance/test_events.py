"""Events: pydantic models that behave like dicts for the fields they do not declare, keep private attributes
apart, print and dump as LlamaIndex's do, and survive a JSON round trip and the trip from one step to the next."""

import json
import threading

import pytest
from pydantic import PrivateAttr
from run_helpers import at_module_level


def test_extra_fields_are_read_by_attribute_and_by_key(engine):
    ev = engine.Event(city="Lyon", rank=3)
    assert ev.city == "Lyon"
    assert ev["rank"] == 3
    assert ev.keys() == {"city": "Lyon", "rank": 3}.keys()
    assert "city" in ev
    assert "country" not in ev


def test_declared_fields_extra_fields_and_private_attributes_are_kept_apart(engine):
    class Parcel(engine.Event):
        weight: float
        _barcode: str = PrivateAttr()
        _notes: list = PrivateAttr(default_factory=list)

    parcel = Parcel(weight=1.5, fragile=True, _barcode="X-42")
    assert parcel.weight == 1.5
    assert parcel.to_dict() == {"fragile": True}  # only the extra fields
    assert parcel._barcode == "X-42"
    assert parcel._notes == []
    assert "weight" not in parcel
    assert "_barcode" not in parcel


def test_an_event_may_override_init_to_derive_a_private_attribute(engine):
    class Reading(engine.Event):
        _celsius: float = PrivateAttr()

        def __init__(self, fahrenheit: float, **fields):
            super().__init__(**fields)
            self._celsius = round((fahrenheit - 32) * 5 / 9, 1)

    reading = Reading(fahrenheit=212, station="north")
    assert reading._celsius == 100.0
    assert reading.to_dict() == {"station": "north"}


def test_reading_a_missing_extra_field_raises_attribute_error(engine):
    class Ticket(engine.Event):
        seat: str

    with pytest.raises(AttributeError, match="row"):
        _ = Ticket(seat="12B").row


def test_extra_fields_can_be_set_by_attribute_or_by_key_and_read_with_get(engine):
    class Ticket(engine.Event):
        seat: str

    ticket = Ticket(seat="12B")
    assert ticket.get("gate") is None
    assert ticket.get("gate", "unknown") == "unknown"
    ticket.gate = "A1"
    assert ticket["gate"] == "A1"
    ticket["gate"] = "C7"
    assert ticket.gate == "C7"
    assert ticket.get("gate") == "C7"
    ticket.seat = "14A"  # a declared field stays a field
    assert ticket.seat == "14A"
    assert "seat" not in ticket


def test_the_dict_interface_covers_the_extra_fields_only(engine):
    class Ticket(engine.Event):
        seat: str

    ticket = Ticket(seat="12B")
    assert len(ticket) == 0
    assert bool(ticket) is True  # truthy although empty, so ``if ev:`` holds
    ticket["meal"] = "veg"
    ticket["bags"] = 2
    assert len(ticket) == 2
    assert list(ticket) == ["meal", "bags"]
    assert list(ticket.values()) == ["veg", 2]
    assert list(ticket.items()) == [("meal", "veg"), ("bags", 2)]
    assert ticket.to_dict() == {"meal": "veg", "bags": 2}


def test_stop_events_print_and_dump_their_result_and_fields(engine):
    stop = engine.StopEvent(result=42, note="done")
    assert repr(stop) == "StopEvent(note='done', result=42)"
    assert str(stop) == "42"
    assert engine.StopEvent(result="ok").model_dump() == {"result": "ok"}

    class Verdict(engine.StopEvent):
        guilty: bool
        years: int

    verdict = Verdict(guilty=False, years=0)
    assert repr(verdict) == "Verdict(guilty=False, years=0)"
    assert verdict.model_dump() == {"guilty": False, "years": 0}


def _shipment_class(engine):
    class Shipment(engine.Event):
        carrier: str

    return Shipment


def test_an_event_round_trips_through_json_with_its_class_allowed(engine):
    shipment_class = _shipment_class(engine)
    serializer = engine.context.JsonSerializer(allowed_types=[shipment_class])
    sent = shipment_class(carrier="rail", tracking="T-9")
    text = serializer.serialize(sent)
    assert json.loads(text)  # plain JSON text
    back = serializer.deserialize(text)
    assert type(back) is shipment_class
    assert back.carrier == "rail"
    assert back.to_dict() == {"tracking": "T-9"}


@pytest.mark.differs(
    "a snapshot never imports a class it names: JsonSerializer() rebuilds only classes given in allowed_types "
    "(LlamaIndex imports any qualified name by default)"
)
def test_the_default_json_serializer_rebuilds_a_module_level_event_by_import(engine):
    shipment_class = at_module_level(_shipment_class(engine), engine)
    serializer = engine.context.JsonSerializer()
    back = serializer.deserialize(serializer.serialize(shipment_class(carrier="sea")))
    assert type(back) is shipment_class
    assert back.carrier == "sea"


def test_the_engines_own_events_round_trip_through_any_json_serializer(engine):
    serializer = engine.context.JsonSerializer()
    for sent in (
        engine.StartEvent(topic="tides"),
        engine.StopEvent(result={"height": 2.5}),
        engine.HumanResponseEvent(response="yes"),
    ):
        back = serializer.deserialize(serializer.serialize(sent))
        assert type(back) is type(sent)
        assert back.model_dump() == sent.model_dump()
    assert serializer.deserialize(serializer.serialize(engine.StopEvent(result="x"))).result == "x"


async def test_extra_fields_and_private_attributes_travel_with_an_event_between_steps(engine):
    class Letter(engine.Event):
        to: str
        _stamp: str = PrivateAttr(default="none")

    class Post(engine.Workflow):
        @engine.step
        async def write(self, ev: engine.StartEvent) -> Letter:
            letter = Letter(to="Ada", _stamp="first class", ps="see you soon")
            letter["enclosed"] = ["photo"]
            return letter

        @engine.step
        async def read(self, ev: Letter) -> engine.StopEvent:
            return engine.StopEvent(result={"to": ev.to, "stamp": ev._stamp, "extra": ev.to_dict()})

    assert await Post().run() == {
        "to": "Ada",
        "stamp": "first class",
        "extra": {"ps": "see you soon", "enclosed": ["photo"]},
    }


@pytest.mark.differs("events travel between processes as pickled copies: an event must pickle")
async def test_an_event_holding_an_object_that_cannot_be_pickled_reaches_the_next_step(engine):
    class Guarded(engine.Event):
        pass

    class Vault(engine.Workflow):
        @engine.step
        async def lock_up(self, ev: engine.StartEvent) -> Guarded:
            return Guarded(lock=threading.Lock(), content="gold")

        @engine.step
        async def open_up(self, ev: Guarded) -> engine.StopEvent:
            with ev.lock:
                return engine.StopEvent(result=ev.content)

    assert await Vault(timeout=10).run() == "gold"
