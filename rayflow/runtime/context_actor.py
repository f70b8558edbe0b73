"""The context actor: the shared state of every context of one workflow instance (``ctx.store``).

``ContextActor`` is its typed client, used by the driver and by step actors alike.

One actor per workflow instance holds one state object per context id; runs started with the same
``Context`` share it. Values cross processes as copies.

Each context's state has a version: a number raised by every write (``set``, ``set_state``, ``clear``, an edit's end,
a seed), returned by the write, and never lowered for that context, not even by a new context actor (a seed takes the
highest version its caller has seen as a floor). Step actors keep copies of states tagged with their versions and ask
for a state again only when an event needs a newer one (``rayflow.runtime.state_replica``); ``read`` serves them.

Edits through ``edit_state`` are atomic: each context has a lock (``rayflow.runtime.state_lock``), held from
``edit_begin`` to ``edit_end`` or ``edit_abort``, that ``set``, ``set_state`` and ``clear`` also take; ``get`` and
``get_state`` read without it (they see the state before the edit in progress). The lock is a lease held by a token,
for a named holder (the editing process's Ray actor name, or ``"driver"``), so it cannot outlive its editor:

- an editor cancelled while its ``edit_begin`` is in flight aborts its token; the grant, when it comes, is dropped;
- ``release_holder(name)`` drops every lock a process holds or waits for; the dispatcher calls it for a step actor
  that died, before it starts the replacement (which may bear the same name);
- as a last resort, a lease not renewed for ``RAYFLOW_STATE_LOCK_LEASE_S`` (300 s) is taken back with a warning when
  another editor waits. Editors renew from a background task while their block is open, so a slow edit keeps its
  lock; only a dead holder nobody released, or one that blocks its own event loop that long, loses it. An edit that
  lost its lock raises ``StateLockLost`` at its end and saves nothing: atomicity is never traded for liveness.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import ray
from ray import cloudpickle
from ray.exceptions import RayActorError, RayTaskError

from rayflow.config import settings
from rayflow.context.state_store import DictState, write_path
from rayflow.core.paths import PathNotFound, get_path
from rayflow.errors import StateLockLost
from rayflow.runtime.placement import here
from rayflow.runtime.state_lock import LeasedLock, LockStatus

__all__ = ["ContextActor", "LockStatus", "Oversized", "holder_name"]

#: The holder name of every lock the context actor takes for itself (``set``, ``set_state``, ``clear``).
_SELF = "context actor"


class _ContextActor:
    def __init__(self, lease_s: float, copy_max_bytes: int) -> None:
        self._lease_s = lease_s
        self._copy_max_bytes = copy_max_bytes
        self._sizes: dict[str, tuple[int, int]] = {}
        self._states: dict[str, Any] = {}
        self._types: dict[str, type[Any]] = {}
        self._locks: dict[str, LeasedLock] = {}
        self._versions: dict[str, int] = {}

    def _wrote(self, ctx_id: str) -> int:
        """Count a write to the context's state; its new version."""
        version = self._versions[ctx_id] = self._versions.get(ctx_id, 0) + 1
        return version

    def _state(self, ctx_id: str, state_type: type[Any] | None = None) -> Any:
        state = self._states.get(ctx_id)
        if state is None:
            cls = state_type or self._types.get(ctx_id) or DictState
            state = self._states[ctx_id] = cls()
        return state

    async def ready(self) -> bool:
        return True

    async def seed(self, ctx_id: str, state_type: type[Any] | None, state: Any = None, floor: int = 0) -> int:
        """Declare a context's state type, and its starting state (a snapshot being resumed); its version, above
        ``floor`` (the highest version the caller has seen of this context, maybe from an earlier context actor)."""
        if state_type is not None:
            self._types[ctx_id] = state_type
        if state is not None:
            self._states[ctx_id] = state
        else:
            self._state(ctx_id, state_type)
        self._versions[ctx_id] = max(self._versions.get(ctx_id, 0), floor)
        return self._wrote(ctx_id)

    async def get(self, ctx_id: str, path: str) -> tuple[bool, Any, int]:
        version = self._versions.get(ctx_id, 0)
        try:
            return True, get_path(self._state(ctx_id), path), version
        except PathNotFound:
            return False, None, version

    async def read(self, ctx_id: str, have: int, whole: bool = False) -> tuple[int, Any]:
        """The context's version, and its state unless the caller's copy is at that version already (``have``); a
        state too large to copy into step actors comes as ``Oversized`` unless ``whole`` is asked for."""
        state = self._state(ctx_id)
        version = self._versions.get(ctx_id, 0)
        if version == have:
            return version, None
        if not whole:
            nbytes = self._size(ctx_id, version, state)
            if nbytes > self._copy_max_bytes:
                return version, Oversized(nbytes)
        return version, state

    def _size(self, ctx_id: str, version: int, state: Any) -> int:
        """The pickled size of the context's state at ``version`` (measured once per version)."""
        known = self._sizes.get(ctx_id)
        if known is not None and known[0] == version:
            return known[1]
        try:
            nbytes = len(cloudpickle.dumps(state))
        except Exception:
            nbytes = self._copy_max_bytes + 1  # cannot tell: not worth a copy
        self._sizes[ctx_id] = (version, nbytes)
        return nbytes

    async def set(self, ctx_id: str, path: str, value: Any) -> int:
        async with self._locked(ctx_id):
            self._states[ctx_id] = write_path(self._state(ctx_id), path, value)
            return self._wrote(ctx_id)

    async def get_state(self, ctx_id: str) -> Any:
        return self._state(ctx_id)

    async def set_state(self, ctx_id: str, state: Any) -> int:
        async with self._locked(ctx_id):
            self._states[ctx_id] = state
            return self._wrote(ctx_id)

    async def clear(self, ctx_id: str) -> int:
        async with self._locked(ctx_id):
            self._states[ctx_id] = type(self._state(ctx_id))()
            return self._wrote(ctx_id)

    async def edit_begin(self, ctx_id: str, token: str, holder: str) -> tuple[Any, float, int] | None:
        """Take the context's lock for ``token``: the state, the lease's seconds and the state's version, or None if
        the token was aborted before its turn."""
        if not await self._lock(ctx_id).acquire(token, holder):
            return None
        return self._state(ctx_id), self._lease_s, self._versions.get(ctx_id, 0)

    async def edit_renew(self, ctx_id: str, token: str) -> bool:
        return self._lock(ctx_id).renew(token)

    async def edit_end(self, ctx_id: str, token: str, state: Any) -> int:
        lock = self._lock(ctx_id)
        if not lock.holds(token):
            raise StateLockLost(
                f"context {ctx_id!r}: this edit_state block no longer holds the state's lock (its lease of "
                f"{self._lease_s} s ran out, or its holder was released); its changes were not saved"
            )
        self._states[ctx_id] = state
        lock.release(token)
        return self._wrote(ctx_id)

    async def edit_abort(self, ctx_id: str, token: str) -> None:
        self._lock(ctx_id).abort(token)

    async def release_holder(self, holder: str) -> int:
        """Drop every lock ``holder`` holds or waits for, in every context; how many."""
        return sum(lock.release_holder(holder) for lock in self._locks.values())

    async def lock_status(self, ctx_id: str) -> LockStatus:
        return self._lock(ctx_id).status()

    async def release(self, ctx_id: str) -> None:
        """Forget a context (its driver-side ``Context`` object is gone)."""
        self._states.pop(ctx_id, None)
        self._types.pop(ctx_id, None)
        self._versions.pop(ctx_id, None)
        self._sizes.pop(ctx_id, None)
        lock = self._locks.pop(ctx_id, None)
        if lock is not None:
            lock.fail_waiters("the context was released")

    def _lock(self, ctx_id: str) -> LeasedLock:
        lock = self._locks.get(ctx_id)
        if lock is None:
            lock = self._locks[ctx_id] = LeasedLock(f"the state lock of context {ctx_id!r}", self._lease_s)
        return lock

    @asynccontextmanager
    async def _locked(self, ctx_id: str) -> AsyncIterator[None]:
        lock = self._lock(ctx_id)
        token = uuid.uuid4().hex
        await lock.acquire(token, _SELF)
        try:
            yield
        finally:
            lock.release(token)

    #: Set by ``unwatch``; made by the first ``watch``.
    _unwatched: asyncio.Event | None = None

    async def watch(self) -> None:
        """Answers only after ``unwatch``: until then the call fails when this actor dies, which is how its owner
        learns of it. (Ray lets a running call finish before an actor exits, so stopping it calls ``unwatch`` first.)"""
        if self._unwatched is None:
            self._unwatched = asyncio.Event()
        await self._unwatched.wait()

    async def unwatch(self) -> None:
        """End every ``watch`` call: this actor is about to be stopped."""
        if self._unwatched is None:
            self._unwatched = asyncio.Event()
        self._unwatched.set()

    async def reset(self) -> None:
        """Forget every context, lock and watch: the actor is parked for another workflow instance
        (``rayflow.runtime.park``). Waiting editors fail; watches answer as after ``unwatch``; new ones wait again."""
        for lock in self._locks.values():
            lock.fail_waiters("the workflow's actors were released")
        self._states, self._types, self._locks = {}, {}, {}
        self._versions, self._sizes = {}, {}
        if self._unwatched is not None:
            self._unwatched.set()
        self._unwatched = asyncio.Event()

    async def states(self, ctx_ids: list[str]) -> dict[str, Any]:
        """The states of those of ``ctx_ids`` this actor holds (to keep them across a release of the actors)."""
        return {ctx_id: self._states[ctx_id] for ctx_id in ctx_ids if ctx_id in self._states}

    async def count(self) -> int:
        """How many contexts this actor holds a state for."""
        return len(self._states)


