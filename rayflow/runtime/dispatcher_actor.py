"""The dispatcher actor: applies the routing core to what happens, and carries out what it decides.

One dispatcher per workflow instance owns that instance's step pools and context actor, and serves every run of the
instance; ``rayflow.runtime.dispatcher.Dispatcher`` is the driver's typed client of it. Ticks (a run started, events
emitted, a step call came back, an actor is ready, a deadline passed) go through ``rayflow.core.reducer.reduce``;
the commands that come out start actors, send batches of work items to step actors, put events on run streams and
end runs. It knows the workflow by its routes (type keys and pool settings) and holds the pickled workflow only as
bytes to hand to the step actors it starts: it never unpickles an event or the workflow, so it loads no user code
(when an event's field must be read, for ``wait_for_event`` requirements, a step actor reads it). The driver reads a
run's stream (``rayflow.runtime.run_streams``) by long polling ``next_items``: the envelopes written to the stream
(with their ids), records of the run's step invocations as they finish (``rayflow.core.stats``: as many as the
driver asked for), and last the run's book and its ``EndRun``. The dispatcher keeps the statistics of each run and
of each instance it serves (``stats``), O(1) per step invocation.

A dispatcher and the actors it owns form a *set*, which the driver may park between workflow instances
(``rayflow.runtime.park``): ``park`` forgets the instance (its routes, runs, blob; the context actor's contexts;
each step actor's workflow, see ``rayflow.runtime.reusable_worker``) and keeps the processes; ``bind`` takes the next
instance's blob and routes and serves it as if newly created, binding kept step actors instead of starting new ones
(by step and index: their names stay the holder names of their store locks). A set may also start blank
(``spare``): its step actors never load a workflow until bound.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import time
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

import ray
from ray.exceptions import RayActorError

from rayflow.codec import EventCodec
from rayflow.config import settings
from rayflow.core.commands import (
    ArmGrowth,
    ArmRetry,
    ArmTimeout,
    ArmWaiterTimeout,
    CallStep,
    CheckRequirements,
    Command,
    ConfirmStopped,
    EndRun,
    Outcome,
    Publish,
    StartActor,
    StopActor,
    Warn,
    WatchCall,
)
from rayflow.core.envelope import Envelope
from rayflow.core.reducer import reduce
from rayflow.core.routing import RoutingTable, StepRoute
from rayflow.core.state import DispatcherState, Pending
from rayflow.core.stats import Invocation, StatsBook, StepStarted
from rayflow.core.ticks import (
    ActorStarted,
    ActorStartFailed,
    ActorUnresponsive,
    CallFinished,
    CallOverdue,
    CallWaiting,
    CancelRequested,
    EventsEmitted,
    GrowthDue,
    InternalAsked,
    RequirementsChecked,
    RetryDue,
    RunResumed,
    RunStarted,
    Tick,
    TimeoutReached,
    WaiterTimedOut,
    WarmUp,
)
from rayflow.errors import WorkflowActorDiedError
from rayflow.runtime.actors import first_line, stop_actors
from rayflow.runtime.claims import claim, claim_results
from rayflow.runtime.cluster import cluster_cores
from rayflow.runtime.context_actor import ContextActor
from rayflow.runtime.reusable_worker import ReusableWorker
from rayflow.runtime.run_stats import RunStatsKeeper
from rayflow.runtime.run_streams import RunDeadlines, RunStreams
from rayflow.runtime.step_actors import StepActors

__all__ = ["DispatcherActor"]


#: Seconds between two reads of the cluster's cores (at a run's start), which an autoscaler changes.
_CORES_EVERY_S = 10.0


def _fresh_state(routes: list[StepRoute]) -> DispatcherState:
    config = settings()
    return DispatcherState.of(
        RoutingTable.of(routes),
        config.max_batch,
        config.actor_pipeline,
        batch_target_s=config.batch_target_s,
        first_batch=config.first_batch,
        ended_memory=config.ended_snapshots,
        max_deliveries=config.max_deliveries,
        grace_s=config.shutdown_grace_s,
        actor_calls=config.actor_calls,
        cores=cluster_cores() if config.cap_pools_at_cores else None,
        grow_after_s=config.grow_after_s,
    )


class DispatcherActor:
    """The dispatcher of one actor set (see the module docstring); ``Dispatcher`` is its client."""

    def __init__(self, workflow_blob: bytes | None, routes: list[StepRoute], label: str, verbose: bool) -> None:
        self._state = _fresh_state(routes)
        self._blob = workflow_blob
        self._label = label
        self._verbose = verbose
        self._context = ContextActor.start(f"{label}.context")
        self._streams = RunStreams()
        self._deadlines = RunDeadlines()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._starting: list[asyncio.Task[Any]] = []
        self._warming = True
        self._self = ray.get_runtime_context().current_actor
        self._actors = StepActors(label, self._self, self._context)
        self._stats = RunStatsKeeper()
        self._cores_at = time.monotonic()

    async def ready(self) -> ContextActor:
        """Start every step pool to its warm size and the context actor, and wait for them (so a run's timeout counts
        the run, not the start of its workflow's actors); the context actor's client."""
        self._warming = True
        self._apply(WarmUp())
        await self._context.ready()
        await asyncio.gather(*self._starting)
        self._starting.clear()
        self._warming = False
        self._spawn(self._watch_context())
        return self._context

    async def spare(self, shape: list[tuple[str, int, float]]) -> bool:
        """Start blank step actors, ``count`` for each ``(step, count, num_gpus)`` of ``shape``, and the context
        actor; answers once they run. They load no workflow until ``bind``."""
        await asyncio.gather(self._context.ready(), self._actors.spare(shape))
        return True

    async def park(self) -> bool:
        """Forget the workflow instance served so far and keep the actors for another (see the module docstring).
        While a run is going on, nothing is forgotten: the set stops instead, as ``release`` (the call then fails with
        the actor's exit). A step actor that cannot forget its instance (something of it still runs there) is
        stopped."""
        if self._state.runs or self._streams:
            await self.release()
            return False
        self._deadlines.cancel_all()
        try:
            await self._actors.park()
            await self._context.reset()
        except RayActorError:  # a stop (an eviction, the drain at exit) ended the set meanwhile: nothing to keep
            return False
        self._blob, self._state = None, _fresh_state([])
        return True

    async def bind(self, workflow_blob: bytes, routes: list[StepRoute], verbose: bool) -> ContextActor:
        """Serve a new workflow instance with this set's actors, as ``ready`` does for a new set."""
        self._blob, self._verbose, self._state = workflow_blob, verbose, _fresh_state(routes)
        self._stats = RunStatsKeeper()
        return await self.ready()

    async def start_run(
        self,
        run_id: str,
        ctx_id: str,
        start: Envelope,
        timeout: float | None,
        forward: int = 0,
        internal: bool = False,
        tenant: str = "",
    ) -> None:
        """Start a run of instance ``tenant``; ``forward``: how many records of its step invocations to put on its
        stream (-1: all); ``internal``: its caller streams internal events."""
        self._open(run_id, forward, tenant)
        self._apply(RunStarted(run_id, ctx_id, start, timeout, asyncio.get_running_loop().time(), internal))

    async def expose(self, run_id: str) -> None:
        """The run's caller streams internal events from now on."""
        self._apply(InternalAsked(run_id))

    async def resume_run(
        self, run_id: str, ctx_id: str, pending: Pending, timeout: float | None, forward: int = 0, tenant: str = ""
    ) -> None:
        self._open(run_id, forward, tenant)
        self._apply(RunResumed(run_id, ctx_id, pending, timeout, asyncio.get_running_loop().time()))

    def _open(self, run_id: str, forward: int, tenant: str) -> None:
        now = time.monotonic()
        if self._state.cores is not None and now - self._cores_at > _CORES_EVERY_S:
            self._state.cores, self._cores_at = cluster_cores() or self._state.cores, now  # nodes come and go
        self._streams.open(run_id)
        self._stats.open(run_id, forward, tenant)

    async def stats(self, run_id: str | None, tenant: str = "") -> tuple[StatsBook, dict[str, int]] | None:
        """The book of run ``run_id`` (None: of every run of instance ``tenant`` served so far, ended or not) and the
        events queued for each step now; None for a run this dispatcher does not know (any more). See
        ``RunStatsKeeper.book``."""
        book = await self._stats.book(run_id, self._carried, tenant)
        return None if book is None else (book, self._state.queued(run_id))

    def _carried(self) -> list[str]:
        """The runs of the items of the step calls in flight."""
        return [item.run_id for call in self._state.calls.values() for item in call.items]

    async def started(self, run_id: str, note: StepStarted, after: None = None) -> None:
        """A step invocation began (sent by step actors of a verbose workflow): on to the run's stream."""
        self._streams.put(run_id, note)

    async def snapshot(self, run_id: str) -> Pending | None:
        """The run's unfinished work (also for a run that was cancelled, timed out or failed); None if unknown."""
        return self._state.pending(run_id)

    async def running_steps(self, run_id: str) -> list[str]:
        """The steps with an invocation of the run in a call now (``Context.running_steps()``)."""
        return self._state.running(run_id)

    async def emit(self, run_id: str, step: str | None, envelopes: list[Envelope], after: None = None) -> None:
        """Events a step (or the handler) emitted; ``after`` is the sender's previous emit, already applied. Large
        payloads the step actor holds are claimed first (``rayflow.runtime.claims``); if it died meanwhile, the
        events are dropped: its call comes back lost and its items run again."""
        try:
            envelopes = await claim(envelopes)
        except RayActorError:
            return
        self._apply(EventsEmitted(run_id, step, envelopes))

    async def call_waiting(self, step: str) -> None:
        """A step actor saw a call of ``step`` awaiting, its event loop mostly idle."""
        self._apply(CallWaiting(step))

    async def cancel(self, run_id: str) -> None:
        self._apply(CancelRequested(run_id))

    async def next_items(self, run_id: str) -> list[Any]:
        return await self._streams.take(run_id)

    async def shutdown(self) -> None:
        """Stop every actor this dispatcher started and wait until they are gone."""
        handles = [*(worker.handle for worker in self._actors.take_all()), self._context.handle]
        await self._context.unwatch()
        await stop_actors(handles)

    async def release(self) -> None:
        """``shutdown``, then end this actor: the answer to a workflow that was garbage-collected."""
        await self.shutdown()
        ray.actor.exit_actor()

    def _apply(self, tick: Tick) -> None:
        for command in reduce(self._state, tick):
            self._execute(command)

    def _execute(self, command: Command) -> None:
        if isinstance(command, CallStep):
            ref = self._actors.serving[(command.step, command.actor)].run(command.items, command.loans)
            self._spawn(self._await_call(command.call_id, ref))
        elif isinstance(command, Publish):
            self._streams.put(command.run_id, command.envelope)  # with its id: a driver resuming streams it once
        elif isinstance(command, StartActor):
            self._start_actor(command.step, command.actor)
        elif isinstance(command, EndRun):
            self._end_run(command)
        elif isinstance(command, ArmWaiterTimeout):
            waited = WaiterTimedOut(command.run_id, command.wait)
            self._deadlines.wait(command.run_id, command.after, functools.partial(self._apply, waited))
        elif isinstance(command, CheckRequirements):
            self._spawn(self._check(command))
        elif isinstance(command, ArmTimeout):
            reached = TimeoutReached(command.run_id, command.at)
            self._deadlines.timeout(command.run_id, command.at, functools.partial(self._apply, reached))
        elif isinstance(command, StopActor):
            self._stop_actor(command)
        elif isinstance(command, WatchCall):
            asyncio.get_running_loop().call_later(command.after, self._apply, CallOverdue(command.call_id))
        elif isinstance(command, ArmGrowth):
            asyncio.get_running_loop().call_later(command.after, self._apply, GrowthDue(command.step))
        elif isinstance(command, ArmRetry):
            retry = RetryDue(command.run_id, command.number)
            asyncio.get_running_loop().call_later(command.after, self._apply, retry)
        elif isinstance(command, ConfirmStopped):
            for step, actor in command.actors:
                self._spawn(self._confirm_stopped(command.run_id, step, actor))
        elif isinstance(command, Warn):
            print(f"rayflow: warning: run {command.run_id}: {command.message}", file=sys.stderr, flush=True)

    def _start_actor(self, step: str, index: int) -> None:
        """Bind the parked step actor of this step and number, or start a new one (``StepActors.start``)."""
        assert self._blob is not None
        num_gpus = self._state.routing.steps[step].num_gpus
        worker, ready = self._actors.start(step, index, self._blob, self._verbose, num_gpus)
        task = self._spawn(self._await_ready(step, index, worker, ready))
        if self._warming:
            self._starting.append(task)

    def _end_run(self, command: EndRun) -> None:
        self._deadlines.cancel(command.run_id)
        if command.outcome is Outcome.STUCK and command.collecting:
            self._spawn(self._end_stuck(command))
        else:
            self._close_run(command)

    async def _end_stuck(self, command: EndRun) -> None:
        """Ask the actors holding a stuck run's collect buffers what they still wait for, and say it in its error."""
        lines = await self._actors.collect_status(command.collecting, command.run_id, settings().shutdown_grace_s)
        if lines:
            command = replace(command, message=f"{command.message}. Waiting: {'; '.join(lines)}")
        self._close_run(command)

    def _close_run(self, command: EndRun) -> None:
        """Put the run's book and end on its stream, and tell every step actor the run is over."""
        self._streams.end(command, self._stats.close(command.run_id))
        self._actors.end_run(command.run_id)

    async def _await_ready(self, step: str, index: int, worker: ReusableWorker, ready: Awaitable[None]) -> None:
        try:
            await ready
        except Exception as err:
            self._actors.serving.pop((step, index), None)
            cause = getattr(err, "cause", None) or err
            self._apply(ActorStartFailed(step, index, f"{type(cause).__name__}: {cause}", None))
            return
        self._apply(ActorStarted(step, index))

    async def _await_call(self, call_id: int, ref: Any) -> None:
        await self._call_back(call_id, ref)
        await self._stats.call_back()

    async def _call_back(self, call_id: int, ref: Any) -> None:
        try:
            results, elapsed, retire, cpu, rows = await ref
        except RayActorError as err:
            self._apply(CallFinished(call_id, lost=f"the step actor died: {first_line(err)}"))
            return
        except Exception as err:  # the call itself failed (a step's own errors come back as results): never a hang
            self._apply(CallFinished(call_id, lost=f"the step call failed: {type(err).__name__}: {first_line(err)}"))
            return
        try:
            results = await claim_results(results)
        except Exception as err:  # the actor died before handing over its events' large payloads: run them again
            lost = f"the step actor did not hand over large payloads: {type(err).__name__}: {first_line(err)}"
            self._apply(CallFinished(call_id, lost=lost))
            return
        # Before the call's results: the book a run's end carries counts the step that ended it.
        self._observe([Invocation._make(row) for row in rows])
        self._apply(CallFinished(call_id, results, elapsed, retire=retire, cpu=cpu))

    def _observe(self, records: list[Invocation]) -> None:
        """Count the records of a call's step invocations, and send them on to the drivers that want them."""
        for done in self._stats.observe(records):
            self._streams.put(done.records[0].run_id, done, wake=self._verbose)

    def _stop_actor(self, command: StopActor) -> None:
        """End a step actor that left its pool (dead, blocked, or retiring): killed, since it may be blocked."""
        if not self._actors.stop((command.step, command.actor)):
            return
        print(f"rayflow: replacing actor {command.actor} of step {command.step!r}: {command.reason}", flush=True)
        self._spawn(self._release_locks(f"{self._label}.{command.step}.{command.actor}"))

    async def _release_locks(self, holder: str) -> None:
        """Free the store locks an ended step actor held or waited for (its ``edit_state`` will never end)."""
        try:
            released = await self._context.release_holder(holder)
        except RayActorError:
            return  # the context actor is gone too: its locks with it
        if released:
            print(f"rayflow: released {released} store lock(s) held by {holder}", flush=True)

    async def _confirm_stopped(self, run_id: str, step: str, actor: int) -> None:
        """Have an actor stop a run that ended; one that cannot answer within the grace period is blocked."""
        if not await self._actors.confirm_stopped((step, actor), run_id, settings().shutdown_grace_s):
            self._apply(ActorUnresponsive(step, actor))

    async def _check(self, command: CheckRequirements) -> None:
        """Have a step actor read the event's fields against the waits' requirements; an actor that cannot
        answer (gone, or the event does not load) meets none of them."""
        envelope = command.envelope
        matched = await self._actors.matches(
            (command.step, command.actor), envelope.type_name, envelope.payload, command.checks
        )
        self._apply(RequirementsChecked(command.run_id, command.envelope, matched, command.held))

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _watch_context(self) -> None:
        """Once the context actor is gone, fail every run: the state of their contexts went with it."""
        if await self._context.watch():
            self._fail_every_run(f"The context actor of workflow {self._label} died: the state of its contexts is lost")

    def _fail_every_run(self, message: str) -> None:
        """End every run whose stream the driver still reads with ``WorkflowActorDiedError(message)``."""
        error = EventCodec({}).dumps(WorkflowActorDiedError(message))
        for run_id in self._streams.runs():
            self._end_run(EndRun(run_id, Outcome.FAILED, payload=error, message=message))
