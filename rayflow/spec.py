"""The compiled workflow: what a ``Workflow`` class is, read once, as the data every other part of rayflow takes.

``@step`` reads each step's signature into a ``StepConfig`` when the class body runs. ``WorkflowSpec.of(cls)``
then reads the class once (per class, again only after ``add_step``): its steps, their start and stop events,
the event classes they accept, return or name in their code, the typed state, and the routes the dispatcher
follows. The context, the handler's side of a run, the step actors and the validation all take the spec; the
dispatcher takes only its ``routes``, which are plain strings and numbers, so it never loads user code.

The one rule of delivery, "step S receives events of type E" (E is a type S declares, or a subclass of one when S
sets ``accept_event_subclasses``), is ``RoutingTable.accepts`` over type keys; ``WorkflowSpec.accepts`` asks it.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import weakref
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any

from rayflow.codec import EventCodec, qualified_name
from rayflow.collect import Collect
from rayflow.core.routing import RoutingTable, StepRoute
from rayflow.errors import (
    WorkflowConfigurationError,
    WorkflowRuntimeError,
    WorkflowStepDoesNotExistError,
    WorkflowValidationError,
)
from rayflow.events import BUILTIN_EVENTS, Event, InputRequiredEvent, StartEvent, StopEvent
from rayflow.resource import ResourceDefinition
from rayflow.retry_policy import RetryPolicy

__all__ = ["StepConfig", "StepSpec", "WorkflowSpec", "attach_config", "config_of", "is_event_type", "steps_of"]

#: Attribute of a step function that holds its ``StepConfig``.
_CONFIG_ATTR = "_step_config"


@dataclasses.dataclass
class StepConfig:
    """What ``@step`` learned about a step from its signature and code."""

    accepted_events: list[type[Event]]
    event_name: str
    return_types: list[Any]
    context_parameter: str | None
    num_workers: int
    retry_policy: RetryPolicy | None
    resources: list[ResourceDefinition]
    context_state_type: type[Any] | None = None
    accept_event_subclasses: bool = False
    role: str = "step"
    catch_error_for_steps: list[str] | None = None
    catch_error_max_recoveries: int = 1
    #: True when the step's code calls ``collect_events``: its events of one run go to one actor.
    collects: bool = False
    #: True when the step's code reads ``self`` (or calls ``super()``): it may depend on its actor's copy of the
    #: workflow, so no other step's actor runs it.
    uses_self: bool = True
    #: Seconds one invocation may take before it is stopped (``@step(timeout=...)``); None: no limit.
    timeout: float | None = None
    #: The most invocations going at once across every run of the instance (``@step(max_in_flight=...)``).
    max_in_flight: int | None = None
    #: Actors the step's pool starts with (``@step(warm=...)``), at most ``num_workers``.
    warm: int = 1
    #: The event types the step may return in a list (``-> list[A] | B``: A): such a list fans out as a stream.
    fan_out_types: list[Any] = dataclasses.field(default_factory=list)
    #: The types the step may return on their own, not in a list (``-> list[A] | B``: B).
    bare_return_types: list[Any] = dataclasses.field(default_factory=list)
    #: For a step with a ``list[E]`` parameter (``event_name``): how it joins a stream's events.
    join: Collect | None = None
    #: For a step with several event parameters, (name, types) each in order: it runs once one of each arrived.
    slots: list[tuple[str, list[type[Event]]]] | None = None
    #: GPUs each actor of the step's pool reserves (``@step(num_gpus=...)``).
    num_gpus: float = 0.0
    #: Graph checks this step is exempt from (``@step(skip_graph_checks=["reachability"])``).
    skip_graph_checks: list[str] = dataclasses.field(default_factory=list)


def is_event_type(tp: Any) -> bool:
    """Whether ``tp`` is an Event class (not an instance, not ``None``)."""
    return isinstance(tp, type) and issubclass(tp, Event)


def attach_config(func: Callable[..., Any], config: StepConfig) -> None:
    """Mark ``func`` as a step with ``config`` (what ``@step`` does)."""
    setattr(func, _CONFIG_ATTR, config)


def config_of(func: Any) -> StepConfig | None:
    """The ``StepConfig`` of a step function, None for anything else."""
    config = getattr(func, _CONFIG_ATTR, None)
    return config if isinstance(config, StepConfig) else None


@dataclasses.dataclass(frozen=True)
class StepSpec:
    """One step: its name, its config, and, for a free function added with ``@step(workflow=...)``, the function
    (a method is looked up on the workflow instance each step actor holds)."""

    name: str
    config: StepConfig
    function: Callable[..., Any] | None = None


def _names_in(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names_in(const)
    return names


def _classes_named_by(func: Callable[..., Any]) -> set[type]:
    """Event classes a step's code names (``ctx.wait_for_event(Answer)``): globals of its module, or, for classes
    defined in a function, its closure."""
    func = inspect.unwrap(getattr(func, "__func__", func))
    cells = dict(zip(func.__code__.co_freevars, func.__closure__ or (), strict=True))
    found: set[type] = set()
    for name in _names_in(func.__code__) | set(cells):
        try:
            value = cells[name].cell_contents if name in cells else func.__globals__.get(name)
        except ValueError:  # an empty cell
            continue
        if isinstance(value, type) and issubclass(value, Event):
            found.add(value)
    return found


def steps_of(cls: type) -> dict[str, Callable[..., Any]]:
    """The step functions of workflow class ``cls`` by name (methods, and free functions added to it)."""
    return {name: func for name, (_, func, _) in _steps_of(cls).items()}


def _steps_of(cls: type) -> dict[str, tuple[StepConfig, Callable[..., Any], bool]]:
    """Each step of ``cls``, in definition order (a subclass overrides a base's step of the same name): its config,
    its function, and whether it is a free function added with ``add_step``."""
    steps: dict[str, tuple[StepConfig, Callable[..., Any], bool]] = {}
    for klass in reversed(cls.__mro__):
        for name, attr in vars(klass).items():
            config = config_of(attr) if callable(attr) else None
            if config is not None:
                steps[name] = (config, attr, False)
        for name, func in free_steps(klass).items():
            config = config_of(func)
            assert config is not None
            steps[name] = (config, func, True)
    return steps


_FREE_STEPS: weakref.WeakKeyDictionary[type, dict[str, Callable[..., Any]]] = weakref.WeakKeyDictionary()
_SPECS: weakref.WeakKeyDictionary[type, WorkflowSpec] = weakref.WeakKeyDictionary()


def free_steps(cls: type) -> dict[str, Callable[..., Any]]:
    """The free functions added to exactly ``cls`` with ``@step(workflow=cls)``."""
    return _FREE_STEPS.get(cls, {})


def add_free_step(cls: type, func: Callable[..., Any]) -> None:
    """Add ``func`` as a step of ``cls`` (and of its subclasses); specs compiled before are dropped."""
    _FREE_STEPS.setdefault(cls, {})[func.__name__] = func
    _SPECS.clear()


def join_sources(configs: Mapping[str, StepConfig]) -> dict[str, frozenset[str]]:
    """For each join (a step with a ``list[E]`` parameter), the fan-out steps whose streams it joins: those whose
    list's events lead, at the same level, to an event the join takes. The level of a list is the events of the
    list and what steps make of them, through any step but a join (which ends the level) or a fan-out (whose own
    list starts a level below; its single returns, and what its joins return, stay at this one)."""

    def takes(config: StepConfig, tp: Any) -> bool:
        if tp in config.accepted_events:
            return True
        return config.accept_event_subclasses and isinstance(tp, type) and issubclass(tp, tuple(config.accepted_events))

    joins = {name: config for name, config in configs.items() if config.join is not None}
    levels: dict[str, set[Any]] = {}

    def level(source: str) -> set[Any]:
        if source in levels:
            return levels[source]
        seen: set[Any] = set()
        levels[source] = seen  # a loop back to the source ends here
        todo = list(configs[source].fan_out_types)
        while todo:
            tp = todo.pop()
            if tp in seen or not is_event_type(tp):
                continue
            seen.add(tp)
            for name, config in configs.items():
                if config.role == "catch_error" or config.join is not None or not takes(config, tp):
                    continue
                if config.fan_out_types:
                    todo.extend(config.bare_return_types)
                    inner = level(name)
                    todo.extend(t for j, c in joins.items() if any(takes(c, x) for x in inner) for t in c.return_types)
                else:
                    todo.extend(config.return_types)
        return seen

    found: dict[str, set[str]] = {name: set() for name in joins}
    for source, config in configs.items():
        if not config.fan_out_types:
            continue
        reached = level(source)
        for name, join in joins.items():
            if any(takes(join, tp) for tp in reached):
                found[name].add(source)
    return {name: frozenset(sources) for name, sources in found.items()}


def _is_stop(tp: Any) -> bool:
    return is_event_type(tp) and issubclass(tp, StopEvent)


def _one_of(found: set[type], kind: str, verb: str, workflow: str) -> type:
    if not found:
        raise WorkflowConfigurationError(
            f"At least one Event of type {kind} must be {verb} by any step. "
            f"(Workflow '{workflow}' has no @step that {'accepts' if verb == 'received' else 'returns'} {kind}.)"
        )
    if len(found) > 1:
        raise WorkflowConfigurationError(
            f"Only one type of {kind} is allowed per workflow, found {len(found)}: {found} in workflow '{workflow}'."
        )
    return found.pop()


@dataclasses.dataclass(frozen=True, eq=False)
class WorkflowSpec:
    """A workflow class, compiled: picklable, built once per class by ``WorkflowSpec.of``."""

    name: str
    steps: Mapping[str, StepSpec]
    start_event: type[StartEvent]
    stop_event: type[StopEvent]
    #: Every event class of the workflow (built-in, accepted, returned, or named in a step's code) and the name
    #: routing knows it by. The names travel with the spec: a class rebuilt by value in another process may
    #: not keep its ``__qualname__`` (a class defined in a function).
    event_keys: Mapping[type, str]
    #: The steps as routing sees them: type keys and pool settings only, no classes or code.
    routes: tuple[StepRoute, ...]
    state_types: tuple[type[Any], ...]

    @classmethod
    def of(cls, workflow_class: type) -> WorkflowSpec:
        """The spec of ``workflow_class`` (compiled on first use; ``WorkflowConfigurationError`` when it has no
        StartEvent step, no step returning StopEvent, or several of either)."""
        spec = _SPECS.get(workflow_class)
        if spec is None:
            spec = _SPECS[workflow_class] = cls._compile(workflow_class)
        return spec

    @classmethod
    def _compile(cls, workflow_class: type) -> WorkflowSpec:
        found = _steps_of(workflow_class)
        configs = {step: config for step, (config, _, _) in found.items()}
        name = workflow_class.__name__
        accepted = {t for c in configs.values() for t in c.accepted_events if issubclass(t, StartEvent)}
        returned = {t for c in configs.values() for t in c.return_types if _is_stop(t)}
        start = _one_of(accepted, "StartEvent", "received", name)
        stop = _one_of(returned, "StopEvent", "returned", name)
        classes: set[type] = set(BUILTIN_EVENTS)
        for config, func, _ in found.values():
            classes.update(t for t in (*config.accepted_events, *config.return_types) if is_event_type(t))
            classes |= _classes_named_by(func)
        keys = {t: qualified_name(t) for t in sorted(classes, key=qualified_name)}
        joined = join_sources(configs)
        routes = tuple(
            StepRoute(
                name=step,
                accepts=frozenset(keys[t] for t in config.accepted_events),
                num_workers=config.num_workers,
                accept_subclasses=config.accept_event_subclasses,
                collects=config.collects,
                catches=tuple(config.catch_error_for_steps) if config.catch_error_for_steps else None,
                is_catch_error=config.role == "catch_error",
                max_recoveries=config.catch_error_max_recoveries,
                returns=frozenset(keys[t] for t in config.return_types if is_event_type(t)),
                lendable=not (
                    config.collects
                    or config.fan_out_types
                    or config.join is not None
                    or config.slots is not None
                    or config.resources
                    or config.uses_self
                    or config.role == "catch_error"
                    or config.timeout is not None
                    or config.max_in_flight is not None
                    or config.num_gpus > 0
                ),
                timeout=config.timeout,
                max_in_flight=config.max_in_flight,
                warm=config.warm,
                fans_out=bool(config.fan_out_types),
                joins=joined.get(step) if config.join is not None else None,
                take=config.join.take if config.join is not None else None,
                slots=tuple(frozenset(keys[t] for t in types_) for _, types_ in config.slots or ()),
                num_gpus=config.num_gpus,
            )
            for step, config in configs.items()
        )
        return cls(
            name=name,
            steps={step: StepSpec(step, config, fn if free else None) for step, (config, fn, free) in found.items()},
            start_event=start,
            stop_event=stop,
            event_keys=keys,
            routes=routes,
            state_types=tuple(dict.fromkeys(c.context_state_type for c in configs.values() if c.context_state_type)),
        )

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("codec", None)  # derived views are rebuilt where the spec is unpickled
        state.pop("routing", None)
        return state

    # -- derived views (computed on first use, in whichever process holds the spec) ------------------------

    @cached_property
    def codec(self) -> EventCodec:
        """Encodes and decodes this workflow's events."""
        return EventCodec(self.event_keys)

    @cached_property
    def routing(self) -> RoutingTable:
        return RoutingTable.of(self.routes)

    @property
    def configs(self) -> dict[str, StepConfig]:
        return {name: s.config for name, s in self.steps.items()}

    @property
    def events(self) -> list[type[Event]]:
        """Every event type the steps accept or return, in step order."""
        found: dict[type, None] = {}
        for s in self.steps.values():
            for t in (*s.config.accepted_events, *s.config.return_types):
                if is_event_type(t):
                    found[t] = None
        return list(found)

    @property
    def state_type(self) -> type[Any] | None:
        """The pydantic model the steps type ``Context[...]`` with; None for the default dict-like state."""
        if len(self.state_types) > 1:
            names = sorted(t.__name__ for t in self.state_types)
            raise WorkflowValidationError(f"Steps of {self.name} declare different state types: {names}")
        return self.state_types[0] if self.state_types else None

    @property
    def caches_resources(self) -> bool:
        """Whether a step takes a cached ``Resource``: built once per instance, so instances share no actor."""
        return any(r.resource.cache for s in self.steps.values() for r in s.config.resources)

    @property
    def uses_human_input(self) -> bool:
        """Whether a step returns an ``InputRequiredEvent`` (the run asks its caller)."""
        return any(
            isinstance(t, type) and issubclass(t, InputRequiredEvent)
            for s in self.steps.values()
            for t in s.config.return_types
        )

    # -- the delivery rule -----------------------------------------------------------------------------

    def accepts(self, step: str, event_type: type) -> bool:
        """Whether ``step`` receives events of ``event_type``."""
        return self.routing.accepts(step, self.codec.keys_of(event_type))

    def check_target(self, step: str, event: Event) -> None:
        """Refuse ``send_event(event, step=step)`` to a step that does not exist or does not accept the event."""
        if step not in self.steps:
            raise WorkflowStepDoesNotExistError(f"Step {step} does not exist")
        if not self.accepts(step, type(event)):
            raise WorkflowRuntimeError(f"Step {step} does not accept event of type {type(event)}")
        if self.steps[step].config.join is not None:
            raise WorkflowRuntimeError(
                f"Step {step} joins the events of returned lists and cannot receive targeted events: "
                f"ctx.send_event(..., step={step!r}) cannot reach it; return the events in a list instead"
            )
