"""The lock behind ``edit_state``: a lease held by a token, on behalf of a named holder.

One ``LeasedLock`` guards one context's state in the context actor. Whoever takes it names a *token* (one per
edit) and a *holder* (the Ray actor name of the process editing, or ``"driver"``). The lock is granted in the
order it was asked for. It is given back by its token (``release``), or taken back without the holder's help:

- ``abort(token)`` drops a token wherever it is: held, it is released; queued, it leaves the queue; not seen
  yet (an abort overtook its own acquire, which Ray may deliver out of order), the acquire is refused when it
  arrives. An editor cancelled while its acquire is in flight aborts it, so a grant nobody waits for is never kept.
- ``release_holder(holder)`` drops every token of a holder, held or queued: the call for a process that died.
- The lease: a grant lasts ``lease_s`` seconds from its grant or its last ``renew``. A live editor renews in the
  background while its block is open, so only a holder that died (or blocked its event loop that long) lets the
  lease run out. An expired grant is taken back, with a warning, when someone waits for the lock; nothing else
  watches it, so a lock nobody wants costs nothing. A taken-back token can no longer ``release`` its edit: the
  context actor refuses its write.

Nothing here imports Ray; time comes from the injected clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from rayflow.errors import StateLockLost

__all__ = ["LeasedLock", "LockStatus"]

log = logging.getLogger("rayflow")


@dataclass(frozen=True)
class LockStatus:
    """Who holds a lock (None: free) and who waits for it, in order."""

    holder: str | None
    queued: tuple[str, ...] = ()


@dataclass
class _Claim:
    token: str
    holder: str
    #: True once granted; False when dropped before its grant (aborted); an error when its holder was released.
    answer: asyncio.Future[bool] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class LeasedLock:
    """A FIFO lock whose grants are leases; ``name`` says what it guards, in warnings and errors."""

    def __init__(self, name: str, lease_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._name = name
        self._lease_s = lease_s
        self._clock = clock
        self._owner: _Claim | None = None
        self._deadline = 0.0
        self._queue: OrderedDict[str, _Claim] = OrderedDict()
        self._aborted: OrderedDict[str, float] = OrderedDict()  # tokens aborted before their acquire arrived

    @property
    def lease_s(self) -> float:
        return self._lease_s

    def status(self) -> LockStatus:
        return LockStatus(
            None if self._owner is None else self._owner.holder, tuple(c.holder for c in self._queue.values())
        )

    def holds(self, token: str) -> bool:
        """Whether ``token`` holds the lock now."""
        return self._owner is not None and self._owner.token == token

    async def acquire(self, token: str, holder: str) -> bool:
        """Wait for the lock; True once ``token`` holds it, False if the token was aborted first.

        Raises ``StateLockLost`` if ``holder`` is released while this waits. A cancelled acquire leaves the queue
        (and gives the lock back if it was granted meanwhile).
        """
        if self._aborted.pop(token, None) is not None:
            return False
        claim = _Claim(token, holder)
        self._queue[token] = claim
        self._grant_next()
        try:
            while not claim.answer.done():
                wait = max(0.0, self._deadline - self._clock())
                try:
                    await asyncio.wait_for(asyncio.shield(claim.answer), timeout=wait)
                except asyncio.TimeoutError:
                    self._expire_if_due()
        except asyncio.CancelledError:
            self._queue.pop(token, None)
            self.release(token)
            raise
        return claim.answer.result()

    def renew(self, token: str) -> bool:
        """Extend ``token``'s lease by ``lease_s`` from now; False if it does not hold the lock (any more)."""
        if not self.holds(token):
            return False
        self._deadline = self._clock() + self._lease_s
        return True

    def release(self, token: str) -> bool:
        """Give the lock back and grant it to the next in line; False if ``token`` did not hold it."""
        if not self.holds(token):
            return False
        self._owner = None
        self._grant_next()
        return True

    def abort(self, token: str) -> None:
        """Drop ``token`` wherever it is: released if held, out of the queue if waiting, refused if not seen yet."""
        if self.release(token):
            return
        claim = self._queue.pop(token, None)
        if claim is not None:
            claim.answer.set_result(False)
            return
        now = self._clock()
        self._aborted[token] = now
        # An acquire overtaken by its abort arrives within moments; one later than a lease would have lost its
        # grant to the lease anyway, so the memory of aborts lasts a lease.
        while self._aborted and next(iter(self._aborted.values())) < now - self._lease_s:
            self._aborted.popitem(last=False)

    def release_holder(self, holder: str) -> int:
        """Drop every token of ``holder``, held or queued; how many there were."""
        dropped = 0
        for token, claim in list(self._queue.items()):
            if claim.holder == holder:
                del self._queue[token]
                claim.answer.set_exception(StateLockLost(f"{self._name}: the lock's holder {holder!r} was released"))
                dropped += 1
        if self._owner is not None and self._owner.holder == holder:
            self.release(self._owner.token)
            dropped += 1
        return dropped

    def fail_waiters(self, reason: str) -> None:
        """Refuse every queued acquire (the state they wait for is gone)."""
        for claim in self._queue.values():
            claim.answer.set_exception(StateLockLost(f"{self._name}: {reason}"))
        self._queue.clear()

    def _grant_next(self) -> None:
        if self._owner is not None or not self._queue:
            return
        _, claim = self._queue.popitem(last=False)
        self._owner = claim
        self._deadline = self._clock() + self._lease_s
        claim.answer.set_result(True)

    def _expire_if_due(self) -> None:
        owner = self._owner
        if owner is None or self._clock() < self._deadline:
            return
        log.warning(
            "rayflow: %s was held by %r for more than its lease (%s s, RAYFLOW_STATE_LOCK_LEASE_S) without renewal; "
            "taking it back: that edit_state block's changes will not be saved",
            self._name,
            owner.holder,
            self._lease_s,
        )
        self.release(owner.token)
