"""The context actor: the shared state of every context of one workflow instance (``ctx.store``).

``ContextActor`` is its typed client, used by the driver and by step actors alike.

One actor per workflow instance holds one state object per context id; runs started with the same
``Context`` share it. Edits through ``edit_state`` are atomic: a per-context lock is held from
``edit_begin`` to ``edit_end`` or ``edit_abort``. Values cross processes as copies.
"""

from __future__ import annotations

import asyncio
from typing import Any

import ray
from pydantic import BaseModel
from ray.exceptions import RayActorError, RayTaskError

from rayflow.config import settings
from rayflow.context.state_store import DictState
from rayflow.core.paths import PathNotFound, get_path, set_path


class _ContextActor:
    def __init__(self) -> None:
        self._states: dict[str, Any] = {}
        self._types: dict[str, type[Any]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _state(self, ctx_id: str, state_type: type[Any] | None = None) -> Any:
        state = self._states.get(ctx_id)
        if state is None:
            cls = state_type or self._types.get(ctx_id) or DictState
            state = self._states[ctx_id] = cls()
        return state

    async def ready(self) -> bool:
        return True

    async def seed(self, ctx_id: str, state_type: type[Any] | None, state: Any = None) -> None:
        """Declare a context's state type, and its starting state (a snapshot being resumed)."""
        if state_type is not None:
            self._types[ctx_id] = state_type
        if state is not None:
            self._states[ctx_id] = state
        else:
            self._state(ctx_id, state_type)

    async def get(self, ctx_id: str, path: str) -> tuple[bool, Any]:
        try:
            return True, get_path(self._state(ctx_id), path)
        except PathNotFound:
            return False, None

    async def set(self, ctx_id: str, path: str, value: Any) -> None:
        async with self._lock(ctx_id):
            state = self._state(ctx_id)
            set_path(state, path, value)
            if isinstance(state, BaseModel) and type(state).model_config.get("validate_assignment"):
                self._states[ctx_id] = type(state).model_validate(state)

    async def get_state(self, ctx_id: str) -> Any:
        return self._state(ctx_id)

    async def set_state(self, ctx_id: str, state: Any) -> None:
        async with self._lock(ctx_id):
            self._states[ctx_id] = state

    async def clear(self, ctx_id: str) -> None:
        async with self._lock(ctx_id):
            self._states[ctx_id] = type(self._state(ctx_id))()

    async def edit_begin(self, ctx_id: str) -> Any:
        await self._lock(ctx_id).acquire()
        return self._state(ctx_id)

    async def edit_end(self, ctx_id: str, state: Any) -> None:
        self._states[ctx_id] = state
        self._lock(ctx_id).release()

    async def edit_abort(self, ctx_id: str) -> None:
        self._lock(ctx_id).release()

    async def release(self, ctx_id: str) -> None:
        """Forget a context (its driver-side ``Context`` object is gone)."""
        self._states.pop(ctx_id, None)
        self._types.pop(ctx_id, None)
        self._locks.pop(ctx_id, None)

    def _lock(self, ctx_id: str) -> asyncio.Lock:
        lock = self._locks.get(ctx_id)
        if lock is None:
            lock = self._locks[ctx_id] = asyncio.Lock()
        return lock

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

    async def states(self, ctx_ids: list[str]) -> dict[str, Any]:
        """The states of those of ``ctx_ids`` this actor holds (to keep them across a release of the actors)."""
        return {ctx_id: self._states[ctx_id] for ctx_id in ctx_ids if ctx_id in self._states}

    async def count(self) -> int:
        """How many contexts this actor holds a state for."""
        return len(self._states)


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

    @classmethod
    def start(cls, name: str) -> ContextActor:
        """Create the context actor ``name`` (the dispatcher does, and owns it)."""
        actor = ray.remote(_ContextActor).options(
            name=name, num_cpus=0, max_concurrency=settings().actor_max_concurrency
        )
        return cls(actor.remote())

    @property
    def handle(self) -> Any:
        """The Ray actor handle (for ``rayflow.runtime.actors.stop_actors``, and to pass to other actors)."""
        return self._handle

    async def ready(self) -> None:
        await _answer(self._handle.ready.remote())

    async def seed(self, ctx_id: str, state_type: type[Any] | None, state: Any = None) -> None:
        await _answer(self._handle.seed.remote(ctx_id, state_type, state))

    async def get(self, ctx_id: str, path: str) -> tuple[bool, Any]:
        return await _answer(self._handle.get.remote(ctx_id, path))

    async def set(self, ctx_id: str, path: str, value: Any) -> None:
        await _answer(self._handle.set.remote(ctx_id, path, value))

    async def get_state(self, ctx_id: str) -> Any:
        return await _answer(self._handle.get_state.remote(ctx_id))

    def get_state_sync(self, ctx_id: str) -> Any:
        try:
            return ray.get(self._handle.get_state.remote(ctx_id))
        except RayTaskError as err:
            raise _cause(err) from None

    async def set_state(self, ctx_id: str, state: Any) -> None:
        await _answer(self._handle.set_state.remote(ctx_id, state))

    async def clear(self, ctx_id: str) -> None:
        await _answer(self._handle.clear.remote(ctx_id))

    async def edit_begin(self, ctx_id: str) -> Any:
        return await _answer(self._handle.edit_begin.remote(ctx_id))

    async def edit_end(self, ctx_id: str, state: Any) -> None:
        await _answer(self._handle.edit_end.remote(ctx_id, state))

    async def edit_abort(self, ctx_id: str) -> None:
        await _answer(self._handle.edit_abort.remote(ctx_id))

    def release(self, ctx_id: str) -> None:
        self._handle.release.remote(ctx_id)

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

    def unwatch(self) -> None:
        """End the watches of this actor before it is stopped (a watch going on would hold up its exit)."""
        self._handle.unwatch.remote()

    async def states(self, ctx_ids: list[str]) -> dict[str, Any]:
        return await _answer(self._handle.states.remote(ctx_ids))

    async def count(self) -> int:
        return await _answer(self._handle.count.remote())