@dataclass(frozen=True)
class Oversized:
    """Stands for a state too large to copy into step actors (``RAYFLOW_STATE_COPY_MAX_BYTES``): reads of it go to
    the context actor, path by path."""

    nbytes: int


def holder_name() -> str:
    """The name this process holds state locks under: its Ray actor name (its id when unnamed), else ``"driver"``."""
    runtime = ray.get_runtime_context()
    actor_id = runtime.get_actor_id()  # None outside an actor (asking a driver for its actor name logs a warning)
    if actor_id is None:
        return "driver"
    return runtime.get_actor_name() or actor_id


def _cause(err: RayTaskError) -> BaseException:
    cause = err.cause
    return cause if isinstance(cause, BaseException) else err


async def _answer(ref: Any) -> Any:
    """The call's result; an error raised in the context actor comes out as itself, not a Ray wrapper."""
    try:
        return await ref
    except RayTaskError as err:
        raise _cause(err) from None


class ContextActor:
    """Typed client of a workflow's context actor; every call names the context it is about."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self._lease_s = settings().state_lock_lease_s  # the actor's own, once an edit began

    @classmethod
    def start(cls, name: str, *, lease_s: float | None = None) -> ContextActor:
        """Create the context actor ``name`` on the caller's node (the dispatcher creates it, and owns it); its state
        locks are leased for ``lease_s`` seconds (default ``RAYFLOW_STATE_LOCK_LEASE_S``)."""
        actor = ray.remote(_ContextActor).options(
            name=name, num_cpus=0, max_concurrency=settings().actor_max_concurrency, scheduling_strategy=here()
        )
        config = settings()
        return cls(actor.remote(config.state_lock_lease_s if lease_s is None else lease_s, config.state_copy_max_bytes))

    @property
    def handle(self) -> Any:
        """The Ray actor handle (for ``rayflow.runtime.actors.stop_actors``, and to pass to other actors)."""
        return self._handle

    async def ready(self) -> None:
        await _answer(self._handle.ready.remote())

    async def seed(self, ctx_id: str, state_type: type[Any] | None, state: Any = None, floor: int = 0) -> int:
        """Declare the context (its state type, the state it starts from); its state's version, above ``floor``."""
        return await _answer(self._handle.seed.remote(ctx_id, state_type, state, floor))

    async def get(self, ctx_id: str, path: str) -> tuple[bool, Any]:
        found, value, _ = await self.get_versioned(ctx_id, path)
        return found, value

    async def get_versioned(self, ctx_id: str, path: str) -> tuple[bool, Any, int]:
        """Whether ``path`` exists, its value, and the state's version."""
        return await _answer(self._handle.get.remote(ctx_id, path))

    async def read(self, ctx_id: str, have: int, whole: bool = False) -> tuple[int, Any]:
        """The state's version, and the state unless it is at version ``have`` (then None); ``Oversized`` instead of
        a state above ``RAYFLOW_STATE_COPY_MAX_BYTES`` unless ``whole``."""
        return await _answer(self._handle.read.remote(ctx_id, have, whole))

    async def set(self, ctx_id: str, path: str, value: Any) -> int:
        """Set ``path``; the state's new version."""
        return await _answer(self._handle.set.remote(ctx_id, path, value))

    async def get_state(self, ctx_id: str) -> Any:
        return await _answer(self._handle.get_state.remote(ctx_id))

    def get_state_sync(self, ctx_id: str) -> Any:
        try:
            return ray.get(self._handle.get_state.remote(ctx_id))
        except RayTaskError as err:
            raise _cause(err) from None

    async def set_state(self, ctx_id: str, state: Any) -> int:
        """Replace the state; its new version."""
        return await _answer(self._handle.set_state.remote(ctx_id, state))

    async def clear(self, ctx_id: str) -> int:
        """Reset the state; its new version."""
        return await _answer(self._handle.clear.remote(ctx_id))

    @asynccontextmanager
    async def edit(self, ctx_id: str, saved: Callable[[int, int, Any], None] | None = None) -> AsyncIterator[Any]:
        """Hold the context's lock for one edit (``edit_state``): yields the state; on a clean exit it is written
        back and the lock released, on an error (or a cancel) the lock is released and nothing changes. The lease
        is renewed in the background while the block is open. ``saved(before, after, state)`` hears of a clean
        exit: the versions the state had when the edit began and has now."""
        token = uuid.uuid4().hex
        state, before = await self.edit_begin(ctx_id, token)
        renewing = asyncio.get_running_loop().create_task(self._renew(ctx_id, token))
        try:
            yield state
        except BaseException:
            renewing.cancel()
            await self.edit_abort(ctx_id, token)
            raise
        renewing.cancel()
        after = await self.edit_end(ctx_id, token, state)
        if saved is not None:
            saved(before, after, state)

    async def edit_begin(self, ctx_id: str, token: str, holder: str | None = None) -> tuple[Any, int]:
        """Wait for the context's lock, to be held by ``token`` (unique per edit) for ``holder`` (default: this
        process, ``holder_name()``), and return the state to edit with its version.

        A caller that stops waiting (cancelled, or the call failed on the way) aborts the token, so a grant that
        comes later is given back at once instead of holding the lock for nobody.
        """
        ref = self._handle.edit_begin.remote(ctx_id, token, holder or holder_name())
        try:
            answer = await _answer(ref)
        except BaseException:
            self._handle.edit_abort.remote(ctx_id, token)
            raise
        if answer is None:
            raise StateLockLost(f"context {ctx_id!r}: the edit was aborted before it got the state's lock")
        state, self._lease_s, version = answer
        return state, version

    async def edit_renew(self, ctx_id: str, token: str) -> bool:
        """Extend ``token``'s lease; False if it lost the lock."""
        return await _answer(self._handle.edit_renew.remote(ctx_id, token))

    async def edit_end(self, ctx_id: str, token: str, state: Any) -> int:
        """Write ``state`` back and release ``token``'s lock; the state's new version. ``StateLockLost`` (nothing
        written) if it lost the lock."""
        return await _answer(self._handle.edit_end.remote(ctx_id, token, state))

    async def edit_abort(self, ctx_id: str, token: str) -> None:
        """Drop ``token``, held or still on its way: nothing is written, the lock goes to the next editor."""
        await _answer(self._handle.edit_abort.remote(ctx_id, token))

    async def release_holder(self, holder: str) -> int:
        """Drop every lock ``holder`` (a Ray actor name) holds or waits for, in every context; how many.

        For a process that died holding an edit: the dispatcher calls it when it replaces a dead step actor.
        """
        return await _answer(self._handle.release_holder.remote(holder))

    async def lock_status(self, ctx_id: str) -> LockStatus:
        """Who holds the context's lock and who waits for it (for diagnostics)."""
        return await _answer(self._handle.lock_status.remote(ctx_id))

    async def _renew(self, ctx_id: str, token: str) -> None:
        """Renew ``token``'s lease every third of it until it is cancelled or the lock is lost."""
        try:
            while True:
                await asyncio.sleep(self._lease_s / 3)
                if not await self.edit_renew(ctx_id, token):
                    return
        except Exception:  # the context actor is gone: the edit's end will say so
            return

    def release(self, ctx_id: str) -> Any:
        """Forget a context, without waiting; the ref answers once it is forgotten."""
        return self._handle.release.remote(ctx_id)

    async def watch(self) -> bool:
        """Wait until the context actor is gone (True: it died or was killed) or ``unwatch`` was called (False)."""
        try:
            await self.watching()
        except RayActorError:
            return True
        return False

    def watching(self) -> Any:
        """A Ray object ref that is ready once the context actor is gone (with an error) or ``unwatch`` was called:
        a liveness check that costs no call (``ray.wait([ref], timeout=0)``)."""
        return self._handle.watch.remote()

    async def unwatch(self) -> None:
        """End the watches of this actor before it is stopped (a watch going on would hold up its exit); returns once
        they are ended, or at once if the actor is gone. Awaited: Ray may run the stop of an async actor before a
        call sent just ahead of it, and the stop then waits for the watches until it is killed."""
        try:
            await asyncio.wait_for(self._handle.unwatch.remote(), settings().shutdown_grace_s)
        except (RayActorError, TimeoutError):
            pass  # gone, or not answering: the stop kills it after the grace period

    async def reset(self) -> None:
        """Forget every context, lock and watch (the actor is parked for another workflow instance)."""
        await _answer(self._handle.reset.remote())

    async def states(self, ctx_ids: list[str]) -> dict[str, Any]:
        return await _answer(self._handle.states.remote(ctx_ids))

    async def count(self) -> int:
        return await _answer(self._handle.count.remote())
