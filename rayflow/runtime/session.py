"""The driver's side of one workflow instance: its runs, and the caller's face of its contexts.

``Workflow.run()`` asks its session to ``begin`` a run; the handler it returns drives the run with the
coroutine the session gives it: the run waits for a slot (``num_concurrent_runs``), starts the instance's
actors if needed (``WorkflowRuntime``), seeds its context's state, starts (or resumes) the run on the
dispatcher, then reads the run's stream into the handler until the run ends, turning the end into the
StopEvent or the error ``await handler`` raises. The session is the ``ContextHost`` of the instance:
``Context(workflow)`` gets its caller's face here (``DriverFace``), which reaches the store through the
context actor and sends events into the running run.

A dead dispatcher or context actor fails the runs it served with ``WorkflowActorDiedError`` (the dispatcher's
death is seen here, the context actor's by the dispatcher), and the next run starts a new set of actors. A
context's state lives in the context actor while its ``Context`` lives: it is dropped when the ``Context`` is
garbage-collected, and kept on the face (as its seed) across an idle release of the actors.
"""

from __future__ import annotations

import asyncio
import sys
import types
import uuid
import warnings
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from ray import cloudpickle
from ray.exceptions import RayActorError

from rayflow.context.context import Context, WaitOptions, face_of
from rayflow.context.state_store import DictState, StateStore
from rayflow.core.commands import EndRun, Outcome
from rayflow.core.envelope import START_ID, Envelope, Kind
from rayflow.core.state import Pending
from rayflow.errors import (
    ContextStateError,
    WorkflowActorDiedError,
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
from rayflow.runtime.dispatcher import Dispatcher
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
        #: The caller's faces of the live ``Context`` objects of this instance.
        self._faces: weakref.WeakSet[_DriverFace] = weakref.WeakSet()
        label = f"rayflow.{spec.name}.{uuid.uuid4().hex[:8]}"
        self.runtime = WorkflowRuntime(workflow, spec, label, lambda: self._blob(owner), verbose, self._keep_states)

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
        face = _DriverFace(self, ctx_id, workflow)
        self._faces.add(face)
        # The finalizer holds the session, never the face; at interpreter exit it does not run (Ray may be gone).
        weakref.finalize(face, self._forget_context, ctx_id).atexit = False
        return face

    def _forget_context(self, ctx_id: str) -> None:
        """A ``Context`` was garbage-collected: its state goes, unless another live ``Context`` has its id."""
        if not any(face.ctx_id == ctx_id for face in self._faces):
            self.runtime.forget_context(ctx_id)

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
        """The context actor, started if needed, with ``face``'s context seeded (its state type, and the state it
        starts from: a snapshot's, or the one kept across an idle release)."""
        _, context = await self.runtime.start()
        if face.seeded_into is not context:
            if face.seeded_into is not None and face.seed is None:
                warnings.warn(
                    f"rayflow: the state of context {face.ctx_id} was lost with the actors of workflow "
                    f"{self.runtime.label}, which died; it starts again empty",
                    RuntimeWarning,
                    stacklevel=2,
                )
            # Marked seeded before the call: a call made meanwhile reaches the actor after the seed.
            seed, face.seed, face.seeded_into = face.seed, None, context
            try:
                await context.seed(face.ctx_id, self._spec.state_type, seed)
            except RayActorError as err:
                face.seed, face.seeded_into = seed, None
                raise self.context_died(context, err) from err
        return context

    def context_died(self, context: ContextActor, err: RayActorError) -> WorkflowActorDiedError:
        """``context`` did not answer: forget its set of actors (if still this instance's); the error to raise."""
        dispatcher = self.runtime.dispatcher
        if dispatcher is not None and self.runtime.context is context:
            self.runtime.died(dispatcher)
        return WorkflowActorDiedError(
            f"The context actor of workflow {self.runtime.label} died: the state of its contexts is lost "
            f"({_first_line(err)})"
        )

    def _dispatcher_died(self, dispatcher: Dispatcher, err: RayActorError) -> WorkflowActorDiedError:
        """``dispatcher`` did not answer: forget its set of actors; the error to raise."""
        self.runtime.died(dispatcher)
        return WorkflowActorDiedError(
            f"The dispatcher of workflow {self.runtime.label} died: its runs and the state of its contexts are lost "
            f"({_first_line(err)})"
        )

    async def _drive(
        self, run_id: str, face: _DriverFace, start: StartEvent | None, started: asyncio.Event, publish: Publish
    ) -> StopEvent:
        runtime, codec = self.runtime, self._spec.codec
        slots = self._run_slots()
        if slots is not None:
            await slots.acquire()
        runtime.run_started()
        try:
            try:
                dispatcher = await self._begin(run_id, face, start)
            except WorkflowActorDiedError as error:
                raise self._failed(error, face, publish) from None
            try:
                pending, face.pending = face.pending, None
                if pending:
                    dispatcher.emit(run_id, pending)
                started.set()
                while True:
                    for item in await dispatcher.next_items(run_id):
                        if isinstance(item, EndRun):
                            return self._finish(item, dispatcher, face, publish)
                        event = codec.loads(item)
                        if self._verbose:
                            print(f"Streamed {type(event).__name__}")
                        publish(event)
            except RayActorError as err:
                raise self._failed(self._dispatcher_died(dispatcher, err), face, publish) from err
        finally:
            started.set()
            face.running, face.pending = False, None
            runtime.run_ended()
            if slots is not None:
                slots.release()

    async def _begin(self, run_id: str, face: _DriverFace, start: StartEvent | None) -> Dispatcher:
        """Start the run (or resume a snapshot's) on the dispatcher, seeding its context first. Actors found dead on
        the way (they died while the instance had no run) are replaced once: the run had not begun."""
        retried = False
        while True:
            dispatcher, _ = await self.runtime.start()
            seeded = face.seed, face.seeded_into
            try:
                await self.context_actor(face)
                if face.resume is not None:  # a context from a snapshot: its unfinished work, not a new start
                    await dispatcher.resume_run(run_id, face.ctx_id, face.resume, self._timeout)
                    face.resume = None
                else:
                    assert start is not None
                    await dispatcher.start_run(
                        run_id, face.ctx_id, self._spec.codec.encode(start, event_id=START_ID), self._timeout
                    )
                return dispatcher
            except RayActorError as err:
                error = self._dispatcher_died(dispatcher, err)
            except WorkflowActorDiedError as died:
                error = died
            face.seed, face.seeded_into = seeded  # seeded into the dead set: that lost nothing of this run's
            if retried:
                raise error
            retried = True

    def _failed(self, error: WorkflowActorDiedError, face: _DriverFace, publish: Publish) -> WorkflowActorDiedError:
        """A run whose actors died: its failure published; ``face``'s context starts anew (it was told)."""
        face.seed, face.seeded_into = None, None
        publish(WorkflowFailedEvent(step_name="", exception=error))
        return error

    def _finish(self, end: EndRun, dispatcher: Dispatcher, face: _DriverFace, publish: Publish) -> StopEvent:
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
        if isinstance(error, WorkflowActorDiedError):  # the dispatcher saw its context actor die
            self.runtime.died(dispatcher)
            raise self._failed(error, face, publish)
        publish(
            WorkflowFailedEvent(
                step_name=end.step or "", exception=error, attempts=end.attempts, elapsed_seconds=end.elapsed
            )
        )
        raise error

    # -- snapshots and lifetime ----------------------------------------------------------------

    def read_pending(self, run_id: str) -> Pending | None:
        dispatcher = self.runtime.dispatcher
        if dispatcher is None:
            return None
        try:
            return dispatcher.snapshot_sync(run_id)
        except RayActorError as err:
            raise self._dispatcher_died(dispatcher, err) from err

    def read_state(self, ctx_id: str) -> Any:
        if not self.runtime.started:
            state_type = self._spec.state_type
            return state_type() if state_type is not None else DictState()
        _, context = self.runtime.start_blocking()
        try:
            return context.get_state_sync(ctx_id)
        except RayActorError as err:
            raise self.context_died(context, err) from err

    async def _keep_states(self, context: ContextActor) -> None:
        """Before an idle release stops ``context``: the state of each live ``Context`` seeded there becomes its
        face's seed, so its next run finds it in the next context actor. A state that cannot be read is said loudly."""
        faces = [face for face in list(self._faces) if face.seeded_into is context]
        if not faces:
            return
        try:
            states = await context.states([face.ctx_id for face in faces])
        except Exception as err:
            states, reason = {}, f"{type(err).__name__}: {err}"
        else:
            reason = "the context actor no longer held it"
        for face in faces:
            face.seeded_into = None
            if face.ctx_id in states:
                face.seed = states[face.ctx_id]
            else:
                warnings.warn(
                    f"rayflow: the state of context {face.ctx_id} could not be kept across the idle release of "
                    f"workflow {self.runtime.label}'s actors ({reason}); its next run starts from an empty state",
                    RuntimeWarning,
                    stacklevel=1,
                )

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
        #: The state the context starts from (a snapshot's, or one kept across an idle release), until the context
        #: actor has it (``seeded_into``).
        self.seed: Any = None
        #: The context actor this context was seeded into (a new one after a release or a death needs seeding).
        self.seeded_into: ContextActor | None = None
        #: A snapshot's unfinished work, until a run resumes it.
        self.resume: Pending | None = None

    def store(self, ctx_id: str) -> StateStore[Any]:
        async def actor() -> Any:
            return _Guarded(await self.session.context_actor(self), self.session)

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


class _Guarded:
    """The context actor's client as the caller's ``ctx.store`` uses it: a dead actor raises
    ``WorkflowActorDiedError``, never a Ray error."""

    def __init__(self, client: ContextActor, session: WorkflowSession) -> None:
        self._client = client
        self._session = session

    @asynccontextmanager
    async def edit(self, ctx_id: str) -> AsyncIterator[Any]:
        """``ContextActor.edit``, guarded the same way."""
        try:
            async with self._client.edit(ctx_id) as state:
                yield state
        except RayActorError as err:
            raise self._session.context_died(self._client, err) from err

    def __getattr__(self, name: str) -> Callable[..., Coroutine[Any, Any, Any]]:
        method = getattr(self._client, name)

        async def call(*args: Any) -> Any:
            try:
                return await method(*args)
            except RayActorError as err:
                raise self._session.context_died(self._client, err) from err

        return call


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
