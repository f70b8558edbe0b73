# Ported from LlamaIndex Workflows (run-llama/workflows-py), MIT License, Copyright (c) 2026 LlamaIndex Inc.
# ruff: noqa: UP007 - upstream's Union[...] annotation, kept as written
"""Port of ``packages/llama-index-integration-tests/tests/test_state_store_matrix.py`` (its ``in_memory``
column), the state-store protocol: get/set with dotted paths and defaults, ``get_state``/``set_state``,
``clear``, ``edit_state``, typed pydantic state with validation, and a snapshot round trip.

Changes beyond the imports:
- Upstream builds ``InMemoryStateStore(DictState())`` (and ``InMemoryStateStore(MyState(...))``) directly;
  here the store is the public ``Context(workflow).store`` of a workflow whose steps declare that state.
- ``test_to_dict_from_dict_roundtrip`` goes through ``Context.to_dict``/``Context.from_dict`` instead of
  ``InMemoryStateStore.to_dict``/``from_dict``.
- Left out: the SQLite/Postgres columns, and ``packages/llama-index-workflows/tests/test_state_manager.py``,
  whose two tests repeat ``test_get_set_basic_values``..``test_edit_state_basic`` below.
"""

from collections.abc import AsyncGenerator
from typing import Union

import pytest
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
)

from rayflow.context import Context
from rayflow.context.state_store import DictState, StateStore
from rayflow.decorators import step
from rayflow.events import StartEvent, StopEvent
from rayflow.workflow import Workflow

runs = pytest.mark.usefixtures("ray_env")

# -- Custom state types for testing --


class MyRandomObject:
    """Non-Pydantic object that requires custom serialization."""

    def __init__(self, name: str) -> None:
        self.name = name


class PydanticObject(BaseModel):
    """Simple Pydantic model for nested state testing."""

    name: str


class MyState(BaseModel):
    """Custom typed state with serialization logic."""

    model_config = ConfigDict(
        arbitrary_types_allowed=True,
        validate_assignment=True,
        strict=True,
    )

    # rayflow: defaults added. A Context builds its declared state type with no arguments (LlamaIndex's
    # does too); upstream hands InMemoryStateStore a ready instance instead.
    my_obj: MyRandomObject = Field(default_factory=lambda: MyRandomObject("default"))
    pydantic_obj: PydanticObject = Field(default_factory=lambda: PydanticObject(name="default"))
    name: str = ""
    age: int = 0

    @field_serializer("my_obj", when_used="always")
    def serialize_my_obj(self, my_obj: MyRandomObject) -> str:
        return my_obj.name

    @field_validator("my_obj", mode="before")
    @classmethod
    def deserialize_my_obj(cls, v: Union[str, MyRandomObject]) -> MyRandomObject:
        if isinstance(v, MyRandomObject):
            return v
        if isinstance(v, str):
            return MyRandomObject(v)
        raise ValueError(f"Invalid type for my_obj: {type(v)}")


# -- Fixtures --
# rayflow: the stores are the public ctx.store of a workflow whose state is DictState / MyState.


class DictStateWorkflow(Workflow):
    @step
    async def only(self, ctx: Context, ev: StartEvent) -> StopEvent:
        return StopEvent()


class MyStateWorkflow(Workflow):
    @step
    async def only(self, ctx: Context[MyState], ev: StartEvent) -> StopEvent:
        return StopEvent()


@pytest.fixture
async def state_store() -> AsyncGenerator[StateStore[DictState], None]:
    """A fresh DictState store for each test."""
    yield Context(DictStateWorkflow()).store


@pytest.fixture
async def custom_state_store() -> AsyncGenerator[StateStore[MyState], None]:
    """A store with custom typed state."""
    initial_state = MyState(
        my_obj=MyRandomObject("llama-index"),
        pydantic_obj=PydanticObject(name="llama-index"),
        name="John",
        age=30,
    )
    store = Context(MyStateWorkflow()).store
    # Initialize with custom state
    await store.set_state(initial_state)
    yield store


# -- Basic Operations Tests --


@runs
async def test_get_set_basic_values(state_store: StateStore[DictState]) -> None:
    """Test basic get/set operations with simple values."""
    await state_store.set("name", "John")
    await state_store.set("age", 30)

    assert await state_store.get("name") == "John"
    assert await state_store.get("age") == 30


@runs
async def test_get_with_default(state_store: StateStore[DictState]) -> None:
    """Test get with default value for missing keys."""
    result = await state_store.get("nonexistent", default=None)
    assert result is None

    result = await state_store.get("missing", default="fallback")
    assert result == "fallback"


