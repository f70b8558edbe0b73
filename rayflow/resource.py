"""Resources: heavy objects (models, clients, indexes) built once per step actor and injected into steps.

``llm: Annotated[OpenAI, Resource(make_llm)]`` in a step signature makes the step actor call ``make_llm()``
the first time the step runs and pass the same object to every later call on that actor. The factory
travels to the actor, the object it builds never travels.

``settings: Annotated[DbSettings, ResourceConfig("conf.json", path_selector="db")]`` gives the step a pydantic
model validated from a JSON file. A factory may itself take resources (``Annotated[..., Resource(...)]`` or
``ResourceConfig(...)`` parameters): they are built first, each once per actor when cached.
``ResourceResolver`` (in ``rayflow.runtime.resources``) is what builds them in the actor.
"""

from __future__ import annotations

import inspect
import json
import os
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Annotated, Any, get_args, get_origin

__all__ = ["Resource", "ResourceConfig", "ResourceDefinition", "ResourceDescriptor", "resource_of"]


class ResourceDescriptor(ABC):
    """What ``Resource(...)`` or ``ResourceConfig(...)`` puts in a parameter's ``Annotated`` metadata.

    ``name`` is the key an actor caches the built object under; ``cache`` says whether it does.
    """

    name: str
    cache: bool

    def dependencies(self) -> list[ResourceDefinition]:
        """The resources this one is built from, in the order they are built."""
        return []

    def check(self, type_annotation: Any) -> None:
        """Refuse, on the driver before a run, what is wrong without building anything (a config file's content)."""
        return None  # a factory's object can only be checked by building it, which the actor does

    @abstractmethod
    def build(self, type_annotation: Any, arguments: dict[str, Any]) -> Any:
        """The object itself (or an awaitable of it), given the resources it depends on."""


class ResourceDefinition:
    """A parameter (of a step or of a resource factory) that receives a resource, and the type it is annotated with."""

    def __init__(self, name: str, resource: ResourceDescriptor, type_annotation: Any = None) -> None:
        self.name = name
        self.resource = resource
        self.type_annotation = type_annotation


def resource_of(annotation: Any) -> tuple[ResourceDescriptor, Any] | None:
    """The descriptor in an ``Annotated[T, descriptor]`` annotation and its ``T``; None for any other annotation."""
    if get_origin(annotation) is not Annotated:
        return None
    base, *extras = get_args(annotation)
    found = [e for e in extras if isinstance(e, ResourceDescriptor)]
    return (found[0], base) if found else None


class _FactoryResource(ResourceDescriptor):
    def __init__(self, factory: Callable[..., Any], cache: bool) -> None:
        self.factory = factory
        self.cache = cache
        self.name = getattr(factory, "__qualname__", type(factory).__name__)
        self._dependencies: list[ResourceDefinition] | None = None

    def dependencies(self) -> list[ResourceDefinition]:
        """The factory's parameters annotated with a resource; the others keep their defaults.

        Annotations that cannot be resolved (a name not defined in the factory's module) declare none. Read from
        the factory's signature once: an uncached resource asks for them on every step call.
        """
        if self._dependencies is None:
            self._dependencies = self._read_dependencies()
        return self._dependencies

    def _read_dependencies(self) -> list[ResourceDefinition]:
        try:
            hints = typing.get_type_hints(self.factory, include_extras=True)
            names = inspect.signature(self.factory).parameters
        except (NameError, ValueError):  # ValueError: a builtin without a signature, such as ``dict``
            return []
        found = []
        for name in names:
            resource = resource_of(hints.get(name))
            if resource is not None:
                found.append(ResourceDefinition(name, resource[0], resource[1]))
        return found

    def build(self, type_annotation: Any, arguments: dict[str, Any]) -> Any:
        return self.factory(**arguments)


def Resource(factory: Callable[..., Any], cache: bool = True) -> Any:
    """Mark a parameter as built by ``factory`` (sync or async) once per actor (``cache=False``: once per call).

    The factory's own parameters annotated with ``Resource(...)`` or ``ResourceConfig(...)`` receive those
    resources, built before it. Within one step call, an uncached resource needed twice is built once.
    """
    return _FactoryResource(factory, cache)


class _ConfigResource(ResourceDescriptor):
    def __init__(self, config_file: str, path_selector: str | None, label: str | None, description: str | None) -> None:
        if os.path.splitext(config_file)[1] != ".json":
            raise ValueError("Only JSON files can be used to load Pydantic-based resources.")
        self.config_file = os.path.abspath(config_file)
        self._given = config_file
        self.path_selector = path_selector
        self.label = label
        self.description = description
        self.name = config_file if path_selector is None else f"{config_file}.{path_selector}"
        self.cache = True

    def data(self) -> dict[str, Any]:
        """The JSON object the model is validated from: the file's, or the one ``path_selector`` selects."""
        if not os.path.isfile(self.config_file):
            raise FileNotFoundError(f"No such file: {self._given}")
        with open(self.config_file, encoding="utf-8") as source:
            data: Any = json.load(source)
        walked: list[str] = []
        for key in self.path_selector.split(".") if self.path_selector is not None else ():
            walked.append(key)
            data = data.get(key) if isinstance(data, dict) else None
            if not isinstance(data, dict):
                raise ValueError(
                    f"Expected dictionary for configuration from {self.config_file} at path {'.'.join(walked)}, "
                    f"got: {type(data)}"
                )
        return typing.cast(dict[str, Any], data)

    def check(self, type_annotation: Any) -> None:
        self.build(type_annotation, {})

    def build(self, type_annotation: Any, arguments: dict[str, Any]) -> Any:
        validate = getattr(type_annotation, "model_validate", None)
        if validate is None:
            raise TypeError(
                f"ResourceConfig({self._given!r}) must annotate a pydantic model type, got {type_annotation!r}"
            )
        return validate(self.data())


def ResourceConfig(
    config_file: str,
    path_selector: str | None = None,
    label: str | None = None,
    description: str | None = None,
) -> Any:
    """Mark a parameter ``Annotated[Model, ResourceConfig(...)]`` as ``Model`` validated from a JSON file.

    ``path_selector`` (``"db"``, ``"services.db"``) picks a nested object; every key on the path must name an
    object, or the run is refused with the path named. ``label`` and ``description`` are for display only.
    A file not named ``*.json`` is refused at once with ``ValueError``.

    A relative ``config_file`` is resolved here, against the current directory of the process that makes the
    descriptor (the driver, where the workflow class is defined), so step actors, whose working directory may
    differ on a cluster, read the same absolute path. LlamaIndex resolves it against the current directory
    when the config is first read; the two agree unless the directory changes in between. The file must be
    readable at that path on every node that runs the step. Its content is checked on the driver at the first
    ``run()`` (``WorkflowValidationError``), then read by each step actor when the step first runs there; the
    model is cached per actor under ``config_file`` (and ``path_selector``).
    """
    return _ConfigResource(config_file, path_selector, label, description)
