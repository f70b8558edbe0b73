"""Checks of a workflow's event graph, run at its first ``run()`` (or ``validate()``), before any actor exists.

``WorkflowSpec.of`` already refused a class without exactly one StartEvent and one StopEvent type; this adds what
only the whole graph shows: events consumed and never produced, produced and never consumed, steps taking StopEvent;
and the resources that can be checked without building anything: ``ResourceConfig`` files, read on the driver.
"""

from __future__ import annotations

from rayflow.core.routing import delivers
from rayflow.errors import WorkflowValidationError
from rayflow.events import HumanResponseEvent, InputRequiredEvent, StepFailedEvent, StopEvent
from rayflow.spec import StepSpec, WorkflowSpec, is_event_type

__all__ = ["validate_graph", "validate_resources"]


def _sub(cls: object, base: type | tuple[type, ...]) -> bool:
    return isinstance(cls, type) and issubclass(cls, base)


def validate_graph(spec: WorkflowSpec, skip: frozenset[str] = frozenset()) -> None:
    """Refuse steps accepting StopEvent, events consumed but never produced, and produced but never consumed
    (the ``terminal_event`` check), joins no list feeds, and, unless ``skip`` names them, steps no event from the
    start reaches (``reachability``) and steps whose events never lead to the run's end (``dead_end``)."""
    steps = spec.steps
    produced = {spec.start_event} | {t for s in steps.values() for t in s.config.return_types if is_event_type(t)}
    stop_takers = [n for n, s in steps.items() if any(_sub(t, StopEvent) for t in s.config.accepted_events)]
    if stop_takers:
        names = "', '".join(stop_takers)
        plural = "" if len(stop_takers) == 1 else "s"
        raise WorkflowValidationError(
            f"Step{plural} '{names}' cannot accept StopEvent. StopEvent signals the end of the workflow. "
            "Use a different Event type instead."
        )
    codec = spec.codec

    def reaches(s: StepSpec, declared: type) -> bool:
        key = (codec.key_of(declared),)
        return any(delivers(key, s.config.accept_event_subclasses, codec.keys_of(p)) for p in produced)

    boundary_in = (InputRequiredEvent, HumanResponseEvent, StopEvent, StepFailedEvent)
    never_produced = sorted(
        {
            t.__name__
            for s in steps.values()
            for t in s.config.accepted_events
            if not _sub(t, boundary_in) and not reaches(s, t)
        }
    )
    if never_produced:
        raise WorkflowValidationError(
            f"The following events are consumed but never produced: {', '.join(never_produced)}"
        )
    boundary_out = (InputRequiredEvent, HumanResponseEvent, StopEvent)
    unused = sorted(
        p.__name__ for p in produced if not _sub(p, boundary_out) and not any(spec.accepts(name, p) for name in steps)
    )
    if unused and "terminal_event" not in skip:
        raise WorkflowValidationError(f"The following events are produced but never consumed: {', '.join(unused)}")
    _check_joins(spec)
    _check_catch_error(spec)
    _check_paths(spec, skip)


