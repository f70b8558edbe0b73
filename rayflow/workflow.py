"""``Workflow``: the steps of a class, checked once, and ``run()`` that plays them on Ray actors.

A ``Workflow`` subclass declares steps with ``@step``. ``Workflow()`` compiles the class (once per class)
into a ``WorkflowSpec`` and checks its start and stop events; the first ``run()`` checks the event graph.
Running is the runtime's (``rayflow.runtime.session``): the first run starts this instance's dispatcher,
context actor and one actor per step (pools grow toward ``num_workers`` while events wait). The instance
is pickled once into each step actor: attributes set in ``__init__`` are per-actor copies.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Any, get_args

from pydantic import ValidationError

from rayflow.codec import qualified_name
from rayflow.context import BaseSerializer, Context
from rayflow.context.context import bind_host, face_of
from rayflow.core.stats import WorkflowStats
from rayflow.decorators import StepFunction, WorkflowGraphCheck
from rayflow.errors import WorkflowRuntimeError, WorkflowValidationError
from rayflow.events import Event, StartEvent, StopEvent
from rayflow.handler import WorkflowHandler
from rayflow.journal import Journal
from rayflow.runtime.session import RunStart, WorkflowSession
from rayflow.spec import StepConfig, WorkflowSpec, add_free_step, config_of, free_steps, steps_of
from rayflow.validation import validate_graph, validate_resources

__all__ = [
    "BaseSerializer",
    "StepConfig",
    "StepFunction",
    "Workflow",
    "get_steps_from_class",
    "get_steps_from_instance",
]

log = logging.getLogger("rayflow")


class Workflow:
    """A set of steps that pass events; ``run(**kwargs)`` starts a run and returns its handler.

    ``timeout`` (seconds, None for none) bounds each run; ``disable_validation`` skips the event-graph
    check of the first run; ``verbose`` prints, in the driver, each step invocation as it begins and ends (its run,
    actor, node and time taken); ``num_concurrent_runs`` caps the runs of this instance going on at once (the others
    wait for a slot).

    ``workflow_name`` names it (default: the class's import path); ``serializer`` is what its contexts' snapshots
    use when ``ctx.to_dict()`` or ``Context.from_dict`` names none (default: ``JsonSerializer()``).
    ``resource_manager`` and ``runtime`` (LlamaIndex's) are refused with an error that says what to use instead.

    ``journal`` (rayflow's own, beyond LlamaIndex: a directory path, an fsspec URL, or a ``Journal``) makes runs
    durable: each run records its progress there, goes on from its last checkpoint when its dispatcher or context
    actor dies, and can be resumed by ``resume(run_id)``, from another process too (see the README's "Durable runs").
    """

    def __init__(
        self,
        timeout: float | None = 45.0,
        disable_validation: bool = False,
        verbose: bool = False,
        num_concurrent_runs: int | None = None,
        journal: Journal | str | os.PathLike[str] | None = None,
        skip_graph_checks: set[WorkflowGraphCheck] | None = None,
        workflow_name: str | None = None,
        serializer: BaseSerializer | None = None,
        resource_manager: Any = None,
        runtime: Any = None,
    ) -> None:
        if resource_manager is not None:
            raise WorkflowValidationError(
                "Workflow(resource_manager=...) is not supported: objects a manager holds in the driver would reach "
                "each step actor as a pickled copy; declare them with Resource(factory) in the step's signature"
            )
        if runtime is not None:
            raise WorkflowValidationError(
                f"Workflow(runtime=...) is not supported: rayflow runs every workflow on Ray (got {runtime!r}); "
                "connect to a cluster with RAY_ADDRESS or rayflow.init(address=...)"
            )
        if serializer is not None and not isinstance(serializer, BaseSerializer):
            raise WorkflowValidationError(
                f"Workflow(serializer=...) needs a BaseSerializer (JsonSerializer, PickleSerializer), got "
                f"{type(serializer).__name__}"
            )
        if num_concurrent_runs is not None and (
            isinstance(num_concurrent_runs, bool)
            or not isinstance(num_concurrent_runs, int)
            or num_concurrent_runs <= 0
        ):
            raise WorkflowValidationError("num_concurrent_runs must be an integer greater than 0 or None")
        skip = frozenset(skip_graph_checks or ())
        wrong = sorted(skip - set(get_args(WorkflowGraphCheck)))
        if wrong:
            raise WorkflowValidationError(
                f"skip_graph_checks names unknown checks {wrong}; the checks are "
                f"{', '.join(get_args(WorkflowGraphCheck))}"
            )
        self._skip_graph_checks = skip
        self._workflow_name = workflow_name
        self._serializer = serializer
        self._spec = WorkflowSpec.of(type(self))
        self._timeout = timeout
        self._disable_validation = disable_validation
        self._verbose = verbose
        self._validated = False
        self._journal = journal if journal is None or isinstance(journal, Journal) else Journal(journal)
        self._session = WorkflowSession(
            self,
            self._spec,
            timeout=timeout,
            verbose=verbose,
            num_concurrent_runs=num_concurrent_runs,
            journal=self._journal,
        )
        bind_host(self, self._session)

    # -- what the workflow is ------------------------------------------------------------------

    @property
    def workflow_name(self) -> str:
        """The name given as ``Workflow(workflow_name=...)``, else the class's import path (``module.Qualname``)."""
        return self._workflow_name if self._workflow_name is not None else qualified_name(type(self))

    @property
    def serializer(self) -> BaseSerializer | None:
        """The serializer of this workflow's context snapshots (``ctx.to_dict()``, ``Context.from_dict``) when the
        call names none; None: ``JsonSerializer()``."""
        serializer: BaseSerializer | None = getattr(self, "_serializer", None)  # a step actor's copy has none
        return serializer

    @property
    def start_event_class(self) -> type[StartEvent]:
        """The StartEvent type this workflow's steps accept."""
        return self._spec.start_event

    @property
    def stop_event_class(self) -> type[StopEvent]:
        """The StopEvent type this workflow's steps return."""
        return self._spec.stop_event

    @property
    def events(self) -> list[type[Event]]:
        """Every event type the steps accept or return."""
        return self._spec.events

    @classmethod
    def add_step(cls, func: Callable[..., Any]) -> None:
        """Add a free function decorated with ``@step(workflow=cls)`` as a step of ``cls``."""
        if config_of(func) is None:
            raise WorkflowValidationError(f"Step function {func.__name__} is missing the `@step` decorator.")
        if func.__name__ in free_steps(cls) or hasattr(cls, func.__name__):
            raise WorkflowValidationError(
                f"A step {func.__name__} is already part of this workflow, please choose another name."
            )
        add_free_step(cls, func)

    def validate(self) -> bool:
        """Check the event graph; ``WorkflowValidationError`` names what is wrong. True if it uses human input."""
        return Workflow._validate(self)

    def _validate(self) -> bool:
        validate_graph(self._spec, self._skip_graph_checks)
        validate_resources(self._spec)
        self._spec.state_type  # noqa: B018 - refuses steps that type the state differently
        self._validated = True
        return self._spec.uses_human_input

    # -- pickling into step actors -----------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_session", None)  # the driver's side stays with the driver
        state.pop("_journal", None)  # and so does the journal (its filesystem may not pickle)
        state.pop("_serializer", None)  # and the snapshots' serializer
        return state

    # -- runs ----------------------------------------------------------------------------------

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
            return self._spec.start_event(**kwargs)
        except ValidationError as err:
            name = self._spec.start_event.__name__
            raise WorkflowRuntimeError(
                f"Failed creating a start event of type '{name}' with the keyword arguments: {kwargs}"
            ) from err

    def run(
        self, ctx: Context[Any] | None = None, start_event: StartEvent | None = None, **kwargs: Any
    ) -> WorkflowHandler:
        """Start a run and return its handler at once (call from a running event loop).

        ``await handler`` gives the StopEvent's result; ``ctx`` continues a context of an earlier run, or
        resumes the run of a snapshot (``Context.from_dict``).
        """
        if not self._validated and not self._disable_validation:
            Workflow._validate(self)  # not self.validate(): a step may be named "validate"
        ctx = ctx if ctx is not None else Context(self)
        driver = face_of(ctx)
        resuming = driver is not None and driver.resume is not None  # a snapshot's run goes on: no new start event
        event = None if resuming else self._start_event(start_event, kwargs)
        try:
            asyncio.get_running_loop()
        except RuntimeError as err:
            raise WorkflowRuntimeError(
                "workflow.run() needs a running event loop: call it from async code (asyncio.run(main()))"
            ) from err
        run = self._session.begin(ctx, event)
        return self._handler(ctx, run)

    @property
    def journal(self) -> Journal | None:
        """Where this instance's runs record their progress (``Workflow(journal=...)``), if anywhere (None in a step
        actor: the journal stays with the driver)."""
        journal: Journal | None = getattr(self, "_journal", None)
        return journal

    def resume(self, run_id: str) -> WorkflowHandler:
        """The handler of run ``run_id`` of this workflow's journal (call from a running event loop).

        A run still running there (its driver died, or this is another process) goes on from its last checkpoint on
        this instance's actors, under the same id, and keeps journaling; for a finished run, ``await handler`` gives
        its stored result or raises its stored error as ``WorkflowRuntimeError``. ``JournalError`` when the journal
        has no such run of this workflow class.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError as err:
            raise WorkflowRuntimeError(
                "workflow.resume() needs a running event loop: call it from async code (asyncio.run(main()))"
            ) from err
        ctx, run = self._session.resume(run_id)
        return self._handler(ctx, run)

    @staticmethod
    def _handler(ctx: Context[Any], run: RunStart) -> WorkflowHandler:
        handler = WorkflowHandler(ctx, run.run_id, run.drive, run.cancel, run.observer, run.expose)
        driver = face_of(ctx)
        if driver is not None:
            driver.handler = handler  # ctx.stream_events(), ctx.get_result() and ctx.running_steps() read it
        return handler

    async def stats(self) -> WorkflowStats:
        """The figures per step of every run of this instance so far (``handler.stats()`` for one run), counted by
        its dispatcher: they start again when its actors do (after an idle release, ``close()`` or an actor death)."""
        return await self._session.stats()

    # -- lifetime ------------------------------------------------------------------------------

    async def close(self) -> None:
        """Release this instance's actors; a later run starts (or takes) a set again. They are parked for a later
        instance of the same class while the driver's park has room (``RAYFLOW_PARK_SETS``, for up to
        ``RAYFLOW_PARK_S`` seconds), else stopped and waited for until they are gone."""
        await self._session.close()

    async def __aenter__(self) -> Workflow:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def get_steps_from_class(workflow_class: type) -> dict[str, Callable[..., Any]]:
    """The steps of ``workflow_class`` by name: its ``@step`` methods (a subclass's override wins) and the free
    functions added to it with ``@step(workflow=...)``."""
    return steps_of(workflow_class)


def get_steps_from_instance(workflow: Workflow) -> dict[str, Callable[..., Any]]:
    """The steps of ``workflow`` by name, its methods bound to it."""
    return {
        name: getattr(workflow, name) if getattr(type(workflow), name, None) is func else func
        for name, func in steps_of(type(workflow)).items()
    }
