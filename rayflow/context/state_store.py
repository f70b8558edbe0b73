"""``ctx.store``: the run's shared state, held by the context actor and reached from steps and the handler.

Every call returns a copy: mutating a value you got does not change the store until you ``set`` it, or edit it
inside ``edit_state``, which is atomic across actors. Writes are round trips to the context actor. Reads from the
caller are too; reads inside a step are served from a copy kept in the step's actor whenever that copy is known to
be current (``rayflow.runtime.state_replica``): a read sees every write that happened before the event the step
handles.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from rayflow.core.paths import set_path
from rayflow.events import DictLikeModel

__all__ = ["DictState", "StateStore", "write_path"]

StateT = TypeVar("StateT", bound=BaseModel)
_MISSING: Any = object()


class DictState(DictLikeModel):
    """The default state: any key, reachable as ``state.key`` or ``state["key"]``."""


def write_path(state: Any, path: str, value: Any) -> Any:
    """Set ``path`` in ``state`` (in place); the state to keep: a pydantic state that validates assignments is
    validated again as a whole."""
    set_path(state, path, value)
    if isinstance(state, BaseModel) and type(state).model_config.get("validate_assignment"):
        return type(state).model_validate(state)
    return state


class StateStore(Generic[StateT]):
    """The state of one context; ``get``/``set`` take dotted paths (``"user.profile.name"``)."""

    def __init__(self, ctx_id: str, actor: Callable[[], Awaitable[Any]]) -> None:
        self._ctx_id = ctx_id
        #: Resolves the store's backend: the context actor's client (the driver starts it on first use), or a step
        #: actor's local copies of states (``rayflow.runtime.state_replica``).
        self._actor = actor

    async def get(self, path: str, default: Any = _MISSING) -> Any:
        """The value at ``path``; ``default`` if given and the path is missing, else ``ValueError``."""
        found, value = await (await self._actor()).get(self._ctx_id, path)
        if found:
            return value
        if default is _MISSING:
            raise ValueError(f"Path '{path}' not found in state")
        return default

    async def set(self, path: str, value: Any) -> None:
        """Set ``path``, creating intermediate dicts."""
        await (await self._actor()).set(self._ctx_id, path, value)

    async def get_state(self) -> StateT:
        """A copy of the whole state."""
        return await (await self._actor()).get_state(self._ctx_id)

    async def set_state(self, state: StateT) -> None:
        """Replace the whole state."""
        await (await self._actor()).set_state(self._ctx_id, state)

    async def clear(self) -> None:
        """Reset the state to a fresh instance of its type."""
        await (await self._actor()).clear(self._ctx_id)

    @asynccontextmanager
    async def edit_state(self) -> AsyncIterator[StateT]:
        """Edit the state atomically: no other step writes it until the block ends (reads see the state before it).

        The edited state is written back when the block ends; if the block raises or is cancelled, nothing changes.
        The lock is held for this process and given back if it dies (see ``rayflow.runtime.context_actor``); a block
        that lost its lock that way raises ``StateLockLost`` at its end and saves nothing.
        """
        async with (await self._actor()).edit(self._ctx_id) as state:
            yield state
