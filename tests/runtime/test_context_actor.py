"""The context actor through its client (``rayflow.runtime.context_actor``): dotted paths, missing paths, atomic
edits across concurrent editors, typed state, and errors raised in the actor coming out as themselves."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator

import pytest
import ray
from pydantic import BaseModel, ConfigDict, ValidationError
from ray.exceptions import RayError

from rayflow.context.state_store import DictState, StateStore
from rayflow.errors import StateLockLost
from rayflow.runtime.actors import stop_actors
from rayflow.runtime.context_actor import ContextActor

# Ray workers cannot import this test module: its state models travel by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


class Counter(BaseModel):
    count: int = 0
    names: list[str] = []


class Strict(BaseModel):
    model_config = ConfigDict(validate_assignment=True)
    count: int = 0


class NeedsName(BaseModel):
    name: str


@pytest.fixture
async def context(ray_env: None) -> AsyncIterator[ContextActor]:
    actor = ContextActor.start(f"rayflow.test-context.{uuid.uuid4().hex[:8]}")
    await actor.ready()
    yield actor
    await stop_actors([actor.handle])


def _store(context: ContextActor, ctx_id: str) -> StateStore[Counter]:
    """The store a step or the caller has over one context of this actor."""

    async def actor() -> ContextActor:
        return context

    return StateStore(ctx_id, actor)


async def test_get_and_set_with_dotted_paths(context: ContextActor) -> None:
    await context.set("a", "user.profile.name", "ada")
    await context.set("a", "items", [10, 20])
    assert await context.get("a", "user.profile.name") == (True, "ada")
    assert await context.get("a", "user.profile") == (True, {"name": "ada"})
    assert await context.get("a", "items.1") == (True, 20)
    await context.set("a", "items.0", 11)
    assert await context.get("a", "items") == (True, [11, 20])
    # Values are copies: changing one read does not change the state.
    _, profile = await context.get("a", "user.profile")
    profile["name"] = "changed"
    assert await context.get("a", "user.profile.name") == (True, "ada")
    # Contexts are apart.
    assert await context.get("b", "user") == (False, None)
    state = await context.get_state("a")
    assert type(state) is DictState
    assert state["user"] == {"profile": {"name": "ada"}}


async def test_a_missing_path(context: ContextActor) -> None:
    await context.set("a", "user.profile.name", "ada")
    await context.set("a", "items", [1])
    assert await context.get("a", "user.profile.age") == (False, None)
    assert await context.get("a", "user.profile.name.first") == (False, None)
    assert await context.get("a", "items.3") == (False, None)
    assert await context.get("a", "nothing") == (False, None)
    store = _store(context, "a")
    with pytest.raises(ValueError) as info:
        await store.get("user.nothing")
    assert str(info.value) == "Path 'user.nothing' not found in state"
    assert await store.get("user.nothing", default=None) is None
    assert await store.get("user.nothing", default="fallback") == "fallback"


async def test_edit_state_is_atomic_across_concurrent_editors(context: ContextActor) -> None:
    await context.seed("c", Counter)

    async def editor(name: str) -> None:
        store = _store(context, "c")
        for _ in range(50):
            async with store.edit_state() as state:
                seen = state.count
                await asyncio.sleep(0)  # let the other editor's calls reach the actor in between
                state.count = seen + 1
                state.names.append(name)

    await asyncio.gather(editor("a"), editor("b"))
    state = await context.get_state("c")
    assert state.count == 100
    assert sorted(state.names) == ["a"] * 50 + ["b"] * 50
    assert set(state.names[:50]) == {"a", "b"}  # the two editors did interleave

    # An edit that raises changes nothing, and releases the state for the next editor.
    store = _store(context, "c")
    with pytest.raises(KeyError):
        async with store.edit_state() as state:
            state.count = -1
            raise KeyError("abandoned")

    async def edit_once() -> None:
        async with store.edit_state() as state:
            state.count += 1

    await asyncio.wait_for(edit_once(), timeout=30)
    assert await context.get("c", "count") == (True, 101)


async def test_an_error_raised_in_the_actor_comes_out_as_itself(context: ContextActor) -> None:
    await context.set("a", "items", [1])
    with pytest.raises(IndexError) as index_error:
        await context.set("a", "items.5", 2)
    assert type(index_error.value) is IndexError  # not Ray's wrapper, which would also be an IndexError
    assert not isinstance(index_error.value, RayError)

    await context.seed("s", Strict)
    with pytest.raises(ValidationError) as invalid:
        await context.set("s", "count", "not a number")
    assert type(invalid.value) is ValidationError
    assert "count" in str(invalid.value)
    assert await context.get("s", "count") == (True, 0)

    with pytest.raises(StateLockLost) as unlocked:
        await context.edit_end("s", "no-such-edit", Strict(count=5))  # no edit_begin: the token holds no lock
    assert type(unlocked.value) is StateLockLost
    assert await context.get("s", "count") == (True, 0)

    # The blocking read (the driver's snapshot) unwraps too.
    with pytest.raises(ValidationError) as missing:
        await context.seed("n", NeedsName)
    assert type(missing.value) is ValidationError
    with pytest.raises(ValidationError) as again:
        await asyncio.to_thread(context.get_state_sync, "n")
    assert type(again.value) is ValidationError


async def test_seed_with_a_typed_state(context: ContextActor) -> None:
    await context.seed("t", Counter)
    state = await context.get_state("t")
    assert type(state) is Counter
    assert state == Counter()
    await context.set("t", "count", 3)
    assert await context.get("t", "count") == (True, 3)
    assert await asyncio.to_thread(context.get_state_sync, "t") == Counter(count=3)

    # A snapshot's state to resume from.
    await context.seed("r", Counter, Counter(count=5, names=["x"]))
    assert await context.get_state("r") == Counter(count=5, names=["x"])
    await context.clear("r")
    assert await context.get_state("r") == Counter()  # cleared to a fresh state of its type
    await context.set_state("r", Counter(count=9))
    assert await context.get("r", "count") == (True, 9)

    # Assignments to a model that validates them are validated (and coerced).
    await context.seed("s", Strict)
    await context.set("s", "count", "7")
    assert await context.get_state("s") == Strict(count=7)

    # A context never seeded holds the dict-like default state.
    assert type(await context.get_state("plain")) is DictState
