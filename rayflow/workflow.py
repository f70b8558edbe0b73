"""``Workflow``: the steps of a class, checked once, and ``run()`` that plays them on Ray actors.

A ``Workflow`` subclass declares steps with ``@step``. ``Workflow()`` checks the start and stop events;
the first ``run()`` checks the event graph, then starts this instance's dispatcher, context actor and
step pools (one actor per step to begin with, growing toward ``num_workers`` while events wait). The
instance is pickled once into each step actor: attributes set in ``__init__`` are per-actor copies.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
import types
import uuid
import weakref
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import ValidationError
from ray import cloudpickle

from rayflow.context import Context
from rayflow.context.state_store import DictState
from rayflow.core.commands import Outcome
from rayflow.core.routing import StepRoute
from rayflow.core.state import Pending
from rayflow.decorators import StepConfig, is_event_type, step_config
from rayflow.errors import (
    WorkflowCancelledByUser,
    WorkflowRuntimeError,
    WorkflowTimeoutError,
    WorkflowValidationError,
)
from rayflow.events import (
    Event,
    HumanResponseEvent,
    InputRequiredEvent,
    StartEvent,
    StepFailedEvent,
    StopEvent,
    WorkflowCancelledEvent,
    WorkflowFailedEvent,
    WorkflowTimedOutEvent,
)
from rayflow.handler import HandlerFace, WorkflowHandler
from rayflow.runtime.codec import EventCodec, type_key
from rayflow.runtime.dispatcher import RunEnd
from rayflow.runtime.runtime import WorkflowRuntime
from rayflow.validation import check_target, start_event_class, stop_event_class, validate_graph

__all__ = ["Workflow"]

log = logging.getLogger("rayflow")

_BUILTIN_EVENTS = (
    Event,
    StartEvent,
    StopEvent,
    InputRequiredEvent,
    HumanResponseEvent,
    StepFailedEvent,
    WorkflowFailedEvent,
    WorkflowTimedOutEvent,
    WorkflowCancelledEvent,
)


def _names_in(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names_in(const)
    return names


def _user_modules(cls: type, events: list[type]) -> list[types.ModuleType]:
    """Modules of the workflow's classes that a Ray worker may not import: not installed, not ``__main__``."""
    names = {c.__module__ for c in (*cls.__mro__, *events)}
    found = []
    for name in sorted(names):
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None) or ""
        if module is None or name == "__main__" or name.split(".")[0] in ("rayflow", "builtins"):
            continue
        if not path or "site-packages" in path or "dist-packages" in path or path.startswith(sys.base_prefix):
            continue
        found.append(module)
    return found


