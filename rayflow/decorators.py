"""``@step`` and ``@catch_error``: read a step's signature once, at decoration, into a ``StepConfig``.

The config says which event types the step accepts, what it may emit, whether it wants the ``Context``
(and which typed state), which resources it needs, and how many workers its actor pool may grow to.
Signatures that cannot work are refused here, before any workflow or actor exists.
"""

from __future__ import annotations

import dis
import inspect
import sys
import types
import typing
from collections.abc import Callable
from typing import (
    Annotated,
    Any,
    Literal,
    Protocol,
    TypeVar,
    Union,
    get_args,
    get_origin,
    overload,
    runtime_checkable,
)

from rayflow.collect import Collect
from rayflow.context import Context
from rayflow.errors import WorkflowValidationError
from rayflow.events import Event, StepFailedEvent
from rayflow.resource import ResourceDefinition, resource_of
from rayflow.retry_policy import RetryPolicy
from rayflow.spec import StepConfig, attach_config, is_event_type

__all__ = ["StepConfig", "StepFunction", "StepGraphCheck", "WorkflowGraphCheck", "catch_error", "step"]

#: The checks of a workflow's graph at its first run (``Workflow(skip_graph_checks={...})`` skips some): every step
#: reachable from the start event, every event taken by a step or ending the run, every step that returns events
#: leading to the run's end.
WorkflowGraphCheck = Literal["reachability", "terminal_event", "dead_end"]
#: The checks one step may be exempt from (``@step(skip_graph_checks=[...])``).
StepGraphCheck = Literal["reachability", "dead_end"]

F = TypeVar("F", bound=Callable[..., Any])


@runtime_checkable
class StepFunction(Protocol):
    """A function ``@step`` made a step: callable as before, with what the decorator read in ``_step_config``."""

    _step_config: StepConfig
    __name__: str
    __qualname__: str

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...


def _flatten(annotation: Any) -> list[Any]:
    if get_origin(annotation) in (Union, types.UnionType):
        return [t for arg in get_args(annotation) for t in _flatten(arg)]
    return [annotation]


def _is_context(tp: Any) -> bool:
    origin = get_origin(tp) or tp
    return isinstance(origin, type) and issubclass(origin, Context)


def _calls_collect_events(code: types.CodeType) -> bool:
    if "collect_events" in code.co_names:
        return True
    return any(isinstance(c, types.CodeType) and _calls_collect_events(c) for c in code.co_consts)


def _reads(code: types.CodeType, name: str) -> bool:
    """Whether ``code`` (or a function nested in it) reads the local ``name`` or calls ``super()``."""
    if "super" in code.co_names or name in code.co_cellvars or name in code.co_freevars:
        return True
    for ins in dis.get_instructions(code):
        if ins.opname.startswith("LOAD") and (
            ins.argval == name or (isinstance(ins.argval, tuple) and name in ins.argval)
        ):
            return True
    return any(isinstance(c, types.CodeType) and _reads(c, name) for c in code.co_consts)


def _reads_self(func: Callable[..., Any]) -> bool:
    """Whether a step reads its workflow instance: its first parameter, when that is not annotated."""
    params = list(inspect.signature(func).parameters.values())
    if not params or params[0].annotation is not inspect.Parameter.empty:
        return False
    return _reads(func.__code__, params[0].name)


def _type_hints(func: Callable[..., Any], localns: dict[str, Any] | None) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func, localns=localns, include_extras=True)
    except NameError as err:
        raise WorkflowValidationError(
            f"Cannot resolve the type annotations of step {func.__qualname__}: {err}. "
            "Define the event classes before the workflow class."
        ) from err


