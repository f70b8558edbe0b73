"""The dispatcher's claim on large payloads that step actors hold (``rayflow.payloads``).

An event a step actor encodes keeps its large buffers in that actor until the dispatcher claims them: before it
routes the events of an emit, or applies what a step call returned, it calls the holder's ``hand_over`` with one
return value per buffer and awaits the call's first (tiny) return. Ray makes the caller the owner of return values,
so the buffers now belong to the dispatcher; it never reads them (the call's other returns stay refs), and the
envelopes it routes carry those refs. When the claim returns, every buffer is sealed in the object store, so a step
reading it never waits for its producer.

A holder that died before handing over fails the claim with ``RayActorError``: its step call comes back lost and its
work items are delivered again (their events are emitted again, under the same ids), as for any actor death.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from rayflow.core.envelope import Envelope
from rayflow.core.ticks import ItemDone
from rayflow.payloads import Parcel

__all__ = ["claim", "claim_results", "envelopes_of", "held_numbers"]


def _held(envelope: Envelope | None) -> bool:
    return envelope is not None and isinstance(envelope.payload, Parcel) and bool(envelope.payload.held)


def held_numbers(envelopes: Iterator[Envelope | None] | list[Envelope | None]) -> set[int]:
    """The numbers of the buffers the ``envelopes`` still need from their holder."""
    return {n for e in envelopes if e is not None and _held(e) for n in e.payload.held}


def envelopes_of(done: ItemDone) -> Iterator[Envelope | None]:
    """The envelopes a step actor made while handling one item, as they travel in its ``ItemDone``."""
    yield done.output
    if done.fan_out is not None:
        yield from done.fan_out
    if done.retry is not None and done.retry.members is not None:
        yield from done.retry.members
    if done.failure is not None:
        yield done.failure.failed_event
    if done.retry is not None:
        yield done.retry.envelope
    if done.waiting is not None:
        yield done.waiting.trigger
        yield done.waiting.announce


async def claim(envelopes: list[Envelope]) -> list[Envelope]:
    """``envelopes`` with every held buffer handed over to this process (the dispatcher), which then owns it."""
    held = [e for e in envelopes if _held(e)]
    if not held:
        return envelopes
    claimed = await _claim(held)
    return [claimed.get(id(e), e) for e in envelopes]


async def claim_results(results: list[ItemDone]) -> list[ItemDone]:
    """A step call's results with every held buffer in them handed over to this process."""
    held = [e for done in results for e in envelopes_of(done) if e is not None and _held(e)]
    if not held:
        return results
    claimed = await _claim(held)

    def swap(envelope: Any) -> Any:
        return claimed.get(id(envelope), envelope) if envelope is not None else None

    out = []
    for done in results:
        if not any(id(e) in claimed for e in envelopes_of(done) if e is not None):
            out.append(done)
            continue
        changes: dict[str, Any] = {"output": swap(done.output)}
        if done.fan_out is not None:
            changes["fan_out"] = tuple(swap(e) for e in done.fan_out)
        if done.failure is not None:
            changes["failure"] = replace(done.failure, failed_event=swap(done.failure.failed_event))
        if done.retry is not None:
            members = None if done.retry.members is None else tuple(swap(e) for e in done.retry.members)
            changes["retry"] = replace(done.retry, envelope=swap(done.retry.envelope), members=members)
        if done.waiting is not None:
            changes["waiting"] = replace(
                done.waiting, trigger=swap(done.waiting.trigger), announce=swap(done.waiting.announce)
            )
        out.append(replace(done, **changes))
    return out


async def _claim(held: list[Envelope]) -> dict[int, Envelope]:
    """One ``hand_over`` call per holder for the buffers of ``held``; each envelope's claimed twin, by ``id``."""
    by_holder: dict[str, list[Envelope]] = {}
    for envelope in held:
        by_holder.setdefault(envelope.payload.token, []).append(envelope)
    calls = []
    for group in by_holder.values():
        numbers = sorted({n for e in group for n in e.payload.held})
        holder = group[0].payload.holder
        calls.append((group, numbers, holder.hand_over.options(num_returns=len(numbers) + 1).remote(numbers)))
    await asyncio.gather(*(refs[0] for _, _, refs in calls))
    claimed: dict[int, Envelope] = {}
    for group, numbers, refs in calls:
        by_number = dict(zip(numbers, refs[1:], strict=True))
        for envelope in group:
            parcel: Parcel = envelope.payload
            claimed[id(envelope)] = replace(envelope, payload=parcel.claimed(by_number))
    return claimed
