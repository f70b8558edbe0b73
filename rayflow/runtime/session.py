"""The driver's side of one workflow instance: its runs, and the caller's face of its contexts.

``Workflow.run()`` asks its session to ``begin`` a run; the handler it returns drives the run with the
coroutine the session gives it: the run waits for a slot (``num_concurrent_runs``), starts the instance's
actors if needed (``WorkflowRuntime``), seeds its context's state, starts (or resumes) the run on the
dispatcher, then reads the run's stream into the handler until the run ends, turning the end into the
StopEvent or the error ``await handler`` raises. The session is the ``ContextHost`` of the instance:
``Context(workflow)`` gets its caller's face here (``DriverFace``), which reaches the store through the
context actor and sends events into the running run.
"""

from __future__ import annotations

import asyncio
import sys
import types
import uuid
import weakref
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from ray import cloudpickle

from rayflow.context.context import Context, WaitOptions, face_of
from rayflow.context.state_store import DictState, StateStore
from rayflow.core.commands import EndRun, Outcome
from rayflow.core.envelope import START_ID, Envelope, Kind
from rayflow.core.state import Pending
from rayflow.errors import (
    ContextStateError,
    WorkflowCancelledByUser,
    WorkflowRuntimeError,
    WorkflowStuckError,
    WorkflowTimeoutError,
)
from rayflow.events import (
    Event,
    StartEvent,
    StopEvent,
    WorkflowCancelledEvent,
    WorkflowFailedEvent,
    WorkflowTimedOutEvent,
)
from rayflow.retry_policy import RetryInfo
from rayflow.runtime.context_actor import ContextActor
from rayflow.runtime.runtime import WorkflowRuntime
from rayflow.spec import WorkflowSpec

__all__ = ["Publish", "RunStart", "WorkflowSession"]

#: Where a run's streamed events go on the caller's side (the handler's queue).
Publish = Callable[[Event], None]


@dataclass(frozen=True)
class RunStart:
    """A run the session began: its id, the coroutine that drives it (given where to publish its events), and how
    to cancel it."""

    run_id: str
    drive: Callable[[Publish], Coroutine[Any, Any, StopEvent]]
    cancel: Callable[[], object]


def _user_modules(classes: list[type]) -> list[types.ModuleType]:
    """Modules of ``classes`` that a Ray worker may not import: the user's files and modules made in memory."""
    found = []
    for name in sorted({c.__module__ for c in classes}):
        module = sys.modules.get(name)
        if module is None or name == "__main__" or name.split(".")[0] == "rayflow" or name in sys.builtin_module_names:
            continue  # (cloudpickle sends ``__main__``'s classes by value already)
        path = getattr(module, "__file__", None) or ""
        if path and ("site-packages" in path or "dist-packages" in path or path.startswith(sys.base_prefix)):
            continue  # installed: workers import it
        found.append(module)  # a file of the user's, or a module made in memory (no file at all)
    return found


def workflow_blob(workflow: object, spec: WorkflowSpec) -> bytes:
    """The spec and the workflow instance as step actors receive them.

    Modules of the workflow's classes that a Ray worker may not import (a script, a test module) are
    registered to travel by value from this process, for good: state models and results defined there
    cross between actors too.
    """
    registered = cloudpickle.list_registry_pickle_by_value()
    for module in _user_modules([*type(workflow).__mro__, *spec.event_keys]):
        if module.__name__ not in registered:
            cloudpickle.register_pickle_by_value(module)
    return cloudpickle.dumps((spec, workflow))