def _make_step_config(
    func: Callable[..., Any],
    *,
    num_workers: int,
    retry_policy: RetryPolicy | None,
    accept_event_subclasses: bool,
    localns: dict[str, Any] | None,
    timeout: float | None = None,
    max_in_flight: int | None = None,
    warm: int = 1,
    num_gpus: float = 0.0,
    skip_graph_checks: list[str] | None = None,
) -> StepConfig:
    """Inspect ``func`` and build its ``StepConfig``, refusing signatures that cannot work."""
    if not isinstance(num_workers, int) or isinstance(num_workers, bool) or num_workers <= 0:
        raise WorkflowValidationError("num_workers must be an integer greater than 0")
    if not isinstance(warm, int) or isinstance(warm, bool) or not 1 <= warm <= num_workers:
        raise WorkflowValidationError(
            f"Step {func.__qualname__}: warm must be an integer from 1 to num_workers ({num_workers}), got {warm!r}"
        )
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
        raise WorkflowValidationError(
            f"Step {func.__qualname__}: timeout must be a number of seconds greater than 0, or None (got {timeout!r})"
        )
    if max_in_flight is not None and (
        not isinstance(max_in_flight, int) or isinstance(max_in_flight, bool) or max_in_flight <= 0
    ):
        raise WorkflowValidationError(
            f"Step {func.__qualname__}: max_in_flight must be an integer greater than 0, or None "
            f"(got {max_in_flight!r})"
        )
    if isinstance(num_gpus, bool) or not isinstance(num_gpus, int | float) or num_gpus < 0:
        raise WorkflowValidationError(
            f"Step {func.__qualname__}: num_gpus must be a number of GPUs, 0 or more (got {num_gpus!r})"
        )
    skips = list(skip_graph_checks or ())
    wrong = sorted(set(skips) - set(get_args(StepGraphCheck)))
    if wrong:
        raise WorkflowValidationError(
            f"Step {func.__qualname__}: skip_graph_checks names unknown checks {wrong}; a step may skip "
            f"{', '.join(get_args(StepGraphCheck))}"
        )
    hints = _type_hints(func, localns)
    event_params: list[tuple[str, list[type[Event]]]] = []
    join: tuple[str, list[type[Event]], Collect] | None = None
    context_parameter: str | None = None
    state_type: type[Any] | None = None
    resources: list[ResourceDefinition] = []
    where = f"Step {func.__qualname__}"
    for name, param in inspect.signature(func).parameters.items():
        if name in ("self", "cls"):
            continue
        annotation = hints.get(name, param.annotation)
        resource = resource_of(annotation)
        if resource is not None:
            resources.append(ResourceDefinition(name, *resource))
            continue
        marker: Collect | None = None
        if get_origin(annotation) is Annotated:
            annotation, *extras = get_args(annotation)
            marker = next((extra for extra in extras if isinstance(extra, Collect)), None)
        if annotation is not inspect.Parameter.empty and _is_context(annotation):
            context_parameter = name
            args = get_args(annotation)
            if args and isinstance(args[0], type):
                state_type = args[0]
            continue
        listed = _list_members(annotation)
        if listed is not None and listed and all(is_event_type(t) for t in listed):
            if join is not None:
                raise WorkflowValidationError(
                    f"{where} has more than one list[Event] parameter ({join[0]!r}, {name!r})"
                )
            join = (name, listed, marker or Collect())
            continue
        if marker is not None:
            raise WorkflowValidationError(
                f"{where}: Collect(...) marks a list[Event] parameter, and {name!r} is not one"
            )
        members = _flatten(annotation)
        if members and all(is_event_type(t) for t in members):
            event_params.append((name, members))
    if join is not None and event_params:
        raise WorkflowValidationError(
            f"{where} joins a fan-out with its list parameter {join[0]!r}: it cannot take other event parameters "
            f"({', '.join(repr(name) for name, _ in event_params)})"
        )
    if join is None and not event_params:
        raise WorkflowValidationError("Step signature must have at least one parameter annotated as type Event")
    slots = _slots(where, event_params) if len(event_params) > 1 else None
    if join is not None:
        event_name, accepted = join[0], join[1]
    else:
        event_name = event_params[0][0]
        accepted = list(dict.fromkeys(t for _, types_ in event_params for t in types_))
    if "return" not in hints:
        raise WorkflowValidationError("Return types of workflows step functions must be annotated with their type.")
    bare: list[Any] = []
    fan_out: list[Any] = []
    for returned in _flatten(hints["return"]):
        listed = _list_members(returned)
        if listed is None:
            bare.append(type(None) if returned is None else returned)
        else:
            fan_out.extend(t for t in listed if t is not None and t is not type(None))
    return_types = list(dict.fromkeys((*bare, *fan_out)))
    return StepConfig(
        accepted_events=accepted,
        event_name=event_name,
        return_types=return_types,
        context_parameter=context_parameter,
        num_workers=num_workers,
        retry_policy=retry_policy,
        resources=resources,
        context_state_type=state_type,
        accept_event_subclasses=accept_event_subclasses,
        collects=_calls_collect_events(func.__code__),
        uses_self=_reads_self(func),
        timeout=None if timeout is None else float(timeout),
        max_in_flight=max_in_flight,
        warm=warm,
        fan_out_types=list(dict.fromkeys(fan_out)),
        bare_return_types=bare,
        join=None if join is None else join[2],
        slots=slots,
        num_gpus=float(num_gpus),
        skip_graph_checks=skips,
    )