class Workflow:
    """A set of steps that pass events; ``run(**kwargs)`` starts a run and returns its handler.

    ``timeout`` (seconds, None for none) bounds each run; ``disable_validation`` skips the event-graph
    check of the first run; ``verbose`` prints each step as it runs.
    """

    _step_functions: ClassVar[dict[str, Callable[..., Any]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._step_functions = {}

    def __init__(
        self,
        timeout: float | None = 45.0,
        disable_validation: bool = False,
        verbose: bool = False,
        num_concurrent_runs: int | None = None,
        **kwargs: Any,
    ) -> None:
        if num_concurrent_runs is not None and (
            isinstance(num_concurrent_runs, bool)
            or not isinstance(num_concurrent_runs, int)
            or num_concurrent_runs <= 0
        ):
            raise WorkflowValidationError("num_concurrent_runs must be an integer greater than 0 or None")
        self._timeout = timeout
        self._disable_validation = disable_validation
        self._verbose = verbose
        self._num_concurrent_runs = num_concurrent_runs
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        configs = self._step_configs()
        name = type(self).__name__
        self._start_event_class = start_event_class(configs, name)
        self._stop_event_class = stop_event_class(configs, name)
        self._validated = False
        self._label = f"rayflow.{name}.{uuid.uuid4().hex[:8]}"
        self._event_keys = {cls: type_key(cls) for cls in self._event_classes()}
        self._codec = EventCodec(self._event_keys)
        self._runtime = WorkflowRuntime(self, self._label)

    # -- what the workflow is ------------------------------------------------------------------

    @property
    def start_event_class(self) -> type[StartEvent]:
        """The StartEvent type this workflow's steps accept."""
        return self._start_event_class

    @property
    def stop_event_class(self) -> type[StopEvent]:
        """The StopEvent type this workflow's steps return."""
        return self._stop_event_class

    @property
    def events(self) -> list[type[Event]]:
        """Every event type the steps accept or return."""
        found: dict[type, None] = {}
        for config in self._step_configs().values():
            for t in (*config.accepted_events, *config.return_types):
                if is_event_type(t):
                    found[t] = None
        return list(found)

    @classmethod
    def add_step(cls, func: Callable[..., Any]) -> None:
        """Add a free function decorated with ``@step(workflow=cls)`` as a step of ``cls``."""
        if not hasattr(func, "_step_config"):
            raise WorkflowValidationError(f"Step function {func.__name__} is missing the `@step` decorator.")
        if func.__name__ in cls._step_functions or hasattr(cls, func.__name__):
            raise WorkflowValidationError(
                f"A step {func.__name__} is already part of this workflow, please choose another name."
            )
        cls._step_functions[func.__name__] = func

    def _get_steps(self) -> dict[str, Callable[..., Any]]:
        steps: dict[str, Callable[..., Any]] = {}
        for klass in reversed(type(self).__mro__):
            for name, attr in vars(klass).items():
                if callable(attr) and hasattr(attr, "_step_config"):
                    steps[name] = getattr(self, name)
            steps.update(getattr(klass, "_step_functions", {}) if klass is not Workflow else {})
        return steps

    def _step_configs(self) -> dict[str, StepConfig]:
        return {name: step_config(fn) for name, fn in self._get_steps().items()}

    def _event_classes(self) -> list[type]:
        found: set[type] = set(_BUILTIN_EVENTS)
        for fn in self._get_steps().values():
            config = step_config(fn)
            found.update(t for t in (*config.accepted_events, *config.return_types) if isinstance(t, type))
            func = inspect.unwrap(getattr(fn, "__func__", fn))
            # Event classes the step's code names (``ctx.wait_for_event(Answer)``), from its module or, for
            # classes defined in a function, its closure: each gets the driver's name on every actor.
            cells = dict(zip(func.__code__.co_freevars, func.__closure__ or (), strict=True))
            for name in _names_in(func.__code__) | set(cells):
                try:
                    value = cells[name].cell_contents if name in cells else func.__globals__.get(name)
                except ValueError:  # an empty cell
                    continue
                if is_event_type(value):
                    found.add(value)
        return sorted((t for t in found if issubclass(t, Event)), key=type_key)

    def _state_types(self) -> list[type]:
        return [c.context_state_type for c in self._step_configs().values() if c.context_state_type]

    def _state_type(self) -> type[Any] | None:
        types_ = set(self._state_types())
        if len(types_) > 1:
            raise WorkflowValidationError(
                f"Steps of {type(self).__name__} declare different state types: {sorted(t.__name__ for t in types_)}"
            )
        return types_.pop() if types_ else None

    def _routes(self) -> list[StepRoute]:
        routes = []
        for name, config in self._step_configs().items():
            routes.append(
                StepRoute(
                    name=name,
                    accepts=frozenset(self._codec.key_of(t) for t in config.accepted_events),
                    num_workers=config.num_workers,
                    accept_subclasses=config.accept_event_subclasses,
                    collects=config.collects,
                    catches=tuple(config.catch_error_for_steps) if config.catch_error_for_steps else None,
                    is_catch_error=config.role == "catch_error",
                    max_recoveries=config.catch_error_max_recoveries,
                    returns=frozenset(self._codec.key_of(t) for t in config.return_types if is_event_type(t)),
                    lendable=not (
                        config.collects or config.resources or config.uses_self or config.role == "catch_error"
                    ),
                )
            )
        return routes

    def validate(self) -> bool:
        """Check the event graph; ``WorkflowValidationError`` names what is wrong. True if it uses human input."""
        return Workflow._validate(self)

    def _validate(self) -> bool:
        configs = self._step_configs()
        validate_graph(configs, self._start_event_class)
        self._state_type()
        self._validated = True
        return any(
            issubclass(t, InputRequiredEvent) for c in configs.values() for t in c.return_types if isinstance(t, type)
        )

    def _check_target(self, event: Event, step: str | None) -> None:
        if step is not None:
            check_target(self._step_configs(), step, event)

    # -- pickling into step actors -----------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_runtime", None)
        state.pop("_slots", None)
        return state

    def _pickled(self) -> bytes:
        """The instance as step actors receive it.

        Modules of the workflow's classes that a Ray worker may not import (a script, a test module)
        are registered to travel by value from this process, for good: state models and results
        defined there cross between actors too.
        """
        registered = cloudpickle.list_registry_pickle_by_value()
        for module in _user_modules(type(self), self._event_classes()):
            if module.__name__ not in registered:
                cloudpickle.register_pickle_by_value(module)
        return cloudpickle.dumps(self)

    # -- runs ----------------------------------------------------------------------------------

    def _driver_face(self, ctx: Context[Any]) -> HandlerFace:
        return HandlerFace(self, ctx)

    def _start_event(self, start_event: StartEvent | None, kwargs: dict[str, Any]) -> StartEvent:
        if start_event is not None:
            if not isinstance(start_event, StartEvent):
                raise ValueError("The 'start_event' argument must be an instance of 'StartEvent'.")
            if kwargs:
                log.warning(
                    "Keyword arguments are not supported when 'run()' is invoked with the 'start_event' "
                    f"parameter. These keyword arguments will be ignored: {kwargs}"
                )
            return start_event
        try:
            return self._start_event_class(**kwargs)
        except ValidationError as err:
            name = self._start_event_class.__name__
            raise WorkflowRuntimeError(
                f"Failed creating a start event of type '{name}' with the keyword arguments: {kwargs}"
            ) from err

    def run(
        self, ctx: Context[Any] | None = None, start_event: StartEvent | None = None, **kwargs: Any
    ) -> WorkflowHandler:
        """Start a run and return its handler at once (call from a running event loop).

        ``await handler`` gives the StopEvent's result; ``ctx`` continues a context of an earlier run.
        """
        if not self._validated and not self._disable_validation:
            Workflow._validate(self)  # not self.validate(): a step may be named "validate"
        resuming = ctx is not None and ctx._resume is not None  # a snapshot's run goes on: no new start event
        event = None if resuming else self._start_event(start_event, kwargs)
        try:
            asyncio.get_running_loop()
        except RuntimeError as err:
            raise WorkflowRuntimeError(
                "workflow.run() needs a running event loop: call it from async code (asyncio.run(main()))"
            ) from err
        ctx = ctx if ctx is not None else Context(self)
        face = ctx._face
        if not isinstance(face, HandlerFace):
            raise WorkflowRuntimeError("run(ctx=...) needs a context made with Context(workflow)")
        if face.running:
            raise WorkflowRuntimeError("This context already has a run going on")
        run_id = uuid.uuid4().hex
        face.run_id, face.running, face.pending = run_id, True, []
        started = asyncio.Event()
        return WorkflowHandler(
            ctx,
            run_id,
            lambda handler: self._drive(handler, ctx, face, event, started),
            lambda: asyncio.ensure_future(self._cancel(run_id, started)),
        )

    def _run_slots(self) -> asyncio.Semaphore | None:
        """The semaphore that caps concurrent runs (``num_concurrent_runs``) on the running event loop."""
        if self._num_concurrent_runs is None:
            return None
        loop = asyncio.get_running_loop()
        slots = self._slots.get(loop)
        if slots is None:
            slots = self._slots[loop] = asyncio.Semaphore(self._num_concurrent_runs)
        return slots

    async def _cancel(self, run_id: str, started: asyncio.Event) -> None:
        await started.wait()  # a cancel asked before the run reached the dispatcher waits for it
        dispatcher = self._runtime.dispatcher
        if dispatcher is not None:
            dispatcher.cancel(run_id)

    async def _seed_context(self, ctx: Context[Any], context: Any) -> None:
        if getattr(ctx, "_seeded", False):
            return
        await context.seed(ctx._ctx_id, self._state_type(), ctx._seed)
        ctx._seed = None
        ctx._seeded = True  # type: ignore[attr-defined]

    async def _drive(
        self,
        handler: WorkflowHandler,
        ctx: Context[Any],
        face: HandlerFace,
        start: StartEvent | None,
        started: asyncio.Event,
    ) -> StopEvent:
        runtime = self._runtime
        slots = self._run_slots()
        if slots is not None:
            await slots.acquire()
        runtime.run_started()
        try:
            dispatcher, context = await runtime.start(self)
            await self._seed_context(ctx, context)
            resume, ctx._resume = ctx._resume, None
            if resume is not None:  # a context from a snapshot: its unfinished work, not a new start
                await dispatcher.resume_run(handler.run_id, ctx._ctx_id, resume, self._timeout)
            else:
                assert start is not None
                await dispatcher.start_run(handler.run_id, ctx._ctx_id, self._codec.encode(start), self._timeout)
            pending, face.pending = face.pending, None
            if pending:
                dispatcher.emit(handler.run_id, pending)
            started.set()
            while True:
                for item in await dispatcher.next_items(handler.run_id):
                    if isinstance(item, RunEnd):
                        return self._finish(handler, item)
                    event = self._codec.loads(item)
                    if self._verbose:
                        print(f"Streamed {type(event).__name__}")
                    handler._publish(event)
        finally:
            started.set()
            face.running, face.pending = False, None
            runtime.run_ended()
            if slots is not None:
                slots.release()

    def _finish(self, handler: WorkflowHandler, end: RunEnd) -> StopEvent:
        if end.outcome is Outcome.DONE:
            stop = self._codec.loads(end.payload.payload)
            handler._publish(stop)
            return stop
        error: BaseException
        if end.outcome is Outcome.TIMED_OUT:
            handler._publish(WorkflowTimedOutEvent(timeout=self._timeout or 0.0, active_steps=list(end.active_steps)))
            raise WorkflowTimeoutError(end.message)
        if end.outcome is Outcome.CANCELLED:
            handler._publish(WorkflowCancelledEvent())
            raise WorkflowCancelledByUser(end.message)
        error = self._codec.loads(end.payload) if end.payload is not None else WorkflowRuntimeError(end.message)
        handler._publish(WorkflowFailedEvent(step_name=end.step or "", exception=error))
        raise error

    # -- lifetime ------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop this instance's actors and wait until they are gone; a later run starts them again."""
        await self._runtime.close()

    async def __aenter__(self) -> Workflow:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _read_pending(self, run_id: str) -> Pending | None:
        dispatcher = self._runtime.dispatcher
        return None if dispatcher is None else dispatcher.snapshot_sync(run_id)

    def _read_state(self, ctx_id: str) -> Any:
        runtime = self._runtime
        if not runtime.started:
            return DictState()
        _, context = runtime.start_blocking(self)
        return context.get_state_sync(ctx_id)
