"""The driver's side of one workflow instance: its runs, and the caller's face of its contexts.

``Workflow.run()`` asks its session to ``begin`` a run; the handler it returns drives the run with the
coroutine the session gives it: the run waits for a slot (``num_concurrent_runs``), starts the instance's
actors if needed (``WorkflowRuntime``), seeds its context's state, starts (or resumes) the run on the
dispatcher, then reads the run's stream into the handler until the run ends, turning the end into the
StopEvent or the error ``await handler`` raises (the records of step invocations on the stream go to the run's
observer, ``rayflow.runtime.observer``: verbose lines, the trace, OpenTelemetry spans). The session is the
``ContextHost`` of the instance: ``Context(workflow)`` gets its caller's face here (``rayflow.runtime.caller_face``),
which reaches the store through the context actor and sends events into the running run.

A dead dispatcher or context actor fails the runs it served with ``WorkflowActorDiedError`` (the dispatcher's
death is seen here, the context actor's by the dispatcher), and the next run starts a new set of actors. Where a
context's state lives, and for how long, is ``rayflow.runtime.instance_contexts``.

With a journal (``Workflow(journal=...)``) each run records its progress (``rayflow.runtime.journaling``), and a run
whose dispatcher or context actor died goes on from its last checkpoint on a new set of actors, under the same run
id, up to ``RAYFLOW_JOURNAL_RECOVERIES`` times; ``resume`` picks up a journaled run from another driver.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
import weakref
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from ray.exceptions import RayActorError

from rayflow.codec import qualified_name
from rayflow.context.context import Context, face_of
from rayflow.core.commands import EndRun, Outcome
from rayflow.core.envelope import INTERNAL_KEYS, START_ID
from rayflow.core.state import Pending
from rayflow.core.stats import StatsBook, WorkflowStats
from rayflow.errors import (
    JournalError,
    WorkflowActorDiedError,
    WorkflowRuntimeError,
)
from rayflow.events import (
    StartEvent,
    StopEvent,
    WorkflowFailedEvent,
    internal_event,
)
from rayflow.journal import Journal, RunRecord, RunStatus
from rayflow.runtime.actors import first_line
from rayflow.runtime.blob import workflow_blob
from rayflow.runtime.caller_face import CallerFace
from rayflow.runtime.context_actor import ContextActor
from rayflow.runtime.dispatcher import Dispatcher
from rayflow.runtime.instance_contexts import InstanceContexts
from rayflow.runtime.journaling import RunJournal
from rayflow.runtime.observer import RunObserver
from rayflow.runtime.run_end import JOURNAL_STATUS, Publish, death_of, finish
from rayflow.runtime.runtime import WorkflowRuntime
from rayflow.spec import WorkflowSpec

__all__ = ["RunStart", "WorkflowSession"]


@dataclass(frozen=True)
class RunStart:
    """A run the session began: its id, the coroutine that drives it (given where to publish its events), how
    to cancel it, and what the driver learns of its step invocations."""

    run_id: str
    drive: Callable[[Publish], Coroutine[Any, Any, StopEvent]]
    cancel: Callable[[], object]
    observer: RunObserver | None = None
    #: The caller streams the run's internal events from now on.
    expose: Callable[[], object] = lambda: None


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
        journal: Journal | None = None,
    ) -> None:
        owner = weakref.ref(workflow)
        self._owner = owner
        self._spec = spec
        self._timeout = timeout
        self._verbose = verbose
        self._num_concurrent_runs = num_concurrent_runs
        self._journal = journal
        self._workflow_name = qualified_name(type(workflow))
        #: Ids of the runs this session drives now.
        self._running: set[str] = set()
        #: Runs whose caller streams the engine's internal events (``stream_events(expose_internal=True)``).
        self._internal: set[str] = set()
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        #: The instance's live contexts, and where their states live.
        self._contexts = contexts = InstanceContexts(spec, owner)
        label = f"rayflow.{spec.name}.{uuid.uuid4().hex[:8]}"
        self.runtime = WorkflowRuntime(workflow, spec, label, lambda: self._blob(owner), verbose, contexts.keep_states)
        contexts.runtime = self.runtime
        # What a caller's face asks of its session about its context (``FaceHost``).
        self.context_actor = contexts.context_actor
        self.context_died = contexts.context_died
        self.read_state = contexts.read_state

    def _blob(self, owner: weakref.ReferenceType[object]) -> bytes:
        workflow = owner()
        if workflow is None:
            raise WorkflowRuntimeError("The workflow of this context was garbage-collected")
        return workflow_blob(workflow, self._spec)

    @property
    def spec(self) -> WorkflowSpec:
        return self._spec

    def driver_face(self, ctx_id: str) -> CallerFace:
        """The caller's face of a new ``Context(workflow)`` of id ``ctx_id``."""
        return self._contexts.face(self, ctx_id)

    # -- runs ----------------------------------------------------------------------------------

    def begin(self, ctx: Context[Any], start: StartEvent | None, record: RunRecord | None = None) -> RunStart:
        """Claim ``ctx`` for a new run (``start`` None: the context resumes a snapshot's run; ``record``: the run of
        this journal record, under its id)."""
        face = face_of(ctx)
        if not isinstance(face, CallerFace) or face.session is not self:
            raise WorkflowRuntimeError("run(ctx=...) needs a context made with Context(workflow) of this workflow")
        if face.running:
            raise WorkflowRuntimeError("This context already has a run going on")
        run_id = uuid.uuid4().hex if record is None else record.run_id
        if run_id in self._running:
            raise WorkflowRuntimeError(f"Run {run_id} is going on in this process already")
        journaling = None
        if self._journal is not None:
            journaling = RunJournal(self._journal, run_id, self._spec, self._workflow_name, record)
        self._running.add(run_id)
        face.run_id, face.running, face.pending = run_id, True, []
        started = asyncio.Event()
        observer = RunObserver(run_id, self._spec.name, list(self._spec.steps), self._verbose)
        return RunStart(
            run_id,
            lambda publish: self._drive(run_id, face, start, started, publish, journaling, observer),
            lambda: asyncio.ensure_future(self._cancel(run_id, started)),
            observer,
            lambda: self._expose(run_id, started),
        )

    async def stats(self) -> WorkflowStats:
        """The figures of every run of this instance its actors served (live runs so far included), from its
        dispatcher (which counts the runs of each instance apart: equal instances may share it)."""
        dispatcher = self.runtime.dispatcher
        answer = None
        if dispatcher is not None:
            try:
                answer = await dispatcher.stats(None, self.runtime.label)
            except RayActorError:
                answer = None
        book, queued = answer if answer is not None else (StatsBook(), {})
        return book.snapshot(list(self._spec.steps), queued)

    def resume(self, run_id: str) -> tuple[Context[Any], RunStart]:
        """The run ``run_id`` of this session's journal: a run still running goes on from its last checkpoint on this
        instance's actors; a finished one gives its stored end. ``JournalError`` if the journal cannot give it."""
        journal = self._journal
        if journal is None:
            raise WorkflowRuntimeError("resume(run_id) needs a journal: Workflow(journal=path)")
        workflow = self._owner()
        if workflow is None:
            raise WorkflowRuntimeError("The workflow was garbage-collected")
        record = journal.read(run_id)
        if record.workflow != self._workflow_name:
            raise JournalError(
                f"Run {run_id} in the journal {journal.location} is a run of {record.workflow}, not of "
                f"{self._workflow_name}"
            )
        if record.finished:
            return Context(workflow), self._replay(record)
        if record.checkpoint is None:
            raise JournalError(f"Run {run_id} in the journal {journal.location} has no checkpoint to resume from")
        ctx: Context[Any] = Context.from_dict(workflow, record.checkpoint, journal.serializer)
        return ctx, self.begin(ctx, None, record)

    def _replay(self, record: RunRecord) -> RunStart:
        """A finished run's end as its journal recorded it: its StopEvent, or its error as ``WorkflowRuntimeError``."""
        assert self._journal is not None
        stop = self._journal.stop_event(record, self._spec) if record.status is RunStatus.DONE else None

        async def drive(publish: Publish) -> StopEvent:
            if stop is not None:
                publish(stop)
                return stop
            error = WorkflowRuntimeError(
                f"Run {record.run_id} ended {record.status.value}: {record.error_type}: {record.error}"
            )
            publish(WorkflowFailedEvent(step_name="", exception=error))
            raise error

        return RunStart(record.run_id, drive, lambda: None)

    def _run_slots(self) -> asyncio.Semaphore | None:
        """The semaphore that caps concurrent runs (``num_concurrent_runs``) on the running event loop."""
        if self._num_concurrent_runs is None:
            return None
        loop = asyncio.get_running_loop()
        slots = self._slots.get(loop)
        if slots is None:
            slots = self._slots[loop] = asyncio.Semaphore(self._num_concurrent_runs)
        return slots

    def _expose(self, run_id: str, started: asyncio.Event) -> asyncio.Future[None] | None:
        """Stream the run's internal events: from its start if it has not reached the dispatcher yet (the usual
        case: ``stream_events`` right after ``run()``), else from when the dispatcher hears of it."""
        if run_id in self._internal:
            return None
        self._internal.add(run_id)

        async def tell() -> None:
            await started.wait()
            dispatcher = self.runtime.dispatcher
            if dispatcher is not None and run_id in self._running:
                dispatcher.expose(run_id)

        return asyncio.ensure_future(tell())

    async def _cancel(self, run_id: str, started: asyncio.Event) -> None:
        await started.wait()  # a cancel asked before the run reached the dispatcher waits for it
        dispatcher = self.runtime.dispatcher
        if dispatcher is not None:
            dispatcher.cancel(run_id)

    def _dispatcher_died(self, dispatcher: Dispatcher, err: RayActorError) -> WorkflowActorDiedError:
        """``dispatcher`` did not answer: forget its set of actors; the error to raise."""
        self.runtime.died(dispatcher)
        return WorkflowActorDiedError(
            f"The dispatcher of workflow {self.runtime.label} died: its runs and the state of its contexts are lost "
            f"({first_line(err)})"
        )

    async def _drive(
        self,
        run_id: str,
        face: CallerFace,
        start: StartEvent | None,
        started: asyncio.Event,
        publish: Publish,
        journaling: RunJournal | None,
        observer: RunObserver,
    ) -> StopEvent:
        runtime = self.runtime
        slots = self._run_slots()
        if slots is not None:
            await slots.acquire()
        runtime.run_started()
        try:
            while True:
                try:
                    dispatcher, context = await self._begin(run_id, face, start, observer)
                    end = await self._follow(run_id, face, dispatcher, context, started, publish, journaling, observer)
                except WorkflowActorDiedError as error:
                    if journaling is not None and self._recover(face, journaling, error):
                        continue
                    if journaling is not None:
                        await journaling.ended(RunStatus.FAILED, error)
                    raise self._failed(error, face, publish) from None
                return await self._end(end, face, publish, journaling)
        finally:
            observer.end("failed", "the run's actors died")  # unless it ended on the dispatcher (said then)
            started.set()
            self._running.discard(run_id)
            self._internal.discard(run_id)
            face.running, face.pending = False, None
            runtime.run_ended()
            if slots is not None:
                slots.release()

    async def _follow(
        self,
        run_id: str,
        face: CallerFace,
        dispatcher: Dispatcher,
        context: ContextActor,
        started: asyncio.Event,
        publish: Publish,
        journaling: RunJournal | None,
        observer: RunObserver,
    ) -> EndRun:
        """Read the started run's stream into ``publish`` (checkpointing it, if journaled) until its end;
        ``WorkflowActorDiedError`` if its dispatcher or context actor died."""
        codec = self._spec.codec
        try:
            pending, face.pending = face.pending, None
            if pending:
                dispatcher.emit(run_id, pending)
            started.set()
            if journaling is not None:
                journaling.keep(
                    lambda: self._take(run_id, face.ctx_id, dispatcher, context), lambda: dispatcher.cancel(run_id)
                )
            while True:
                for item in await dispatcher.next_items(run_id):
                    if observer.see(item):
                        continue
                    if isinstance(item, EndRun):
                        died = death_of(item, self._spec.codec)
                        if died is not None:  # the dispatcher saw its context actor die
                            self.runtime.died(dispatcher)
                            raise died
                        observer.end(item.outcome.value, None if item.outcome is Outcome.DONE else item.message)
                        return item
                    if item.type_keys == INTERNAL_KEYS:
                        publish(internal_event(item.payload))
                        continue
                    face.see(item.state_version)  # what the caller does next happens after what it read
                    if journaling is not None and not journaling.first_time(item):
                        continue  # streamed before a recovery
                    event = await codec.loads_async(item.payload)
                    if self._verbose:
                        print(f"Streamed {type(event).__name__}")
                    publish(event)
        except RayActorError as err:
            raise self._dispatcher_died(dispatcher, err) from err
        finally:
            if journaling is not None:
                await journaling.stop()

    async def _take(
        self, run_id: str, ctx_id: str, dispatcher: Dispatcher, context: ContextActor
    ) -> tuple[Pending, Any] | None:
        """A checkpoint of a run: its unfinished work first, then its context's state (a step finishing in between
        runs again on resume; it never goes lost). None once the run ended."""
        pending = await dispatcher.snapshot(run_id)
        if pending is None:
            return None
        return pending, await context.get_state(ctx_id)

    def _recover(self, face: CallerFace, journaling: RunJournal, error: WorkflowActorDiedError) -> bool:
        """Make ``face`` resume the run from its last checkpoint, if it has one and recoveries are left."""
        resumed = journaling.recover(error)
        if resumed is None:
            return False
        state, pending = resumed
        face.seed, face.seeded_into, face.resume, face.pending = state, None, pending, []
        return True

    async def _end(self, end: EndRun, face: CallerFace, publish: Publish, journaling: RunJournal | None) -> StopEvent:
        """The run's StopEvent (its final record written first, if journaled), or its error raised."""
        if end.outcome is Outcome.DONE:
            face.see(end.payload.state_version)  # a next run of this context reads what this one wrote
        if journaling is None:
            return finish(end, self._spec.codec, self._timeout, publish)
        if journaling.failure is not None and end.outcome is Outcome.CANCELLED:
            await journaling.ended(RunStatus.FAILED, journaling.failure)
            publish(WorkflowFailedEvent(step_name="", exception=journaling.failure))
            raise journaling.failure
        try:
            stop = finish(end, self._spec.codec, self._timeout, publish)
        except BaseException as error:
            await journaling.ended(JOURNAL_STATUS[end.outcome], error)
            raise
        await journaling.done(stop)
        return stop

    async def _begin(
        self, run_id: str, face: CallerFace, start: StartEvent | None, observer: RunObserver
    ) -> tuple[Dispatcher, ContextActor]:
        """Start the run (or resume a snapshot's) on the dispatcher, seeding its context first. Actors found dead on
        the way (they died while the instance had no run) are replaced once: the run had not begun."""
        retried = False
        while True:
            dispatcher, context = await self.runtime.start()
            seeded = face.seed, face.seeded_into
            try:
                await self.context_actor(face)
                if face.resume is not None:  # a context from a snapshot: its unfinished work, not a new start
                    await dispatcher.resume_run(
                        run_id, face.ctx_id, face.resume, self._timeout, observer.forward, self.runtime.label
                    )
                    face.resume = None
                else:
                    assert start is not None
                    await dispatcher.start_run(
                        run_id,
                        face.ctx_id,
                        self._spec.codec.encode(start, event_id=START_ID, state_version=face.known),
                        self._timeout,
                        observer.forward,
                        internal=run_id in self._internal,
                        tenant=self.runtime.label,
                    )
                observer.begin(functools.partial(dispatcher.stats, run_id))
                return dispatcher, context
            except RayActorError as err:
                error = self._dispatcher_died(dispatcher, err)
            except WorkflowActorDiedError as died:
                error = died
            face.seed, face.seeded_into = seeded  # seeded into the dead set: that lost nothing of this run's
            if retried:
                raise error
            retried = True

    def _failed(self, error: WorkflowActorDiedError, face: CallerFace, publish: Publish) -> WorkflowActorDiedError:
        """A run whose actors died: its failure published; ``face``'s context starts anew (it was told)."""
        face.seed, face.seeded_into = None, None
        publish(WorkflowFailedEvent(step_name="", exception=error))
        return error

    # -- snapshots and lifetime ----------------------------------------------------------------

    def read_pending(self, run_id: str) -> Pending | None:
        dispatcher = self.runtime.dispatcher
        if dispatcher is None:
            return None
        try:
            return dispatcher.snapshot_sync(run_id)
        except RayActorError as err:
            raise self._dispatcher_died(dispatcher, err) from err

    async def close(self) -> None:
        await self.runtime.close()
