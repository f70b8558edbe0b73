"""The leased lock behind ``edit_state`` (``rayflow.runtime.state_lock``), without Ray: grants in order, aborts that
come before or after their acquire, a holder dropped at once, and a lease that runs out on a fake clock."""

from __future__ import annotations

import asyncio
import logging

import pytest

from rayflow.errors import StateLockLost
from rayflow.runtime.state_lock import LeasedLock, LockStatus


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def _queued(lock: LeasedLock, n: int) -> None:
    """Let waiting acquires run until ``n`` of them are queued."""
    while len(lock.status().queued) < n:
        await asyncio.sleep(0)


async def test_grants_come_in_the_order_they_were_asked_for() -> None:
    lock = LeasedLock("lock", lease_s=10)
    assert await lock.acquire("a", "A")
    b = asyncio.ensure_future(lock.acquire("b", "B"))
    c = asyncio.ensure_future(lock.acquire("c", "C"))
    await _queued(lock, 2)
    assert lock.status() == LockStatus("A", ("B", "C"))
    assert not lock.release("b")  # a waiting token holds nothing to release
    assert lock.release("a")
    assert await b and lock.holds("b") and not c.done()
    assert lock.release("b")
    assert await c
    assert lock.release("c")
    assert lock.status() == LockStatus(None)


async def test_an_abort_drops_its_token_held_queued_or_not_yet_arrived() -> None:
    lock = LeasedLock("lock", lease_s=10)
    assert await lock.acquire("a", "A")
    queued = asyncio.ensure_future(lock.acquire("q", "Q"))
    await _queued(lock, 1)
    lock.abort("q")
    assert await queued is False
    lock.abort("early")  # the abort overtook its acquire: the acquire is refused when it comes
    assert await lock.acquire("early", "E") is False
    lock.abort("a")
    assert lock.status() == LockStatus(None)
    assert await lock.acquire("later", "L")  # the lock is free again


async def test_a_cancelled_acquire_leaves_the_queue() -> None:
    lock = LeasedLock("lock", lease_s=10)
    assert await lock.acquire("a", "A")
    waiting = asyncio.ensure_future(lock.acquire("w", "W"))
    await _queued(lock, 1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert lock.status() == LockStatus("A")
    lock.release("a")
    assert lock.status() == LockStatus(None)


async def test_release_holder_drops_what_a_holder_holds_and_waits_for() -> None:
    lock = LeasedLock("lock", lease_s=10)
    assert await lock.acquire("d1", "dead")
    mine = asyncio.ensure_future(lock.acquire("m", "me"))
    theirs = asyncio.ensure_future(lock.acquire("d2", "dead"))
    await _queued(lock, 2)
    assert lock.release_holder("dead") == 2
    assert await mine and lock.holds("m")
    with pytest.raises(StateLockLost, match="'dead' was released"):
        await theirs
    assert lock.release_holder("dead") == 0


async def test_a_lease_not_renewed_runs_out_when_someone_waits(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    lock = LeasedLock("the state lock of context 'c'", lease_s=10, clock=clock)
    assert await lock.acquire("a", "A")
    clock.now = 9
    assert lock.renew("a")  # renewed: its lease now ends at 19
    clock.now = 11
    waiting = asyncio.ensure_future(lock.acquire("b", "B"))
    await _queued(lock, 1)
    assert lock.holds("a")
    clock.now = 19
    with caplog.at_level(logging.WARNING, logger="rayflow"):
        waiting.cancel()  # (the waiter sleeps on the loop's clock until 19: start it again now)
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert await lock.acquire("b", "B")
    assert lock.holds("b") and not lock.renew("a") and not lock.release("a")
    assert "the state lock of context 'c' was held by 'A' for more than its lease (10 s" in caplog.text