def _list_members(annotation: Any) -> list[Any] | None:
    """The member types of a ``list[...]`` annotation (its union flattened); None when it is not a list."""
    if get_origin(annotation) is not list:
        return None
    args = get_args(annotation)
    return _flatten(args[0]) if args else []


def _slots(where: str, params: list[tuple[str, list[type[Event]]]]) -> list[tuple[str, list[type[Event]]]]:
    """The event parameters of a step that takes one event of each: one event type each (as in LlamaIndex). Two
    parameters may take the same type: its events fill them in the order they arrive."""
    for name, types_ in params:
        if len(types_) != 1:
            names = " | ".join(tp.__name__ for tp in types_)
            raise WorkflowValidationError(
                f"{where}: event parameter {name!r} takes {names}; a step of several event parameters takes one "
                "event of each, so each must name a single event type (give each type a step, or a parameter, "
                "of its own)"
            )
    return params


def _caller_locals(depth: int) -> dict[str, Any]:
    """Names visible where the decorator was applied: the class body and every enclosing function.

    With ``from __future__ import annotations`` a step's annotations are strings, resolved here against
    these names, so events defined inside a test function or a factory resolve too.
    """
    frame: types.FrameType | None = sys._getframe(depth)
    module = frame.f_globals if frame is not None else {}
    scopes = []
    while frame is not None and frame.f_globals is module:  # frames of the defining module only
        scopes.append(frame.f_locals)
        if frame.f_locals is module:
            break
        frame = frame.f_back
    names: dict[str, Any] = {}
    for scope in reversed(scopes):
        names.update(scope)
    return names


def _is_free_function(qualname: str) -> bool:
    parts = qualname.split(".")
    return len(parts) == 1 or parts[-2] == "<locals>"


def _attach(func: F, config: StepConfig, workflow: type[Any] | None) -> F:
    attach_config(func, config)
    if _is_free_function(func.__qualname__):
        if workflow is None:
            raise WorkflowValidationError(
                f"To decorate {func.__name__} please pass a workflow class to the @step decorator."
            )
        workflow.add_step(func)
    return func


@overload
def step(func: F) -> F: ...


@overload
def step(
    *,
    workflow: type[Any] | None = None,
    num_workers: int = 4,
    retry_policy: RetryPolicy | None = None,
    accept_event_subclasses: bool = False,
    timeout: float | None = None,
    max_in_flight: int | None = None,
    warm: int = 1,
    num_gpus: float = 0.0,
    skip_graph_checks: list[StepGraphCheck] | None = None,
) -> Callable[[F], F]: ...


