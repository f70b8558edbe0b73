"""The resources one step actor has built: what a step call's ``Annotated[..., Resource(...)]`` parameters receive.

A step actor keeps one ``ResourceResolver`` for its lifetime. Cached resources are built the first time a call
needs them and kept, by name, for every later call of any step run on the actor; uncached ones are built for
each call, once per call however many parameters need them. A factory's own resources are built before it,
depth first in parameter order; a resource that needs itself, directly or not, is refused.
"""

from __future__ import annotations

import inspect
from typing import Any

from rayflow.resource import ResourceDefinition

__all__ = ["ResourceResolver"]


class ResourceResolver:
    """Builds and caches the resources of the steps run on one actor."""

    def __init__(self) -> None:
        self._cached: dict[str, Any] = {}

    async def arguments(self, definitions: list[ResourceDefinition]) -> dict[str, Any]:
        """The objects one step call receives, by parameter name."""
        call: dict[str, Any] = {}
        return {d.name: await self._get(d, call, []) for d in definitions}

    async def _get(self, definition: ResourceDefinition, call: dict[str, Any], building: list[str]) -> Any:
        resource = definition.resource
        if resource.name in building:
            chain = " -> ".join([*building, resource.name])
            raise ValueError(f"Circular resource dependency detected: {chain}")
        if resource.cache and resource.name in self._cached:
            return self._cached[resource.name]
        if resource.name in call:
            return call[resource.name]
        building.append(resource.name)
        try:
            arguments = {d.name: await self._get(d, call, building) for d in resource.dependencies()}
        finally:
            building.pop()
        value = resource.build(definition.type_annotation, arguments)
        if inspect.isawaitable(value):  # an async factory
            value = await value
        if resource.cache:
            self._cached[resource.name] = value
        call[resource.name] = value
        return value
