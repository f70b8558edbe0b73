"""``ResourceResolver``, a step actor's resources, driven directly: no Ray, no workflow."""

from __future__ import annotations

from typing import Annotated, Any

import pytest

from rayflow.resource import Resource, ResourceDefinition, resource_of
from rayflow.runtime.resources import ResourceResolver

order: list[str] = []


def make_ping(pong: Annotated[str, Resource(make_pong)]) -> str:
    return "ping"


def make_pong(ping: Annotated[str, Resource(make_ping)]) -> str:
    return "pong"


def make_leaf() -> str:
    order.append("leaf")
    return "leaf"


async def make_middle(leaf: Annotated[str, Resource(make_leaf)]) -> str:
    order.append("middle")
    return f"middle({leaf})"


def make_top(middle: Annotated[str, Resource(make_middle)], leaf: Annotated[str, Resource(make_leaf)]) -> str:
    order.append("top")
    return f"top({middle}, {leaf})"


def parameter(name: str, annotation: Any) -> ResourceDefinition:
    found = resource_of(annotation)
    assert found is not None
    return ResourceDefinition(name, *found)


async def test_dependencies_are_built_first_depth_first_each_once_per_actor() -> None:
    order.clear()
    resolver = ResourceResolver()
    top = parameter("top", Annotated[str, Resource(make_top)])
    leaf = parameter("leaf", Annotated[str, Resource(make_leaf)])
    assert await resolver.arguments([top, leaf]) == {"top": "top(middle(leaf), leaf)", "leaf": "leaf"}
    assert await resolver.arguments([top]) == {"top": "top(middle(leaf), leaf)"}
    assert order == ["leaf", "middle", "top"]


async def test_a_resource_that_needs_itself_is_refused_with_the_chain() -> None:
    resolver = ResourceResolver()
    ping = parameter("ping", Annotated[str, Resource(make_ping)])
    with pytest.raises(
        ValueError, match=r"^Circular resource dependency detected: make_ping -> make_pong -> make_ping$"
    ):
        await resolver.arguments([ping])


async def test_a_factory_without_a_signature_takes_no_resources() -> None:
    resolver = ResourceResolver()
    assert await resolver.arguments([parameter("table", Annotated[dict, Resource(dict)])]) == {"table": {}}