def _check_paths(spec: WorkflowSpec, skip: frozenset[str]) -> None:
    """Every step reachable from the start (or from a human's answer, or as a ``@catch_error`` handler), and every
    step that returns events on a path to the run's end (a StopEvent, or a question for the caller)."""
    steps = spec.steps
    produced = {spec.start_event} | {t for s in steps.values() for t in s.config.return_types if is_event_type(t)}
    produced |= {t for s in steps.values() for t in s.config.accepted_events}  # the caller may send these in
    takers = {t: [n for n in steps if spec.accepts(n, t) and not _sub(t, StopEvent)] for t in produced}
    returns = {n: [t for t in s.config.return_types if is_event_type(t)] for n, s in steps.items()}

    reached: set[object] = set()
    todo: list[object] = [spec.start_event, *(t for t in produced if _sub(t, HumanResponseEvent))]
    todo += [n for n, s in steps.items() if s.config.role == "catch_error"]
    while todo:
        node = todo.pop()
        if node in reached:
            continue
        reached.add(node)
        todo += returns.get(node, []) if isinstance(node, str) else takers.get(node, [])

    ends: set[object] = set()
    todo = [t for t in produced if _sub(t, (StopEvent, InputRequiredEvent))]
    while todo:
        node = todo.pop()
        if node in ends:
            continue
        ends.add(node)
        if isinstance(node, str):
            todo += [t for t in produced if node in takers[t]]
        else:
            todo += [n for n, made in returns.items() if node in made]

    problems = []
    if "reachability" not in skip:
        exempt = {n for n, s in steps.items() if "reachability" in s.config.skip_graph_checks}
        lost = sorted(n for n in steps if n not in reached and n not in exempt)
        if lost:
            problems.append(
                f"  - [reachability] Unreachable steps: {', '.join(lost)}\n"
                "    No event from the StartEvent (or a HumanResponseEvent) reaches them."
            )
    if "dead_end" not in skip:
        exempt = {n for n, s in steps.items() if "dead_end" in s.config.skip_graph_checks}
        stuck = sorted(n for n in steps if returns[n] and n not in ends and n not in exempt)
        if stuck:
            problems.append(
                f"  - [dead_end] Dead-end steps: {', '.join(stuck)}\n"
                "    No path leads from their events to a StopEvent or an InputRequiredEvent."
            )
    if problems:
        raise WorkflowValidationError("Graph validation failed:\n" + "\n".join(problems))


def _check_joins(spec: WorkflowSpec) -> None:
    """Refuse a join (``list[E]`` parameter) that no returned list can feed."""
    for route in spec.routes:
        if route.joins is not None and not route.joins:
            config = spec.steps[route.name].config
            wanted = " | ".join(t.__name__ for t in config.accepted_events)
            raise WorkflowValidationError(
                f"Step {route.name!r} joins list[{wanted}] in parameter {config.event_name!r}, but no step returns a "
                f"list whose events lead to {wanted}: a list[E] parameter joins the events of a step that returns "
                "list[...]. For events sent with ctx.send_event, use ctx.collect_events."
            )


def _check_catch_error(spec: WorkflowSpec) -> None:
    """At most one wildcard ``@catch_error`` handler; scoped ones name steps that exist, each step claimed once."""
    handlers = {n: s.config for n, s in spec.steps.items() if s.config.role == "catch_error"}
    wildcards = sorted(n for n, c in handlers.items() if c.catch_error_for_steps is None)
    if len(wildcards) > 1:
        raise WorkflowValidationError(
            f"Only one wildcard @catch_error handler is allowed per workflow, found {len(wildcards)}: "
            f"{', '.join(wildcards)}"
        )
    claimed: dict[str, str] = {}
    for name, config in handlers.items():
        for target in config.catch_error_for_steps or ():
            if target not in spec.steps or target in handlers:
                raise WorkflowValidationError(
                    f"@catch_error handler '{name}' lists unknown step '{target}' in for_steps"
                )
            if target in claimed:
                raise WorkflowValidationError(
                    f"Step '{target}' is claimed by two @catch_error handlers: '{claimed[target]}' and '{name}'"
                )
            claimed[target] = name


def validate_resources(spec: WorkflowSpec) -> None:
    """Refuse resources found wrong without building any: a ``ResourceConfig`` file missing, without the selected
    object, or not valid for its model (a factory's own config resources included); one line for each, naming the
    step and parameter, and the chain of resources when the config is a factory's."""
    errors: list[str] = []
    checked: set[str] = set()
    for step, step_spec in spec.steps.items():
        stack = [(d.name, d, [d.resource.name]) for d in reversed(step_spec.config.resources)]
        while stack:
            parameter, definition, chain = stack.pop()
            if definition.resource.name in checked:
                continue
            checked.add(definition.resource.name)
            try:
                definition.resource.check(definition.type_annotation)
            except Exception as err:
                through = f" ({' -> '.join(chain)})" if len(chain) > 1 else ""
                errors.append(f"In step '{step}', parameter '{parameter}'{through}: {err}")
            deps = reversed(definition.resource.dependencies())
            stack.extend((parameter, d, [*chain, d.resource.name]) for d in deps)
    if errors:
        raise WorkflowValidationError("Resource config validation failed:\n" + "\n".join(f"  - {e}" for e in errors))
