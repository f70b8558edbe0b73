"""Resources: heavy objects (models, clients, indexes) built once per step actor and injected into steps.

``llm: Annotated[OpenAI, Resource(make_llm)]`` in a step signature makes the step actor call ``make_llm()``
the first time the step runs and pass the same object to every later call on that actor. The factory
travels to the actor, the object it builds never travels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Resource", "ResourceDefinition", "ResourceDescriptor"]


class ResourceDescriptor:
    """What ``Resource(...)`` puts in a step parameter's ``Annotated`` metadata: the factory and whether to cache."""

    def __init__(self, factory: Callable[[], Any], cache: bool) -> None:
        self.factory = factory
        self.cache = cache
        self.name = getattr(factory, "__qualname__", repr(factory))

    def build(self) -> Any:
        return self.factory()


def Resource(factory: Callable[[], Any], cache: bool = True) -> Any:
    """Mark a step parameter as built by ``factory`` once per actor (``cache=False``: once per call)."""
    return ResourceDescriptor(factory, cache)


class ResourceDefinition:
    """A step parameter that receives a resource."""

    def __init__(self, name: str, resource: ResourceDescriptor) -> None:
        self.name = name
        self.resource = resource