class WorkflowSession:
    """The runs of one workflow instance, and its actors (``WorkflowRuntime``)."""

    def __init__(
        self,
        workflow: object,
        spec: WorkflowSpec,
        *,
        timeout: float | None,
        verbose: bool,
        num_concurrent_runs: int | None,
    ) -> None:
        owner = weakref.ref(workflow)
        self._owner = owner
        self._spec = spec
        self._timeout = timeout
        self._verbose = verbose
        self._num_concurrent_runs = num_concurrent_runs
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        label = f"rayflow.{spec.name}.{uuid.uuid4().hex[:8]}"
        self.runtime = WorkflowRuntime(workflow, spec, label, lambda: self._blob(owner), verbose)

    def _blob(self, owner: weakref.ReferenceType[object]) -> bytes:
        workflow = owner()
        if workflow is None:
            raise WorkflowRuntimeError("The workflow of this context was garbage-collected")
        return workflow_blob(workflow, self._spec)

    @property
    def spec(self) -> WorkflowSpec:
        return self._spec

    def driver_face(self, ctx_id: str) -> _DriverFace:
        workflow = self._owner()
        if workflow is None:
            raise ContextStateError("The workflow of this context was garbage-collected")
        return _DriverFace(self, ctx_id, workflow)

    # -- runs ----------------------------------------------------------------------------------

    def begin(self, ctx: Context[Any], start: StartEvent | None) -> RunStart:
        """Claim ``ctx`` for a new run (``start`` None: the context resumes a snapshot's run)."""
        face = face_of(ctx)
        if not isinstance(face, _DriverFace) or face.session is not self:
            raise WorkflowRuntimeError("run(ctx=...) needs a context made with Context(workflow) of this workflow")
        if face.running:
            raise WorkflowRuntimeError("This context already has a run going on")
        run_id = uuid.uuid4().hex
        face.run_id, face.running, face.pending = run_id, True, []
        started = asyncio.Event()
        return RunStart(
            run_id,
            lambda publish: self._drive(run_id, face, start, started, publish),
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
        dispatcher = self.runtime.dispatcher
        if dispatcher is not None:
            dispatcher.cancel(run_id)

    async def context_actor(self, face: _DriverFace) -> ContextActor:
        """The context actor, started if needed, with ``face``'s context seeded (its state type, a snapshot's state)."""
        _, context = await self.runtime.start()
        if not face.seeded:
            await context.seed(face.ctx_id, self._spec.state_type, face.seed)
            face.seed, face.seeded = None, True
        return context

    async def _drive(
        self, run_id: str, face: _DriverFace, start: StartEvent | None, started: asyncio.Event, publish: Publish
    ) -> StopEvent:
        runtime, codec = self.runtime, self._spec.codec
        slots = self._run_slots()
        if slots is not None:
            await slots.acquire()
        runtime.run_started()
        try:
            dispatcher, _ = await runtime.start()
            await self.context_actor(face)
            resume, face.resume = face.resume, None
            if resume is not None:  # a context from a snapshot: its unfinished work, not a new start
                await dispatcher.resume_run(run_id, face.ctx_id, resume, self._timeout)
            else:
                assert start is not None
                start_envelope = codec.encode(start, event_id=START_ID)
                await dispatcher.start_run(run_id, face.ctx_id, start_envelope, self._timeout)
            pending, face.pending = face.pending, None
            if pending:
                dispatcher.emit(run_id, pending)
            started.set()
            while True:
                for item in await dispatcher.next_items(run_id):
                    if isinstance(item, EndRun):
                        return self._finish(item, publish)
                    event = codec.loads(item)
                    if self._verbose:
                        print(f"Streamed {type(event).__name__}")
                    publish(event)
        finally:
            started.set()
            face.running, face.pending = False, None
            runtime.run_ended()
            if slots is not None:
                slots.release()

    def _finish(self, end: EndRun, publish: Publish) -> StopEvent:
        """The run's StopEvent, published last; or, published, the event of how it failed, and its error raised."""
        codec = self._spec.codec
        if end.outcome is Outcome.DONE:
            stop: StopEvent = codec.loads(end.payload.payload)
            publish(stop)
            return stop
        if end.outcome is Outcome.TIMED_OUT:
            publish(WorkflowTimedOutEvent(timeout=self._timeout or 0.0, active_steps=list(end.active_steps)))
            raise WorkflowTimeoutError(end.message)
        if end.outcome is Outcome.CANCELLED:
            publish(WorkflowCancelledEvent())
            raise WorkflowCancelledByUser(end.message)
        error: BaseException
        if end.outcome is Outcome.STUCK:
            error = WorkflowStuckError(end.message)
        else:
            error = codec.loads(end.payload) if end.payload is not None else WorkflowRuntimeError(end.message)
        publish(
            WorkflowFailedEvent(
                step_name=end.step or "", exception=error, attempts=end.attempts, elapsed_seconds=end.elapsed
            )
        )
        raise error

    # -- snapshots and lifetime ----------------------------------------------------------------

    def read_pending(self, run_id: str) -> Pending | None:
        dispatcher = self.runtime.dispatcher
        return None if dispatcher is None else dispatcher.snapshot_sync(run_id)

    def read_state(self, ctx_id: str) -> Any:
        if not self.runtime.started:
            state_type = self._spec.state_type
            return state_type() if state_type is not None else DictState()
        _, context = self.runtime.start_blocking()
        return context.get_state_sync(ctx_id)

    async def close(self) -> None:
        await self.runtime.close()


class _DriverFace:
    """The caller's side of one ``Context``: the store through the context actor, events into its run.

    It holds its workflow: a context (and so a handler) keeps the workflow, and its actors, alive.
    """

    def __init__(self, session: WorkflowSession, ctx_id: str, workflow: object) -> None:
        self.session = session
        self.workflow = workflow
        self.ctx_id = ctx_id
        self.spec = session.spec
        self.run_id: str | None = None
        self.running = False
        #: Events sent before the run reached the dispatcher; None once it has.
        self.pending: list[Envelope] | None = None
        #: The state a snapshot starts from, until the context actor has it (``seeded``).
        self.seed: Any = None
        self.seeded = False
        #: A snapshot's unfinished work, until a run resumes it.
        self.resume: Pending | None = None

    def store(self, ctx_id: str) -> StateStore[Any]:
        async def actor() -> ContextActor:
            return await self.session.context_actor(self)

        return StateStore(ctx_id, actor)

    def send_event(self, event: Event, step: str | None) -> None:
        if not self.running:
            raise ContextStateError("send_event() called before workflow started. Call workflow.run() first.")
        if step is not None:
            self.spec.check_target(step, event)
        self._emit(self.spec.codec.encode(event, target=step, event_id=uuid.uuid4().bytes))

    def write_event_to_stream(self, event: Event) -> None:
        if not self.running:
            raise ContextStateError("write_event_to_stream() called before workflow started.")
        self._emit(self.spec.codec.encode(event, kind=Kind.STREAM, event_id=uuid.uuid4().bytes))

    def _emit(self, envelope: Envelope) -> None:
        dispatcher = self.session.runtime.dispatcher
        if self.pending is not None or dispatcher is None or self.run_id is None:
            assert self.pending is not None
            self.pending.append(envelope)  # sent as soon as the run has reached the dispatcher
        else:
            dispatcher.emit(self.run_id, [envelope])

    def collect_events(self, event: Event, expected: list[type[Event]], buffer_id: str) -> list[Event] | None:
        raise ContextStateError("collect_events only works inside a step")

    async def wait_for_event(self, event_type: type[Event], options: WaitOptions) -> Event:
        raise ContextStateError("wait_for_event only works inside a step")

    def retry_info(self) -> RetryInfo:
        if self.run_id is None:
            raise ContextStateError("retry_info() needs a running workflow: call workflow.run() first")
        raise ContextStateError("retry_info() only works inside a step: it describes the running step's retries")

    @property
    def is_running(self) -> bool:
        return self.running

    def read_state(self) -> Any:
        return self.session.read_state(self.ctx_id)

    def read_pending(self) -> Pending | None:
        return None if self.run_id is None else self.session.read_pending(self.run_id)
