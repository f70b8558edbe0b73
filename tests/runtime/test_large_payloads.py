"""Large payloads by reference (``rayflow.payloads``, ``rayflow.runtime.claims``) on a real Ray: arrays above
``RAYFLOW_INLINE_MAX_BYTES`` through steps, the stream and the result; who owns them; nothing left behind."""

from __future__ import annotations

import gc
import time
from typing import Any

import numpy as np
import pytest
import ray
from ray.exceptions import RayActorError

from rayflow import (
    Context,
    Event,
    HumanResponseEvent,
    InputRequiredEvent,
    StartEvent,
    StopEvent,
    Workflow,
    step,
)
from rayflow.codec import EventCodec
from rayflow.config import settings
from rayflow.errors import PayloadLostError
from rayflow.payloads import Parcel

pytestmark = pytest.mark.usefixtures("ray_env")

#: Comfortably above the default threshold (256 KiB): 2 MB of float64.
SIZE = 250_000


class Blob(Event):
    data: Any
    n: int = 0


class Made(Event):
    data: Any
    n: int = 0


class Copy(Event):
    data: Any


class Loop(Event):
    data: Any
    left: int


class Chain(Workflow):
    """A step makes the array (held, then claimed), the next passes it on by ref and sends copies of a buffer it
    changes in between (each a snapshot), a loop runs on in its actor, and the array comes back as the result."""

    @step
    async def make(self, ev: StartEvent) -> Made:
        return Made(data=np.arange(ev.size, dtype=np.float64))

    @step
    async def fan(self, ctx: Context, ev: Made) -> Loop | Copy:
        scratch = np.zeros(ev.data.size)
        for i in range(2):
            scratch[:] = i
            ctx.send_event(Copy(data=scratch))
        ctx.write_event_to_stream(Made(data=ev.data, n=int(ev.data.flags.writeable)))
        return Loop(data=ev.data, left=2)

    @step
    async def loop(self, ev: Loop) -> Loop | Blob:
        if ev.left == 0:
            return Blob(data=ev.data, n=1)
        return Loop(data=ev.data + 1, left=ev.left - 1)

    @step
    async def copies(self, ctx: Context, ev: Copy) -> Blob | None:
        got = ctx.collect_events(ev, [Copy, Copy])
        if got is None:
            return None
        return Blob(data=np.stack([c.data for c in got]), n=2)

    @step
    async def end(self, ctx: Context, ev: Blob) -> StopEvent | None:
        got = ctx.collect_events(ev, [Blob, Blob])
        if got is None:
            return None
        by_n = {b.n: b.data for b in got}
        return StopEvent(result={"array": by_n[1], "copies": by_n[2]})


class Held(Workflow):
    """A step waits for an answer with a large event in hand: the dispatcher keeps that event meanwhile."""

    @step
    async def make(self, ev: StartEvent) -> Made:
        return Made(data=np.ones(ev.size))

    @step
    async def ask(self, ctx: Context, ev: Made) -> StopEvent:
        await ctx.wait_for_event(HumanResponseEvent, waiter_event=InputRequiredEvent(prefix="go?"))
        return StopEvent(result=float(ev.data.sum()))


def _holding(wf: Workflow) -> list[int]:
    """How many buffers each step actor of ``wf`` still holds, unclaimed."""
    label = wf._session.runtime.label
    names = [n for n in ray.util.list_named_actors() if n.startswith(label) and n.count(".") == label.count(".") + 2]
    handles = [ray.get_actor(n) for n in names if not n.endswith(("dispatcher", "context"))]
    return ray.get([h.__ray_call__.remote(lambda _: _held_here()) for h in handles])


def _held_here() -> int:
    from rayflow.payloads import shelf as here

    return here.holding


def _bytes_owned_by_dispatcher(wf: Workflow) -> int:
    """The bytes of the objects the dispatcher's process still references (it owns the claimed payloads)."""
    dispatcher = ray.get_actor(f"{wf._session.runtime.label}.dispatcher")

    def count(_: Any) -> int:
        gc.collect()
        counts = ray._private.worker.global_worker.core_worker.get_all_reference_counts()
        refs = [ray.ObjectRef(bytes.fromhex(key.decode())) for key in counts]
        where = ray.experimental.get_object_locations(refs)
        return sum(int(info.get("object_size") or 0) for info in where.values())

    gc.collect()
    return int(ray.get(dispatcher.__ray_call__.remote(count)))


async def test_large_arrays_go_by_ref_through_steps_the_stream_and_the_result_and_nothing_stays_behind() -> None:
    wf = Chain(timeout=60)
    try:
        handler = wf.run(size=SIZE)
        streamed = [ev async for ev in handler.stream_events() if isinstance(ev, Made)]
        result = await handler
        expected = np.arange(SIZE, dtype=np.float64) + 2  # two turns of the loop
        assert np.array_equal(result["array"], expected)
        assert not result["array"].flags.writeable  # read zero-copy from the object store
        assert streamed[0].n == 0  # the step saw it read-only too
        assert np.array_equal(streamed[0].data, expected - 2)
        # each sent event is a snapshot of the buffer when it was sent, not of what the step did to it later
        assert np.array_equal(result["copies"], np.stack([np.zeros(SIZE), np.ones(SIZE)]))
        del handler, streamed, result
        assert _holding(wf) == [0] * len(_holding(wf))
        for _ in range(2):
            assert np.array_equal((await wf.run(size=SIZE))["array"], expected)
        assert _bytes_owned_by_dispatcher(wf) < SIZE  # no payload kept across runs
    finally:
        await wf.close()