def step(
    func: F | None = None,
    *,
    workflow: type[Any] | None = None,
    num_workers: int = 4,
    retry_policy: RetryPolicy | None = None,
    accept_event_subclasses: bool = False,
    timeout: float | None = None,
    max_in_flight: int | None = None,
    warm: int = 1,
    num_gpus: float = 0.0,
    skip_graph_checks: list[StepGraphCheck] | None = None,
) -> F | Callable[[F], F]:
    """Make a method a workflow step.

    ``num_workers`` is the most actors the step's pool grows to, and so the most invocations of the step one run
    has going at once (as in LlamaIndex); the pool is shared by every concurrent run of one workflow instance, and
    an actor runs the invocations of different runs at the same time (one awaits, another runs).
    ``retry_policy`` decides retries after the step raises; with
    ``accept_event_subclasses`` the step also receives subclasses of the event types it declares.
    ``max_in_flight`` (rayflow's): the most invocations of the step going at once across every run of the
    instance (a rate-limited API); None: no cap beyond ``num_workers`` per run.
    ``timeout`` (rayflow's, not LlamaIndex's): seconds one invocation may take. Past it the invocation is stopped
    and fails with ``StepTimeoutError``, which the retry policy and ``@catch_error`` see like any failure; a step
    blocked where it cannot be cancelled (a sync step, or an async one blocking its event loop) is stopped by
    replacing its actor.
    ``warm`` (rayflow's): actors the pool starts with at the instance's first run, before any event needs them
    (1 by default; ``warm=num_workers`` starts the full pool, at about 90 MiB of memory per actor).
    ``num_gpus`` (rayflow's): GPUs each actor of the pool reserves (fractions share one); Ray places the actors on
    nodes that have them, and no other step's actor runs this step.
    ``skip_graph_checks``: the graph checks of the first run this step is exempt from (``"reachability"``: a step
    no event from the start reaches, run by events sent in from outside; ``"dead_end"``: one whose events lead to no
    end of the run).
    """
    localns = _caller_locals(2)

    def decorate(fn: F) -> F:
        config = _make_step_config(
            fn,
            num_workers=num_workers,
            retry_policy=retry_policy,
            accept_event_subclasses=accept_event_subclasses,
            localns=localns,
            timeout=timeout,
            max_in_flight=max_in_flight,
            warm=warm,
            num_gpus=num_gpus,
            skip_graph_checks=list(skip_graph_checks or ()),
        )
        return _attach(fn, config, workflow)

    return decorate(func) if func is not None else decorate


def catch_error(
    func: F | None = None, *, for_steps: list[str] | None = None, max_recoveries: int = 1
) -> F | Callable[[F], F]:
    """Make a method receive a ``StepFailedEvent`` when a step (``for_steps``, or any) spends its retries.

    It runs at most ``max_recoveries`` times per run for the steps it covers; after that the run fails.
    """
    if not isinstance(max_recoveries, int) or max_recoveries < 1:
        raise WorkflowValidationError("@catch_error max_recoveries must be an integer >= 1")
    if for_steps is not None and not (isinstance(for_steps, list) and all(isinstance(s, str) for s in for_steps)):
        raise WorkflowValidationError("@catch_error for_steps must be None or a list of step name strings")
    localns = _caller_locals(2)

    def decorate(fn: F) -> F:
        config = _make_step_config(fn, num_workers=1, retry_policy=None, accept_event_subclasses=False, localns=localns)
        if config.accepted_events != [StepFailedEvent]:
            raise WorkflowValidationError(
                f"@catch_error handler '{fn.__name__}' must accept StepFailedEvent as its event parameter."
            )
        config.role = "catch_error"
        config.catch_error_for_steps = for_steps
        config.catch_error_max_recoveries = max_recoveries
        return _attach(fn, config, None)

    return decorate(func) if func is not None else decorate