@runs
async def test_get_missing_raises(state_store: StateStore[DictState]) -> None:
    """Test that get raises ValueError for missing key without default."""
    with pytest.raises(ValueError, match="not found"):
        await state_store.get("nonexistent")


@runs
async def test_nested_get_set(state_store: StateStore[DictState]) -> None:
    """Test nested path access with dot notation."""
    await state_store.set("nested", {"a": "b"})
    assert await state_store.get("nested.a") == "b"

    await state_store.set("nested.a", "c")
    assert await state_store.get("nested.a") == "c"


@runs
async def test_get_state_returns_copy(state_store: StateStore[DictState]) -> None:
    """Test that get_state returns a copy, not the original."""
    await state_store.set("value", 1)

    state1 = await state_store.get_state()
    state2 = await state_store.get_state()

    # Should be equal but not the same object
    assert state1.model_dump() == state2.model_dump()


@runs
async def test_set_state_replaces(state_store: StateStore[DictState]) -> None:
    """Test that set_state replaces the entire state."""
    await state_store.set("old_key", "old_value")

    new_state = DictState()
    new_state["new_key"] = "new_value"
    await state_store.set_state(new_state)

    assert await state_store.get("new_key") == "new_value"
    # Old key should be gone or inaccessible
    result = await state_store.get("old_key", default=None)
    assert result is None


@runs
async def test_clear_resets_state(state_store: StateStore[DictState]) -> None:
    """Test that clear resets to default state."""
    await state_store.set("name", "Jane")
    await state_store.set("age", 25)

    await state_store.clear()

    assert await state_store.get("name", default=None) is None
    assert await state_store.get("age", default=None) is None


# -- edit_state Context Manager Tests --


@runs
async def test_edit_state_basic(state_store: StateStore[DictState]) -> None:
    """Test basic edit_state context manager usage."""
    await state_store.set("counter", 0)

    async with state_store.edit_state() as state:
        current = state.get("counter", 0)
        state["counter"] = current + 1

    assert await state_store.get("counter") == 1


@runs
async def test_edit_state_multiple_changes(state_store: StateStore[DictState]) -> None:
    """Test multiple changes within a single edit_state."""
    async with state_store.edit_state() as state:
        state["a"] = 1
        state["b"] = 2
        state["c"] = {"nested": "value"}

    assert await state_store.get("a") == 1
    assert await state_store.get("b") == 2
    assert await state_store.get("c.nested") == "value"


@runs
async def test_edit_state_exception_handling(
    state_store: StateStore[DictState],
) -> None:
    """Test that exceptions in edit_state don't corrupt state."""
    await state_store.set("value", "original")

    with pytest.raises(ValueError, match="intentional"):
        async with state_store.edit_state() as state:
            state["value"] = "modified"
            raise ValueError("intentional error")

    # State should remain unchanged after exception
    # Note: behavior may vary - InMemory commits on context exit, SQL rolls back
    # This test documents the expected behavior


# -- Custom Typed State Tests --


@runs
async def test_custom_state_type(custom_state_store: StateStore[MyState]) -> None:
    """Test state store with custom Pydantic model."""
    state = await custom_state_store.get_state()
    assert isinstance(state, MyState)
    assert state.name == "John"
    assert state.age == 30
    assert state.my_obj.name == "llama-index"


@runs
async def test_custom_state_set_values(custom_state_store: StateStore[MyState]) -> None:
    """Test setting values on custom typed state."""
    await custom_state_store.set("name", "Jane")
    await custom_state_store.set("age", 25)

    assert await custom_state_store.get("name") == "Jane"
    assert await custom_state_store.get("age") == 25

    # Original custom fields should still be accessible
    state = await custom_state_store.get_state()
    assert state.my_obj.name == "llama-index"


@runs
async def test_custom_state_validation(custom_state_store: StateStore[MyState]) -> None:
    """Test that Pydantic validation is enforced on custom state."""
    # MyState has strict=True, so setting age to string should fail
    with pytest.raises(ValidationError):
        await custom_state_store.set("age", "not a number")


# -- Serialization Tests --


@runs
async def test_to_dict_from_dict_roundtrip() -> None:
    """Test serialization roundtrip with to_dict/from_dict."""
    # rayflow: through the context's snapshot rather than InMemoryStateStore.to_dict/from_dict.
    workflow = DictStateWorkflow()
    ctx = Context(workflow)
    await ctx.store.set("name", "John")
    await ctx.store.set("age", 30)

    data = ctx.to_dict()

    restored = Context.from_dict(workflow, data).store
    assert await restored.get("name") == "John"
    assert await restored.get("age") == 30