async def test_the_dispatcher_owns_the_large_events_it_keeps_and_frees_them_when_the_run_ends() -> None:
    wf = Held(timeout=60)
    try:
        handler = wf.run(size=SIZE)
        async for ev in handler.stream_events():
            if isinstance(ev, InputRequiredEvent):
                # the step actor that made the array handed it over: the dispatcher owns it while the step waits
                assert _bytes_owned_by_dispatcher(wf) >= SIZE * 8
                assert _holding(wf) == [0, 0]
                handler.ctx.send_event(HumanResponseEvent(response="go"))
        assert await handler == SIZE
        del handler
        assert _bytes_owned_by_dispatcher(wf) < SIZE
    finally:
        await wf.close()


def test_small_events_stay_inline_and_large_buffers_or_streams_go_by_ref() -> None:
    codec = EventCodec({Blob: "Blob"})
    assert isinstance(codec.encode(Blob(data=np.zeros(10))).payload, bytes)
    big = codec.encode(Blob(data=np.arange(SIZE, dtype=np.float64)))
    assert isinstance(big.payload, Parcel) and len(big.payload.sources) == 1 and not big.payload.stream_by_ref
    assert len(big.payload.body) < 1000  # the rest of the event stays inline
    back = codec.loads(big.payload)
    assert np.array_equal(back.data, np.arange(SIZE)) and not back.data.flags.writeable
    text = codec.encode(Blob(data=b"x" * (settings().inline_max_bytes + 1)))  # bytes pickle in-band: the stream goes
    assert isinstance(text.payload, Parcel) and text.payload.stream_by_ref and text.payload.body == b""
    assert codec.loads(text.payload).data == b"x" * (settings().inline_max_bytes + 1)


@ray.remote(num_cpus=0)
class _Emitter:
    """Encodes as a step actor does: holding large buffers until they are claimed (or putting them itself)."""

    def __init__(self, hold: bool) -> None:
        from rayflow.payloads import shelf  # this process's (the test module travels by value)

        if hold:
            shelf.hold_here(ray.get_runtime_context().current_actor)
        self._shelf = shelf
        self._codec = EventCodec({Blob: "Blob"})

    def encode(self) -> Any:
        return self._codec.encode(Blob(data=np.arange(SIZE, dtype=np.float64)))

    async def hand_over(self, numbers: list[int]) -> tuple[Any, ...]:
        return self._shelf.hand_over(numbers)

    def holding(self) -> int:
        return self._shelf.holding


@ray.remote(num_cpus=0)
class _Claimer:
    """Claims envelopes as the dispatcher does, and keeps them (as the dispatcher keeps a run's events)."""

    async def claim(self, envelopes: list[Any]) -> list[Any]:
        from rayflow.runtime.claims import claim

        self._kept = await claim(envelopes)
        return self._kept


def _kill(actor: Any) -> None:
    """Kill ``actor`` and wait until Ray knows it is dead."""
    ray.kill(actor)
    with pytest.raises(RayActorError):
        ray.get(actor.__ray_call__.remote(lambda _: None))
    gc.collect()


def _lost(codec: EventCodec, payload: Any) -> str:
    """The ``PayloadLostError`` reading ``payload`` raises once Ray has freed it after its owner died (Ray frees it
    shortly after the death, and says nothing when that is done: polled, for up to 20 s)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            codec.loads(payload)
        except PayloadLostError as err:
            return str(err)
        gc.collect()
        time.sleep(0.05)
    raise AssertionError("the payload was still readable 20 s after its owner died")


@pytest.mark.slow  # waits for Ray to free the object after the death (seconds)
def test_a_ref_put_by_an_actor_dies_with_it_and_reading_it_says_so() -> None:
    emitter = _Emitter.remote(False)
    envelope = ray.get(emitter.encode.remote())
    assert not envelope.payload.held  # not a step actor: it put the array itself, and owns it
    _kill(emitter)
    assert "gone from Ray's object store" in _lost(EventCodec({Blob: "Blob"}), envelope.payload)


def test_held_buffers_belong_to_their_claimer_and_outlive_the_actor_that_made_them() -> None:
    codec = EventCodec({Blob: "Blob"})
    emitter, claimer = _Emitter.remote(True), _Claimer.remote()
    held = ray.get(emitter.encode.remote())
    assert held.payload.held and ray.get(emitter.holding.remote()) == 1
    with pytest.raises(PayloadLostError, match="never handed over"):
        codec.loads(held.payload)
    [claimed] = ray.get(claimer.claim.remote([held]))
    assert not claimed.payload.held and ray.get(emitter.holding.remote()) == 0
    _kill(emitter)  # the step actor that made the array dies: the claimer owns it
    assert np.array_equal(codec.loads(claimed.payload).data, np.arange(SIZE))
    _kill(claimer)  # the owner dies (the dispatcher): the payload is gone, and reading it says so at once
    assert "gone from Ray's object store" in _lost(codec, claimed.payload)
