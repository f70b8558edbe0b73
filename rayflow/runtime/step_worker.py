"""A step actor: runs one step's method for batches of events, for every run of one workflow instance.

``StepWorker`` is the dispatcher's typed client of one such actor. The compiled workflow spec and the
workflow object arrive once, at construction, pickled by the driver; each call carries a batch of
(run, envelope) work items, run one after the other. An event a step returns runs on here at once when only this step
accepts it (a loop), or only a step whose slot the dispatcher lent to the call (a chain of small
steps). Events the step emits while it runs (``send_event``, the stream) leave in batches through
``Dispatcher.emit`` as soon as the step awaits something, and have all been delivered before the
call returns; the event the step returns comes back with the call. Retries of a failing step happen
here, with its retry policy: the actor sleeps the policy's delay and runs the step again with the same
context, whose ``retry_info()`` reads the invocation's attempts so far. What ``ctx`` does inside a step is
``rayflow.runtime.step_context``. Collect buffers of the runs homed
here live here. A step actor is also where the dispatcher has an event opened when it must know a field's
value (``wait_for_event`` requirements): user code is loaded by step actors only.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
import time
from collections import OrderedDict
from dataclasses import replace
from typing import Any, ClassVar, TypeVar

import ray
from ray import cloudpickle

from rayflow.config import settings
from rayflow.context.context import Context, step_context
from rayflow.context.state_store import StateStore
from rayflow.core.collect import CollectBuffers
from rayflow.core.commands import Checks, WorkItem
from rayflow.core.envelope import Envelope, Kind
from rayflow.core.stats import Invocation, StepStarted
from rayflow.core.ticks import ItemDone
from rayflow.errors import StepTimeoutError
from rayflow.events import Event
from rayflow.payloads import shelf
from rayflow.runtime.claims import envelopes_of, held_numbers
from rayflow.runtime.context_actor import ContextActor
from rayflow.runtime.dispatcher_inbox import DispatcherInbox
from rayflow.runtime.placement import Placement
from rayflow.runtime.resources import ResourceResolver
from rayflow.runtime.state_replica import Known, ReplicaReads, StateReplicas
from rayflow.runtime.step_context import Attempts, Outbox, Paused, StepCode, StepFace, StepHost
from rayflow.runtime.step_results import StepResults, class_name, invocation_record, known_of
from rayflow.spec import StepConfig, WorkflowSpec

__all__ = ["StepActorClass", "StepWorker"]

#: Seconds into an async step's first call on an actor when the actor looks whether the step awaits (``_probe``).
_PROBE_S = 0.05


class _RunLock(asyncio.Lock):
    """One run's turn on a step actor, counting the calls that hold or wait for it (dropped when none do)."""

    def __init__(self) -> None:
        super().__init__()
        self.users = 0


class _StepWorker:
    def __init__(self, blob: bytes, step: str, dispatcher: Any, context: Any, label: str, verbose: bool) -> None:
        spec, workflow = cloudpickle.loads(blob)
        self._spec: WorkflowSpec = spec
        self._step = step
        self._label = label
        self._steps: dict[str, StepCode] = {}
        for name, step_spec in spec.steps.items():
            fn = step_spec.function or getattr(workflow, name)
            self._steps[name] = StepCode(name, fn, step_spec.config, inspect.iscoroutinefunction(fn))
        self._own = self._steps[step]
        self._codec = spec.codec
        self._results = StepResults(spec.codec, step)
        self._routing = spec.routing
        self._dispatcher = DispatcherInbox(dispatcher)
        self._context = ContextActor(context)
        self._replicas = StateReplicas(self._context, settings().state_replicas, settings().state_max_age_s)
        self._collect = CollectBuffers()
        #: For each collect buffer here, the newest state version of the events in it (see ``StepFace``).
        self._collect_versions: dict[tuple[str, str, str], int] = {}
        self._resources = ResourceResolver()
        shelf.hold_here(ray.get_runtime_context().current_actor)  # large payloads wait here for the dispatcher
        config = settings()
        self._local_hops = config.local_hops
        self._ended_memory = config.ended_runs_memory
        self._verbose = verbose
        #: How this actor names itself in the records of its invocations: ``<step>.<index>``, and its node.
        self._actor = ".".join(label.rsplit(".", 2)[-2:])
        self._node = ray.get_runtime_context().get_node_id()[:8]
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._running: dict[str, asyncio.Task[Any]] = {}
        #: Per run with items here: its calls run one after the other.
        self._locks: dict[str, _RunLock] = {}
        #: Set once a stopped step left a thread running here: why this actor must be replaced.
        self._retire: str | None = None
        #: An async step's first call here is probed once for waiting (``_probe``); a sync step runs in threads.
        self._probe_due = self._own.is_async
        self._loop: asyncio.AbstractEventLoop
        self._host: StepHost

    async def ready(self) -> str:
        self._loop = asyncio.get_running_loop()
        self._host = StepHost(
            spec=self._spec,
            step=self._step,
            collect=self._collect,
            loop=self._loop,
            loop_thread=threading.get_ident(),
            flush_size=settings().outbox_flush,
            emit=self._emit,
            store=self._store,
            collect_versions=self._collect_versions,
        )
        return self._label

    async def run(
        self, items: list[WorkItem], loans: tuple[str, ...] = ()
    ) -> tuple[list[ItemDone], float, str | None, float, list[tuple[Any, ...]]]:
        """Run the step for each item; one ``ItemDone`` per item, in order, the seconds taken, why this actor must
        be replaced (None: it need not), the CPU seconds this process used meanwhile, and a record of each step
        invocation the call ran (an ``Invocation`` of ``rayflow.core.stats`` as a plain tuple: Ray packs a list of
        tuples of strings and numbers with msgpack, where a named tuple would be pickled object by object).

        The items of one run run one after the other, after those of the run's earlier calls here; the items of
        different runs run at the same time (one awaits, another runs). An event a step returns that only this step
        accepts (a loop), or only a step in ``loans`` (slots the dispatcher lent to this call), runs here at once, up
        to ``RAYFLOW_LOCAL_HOPS`` times, instead of a round trip through the dispatcher. Once a stopped step has left
        a thread running here, the call's remaining items go back unrun and the actor asks to be replaced.
        """
        began, cpu = time.perf_counter(), time.process_time()
        if self._probe_due:
            self._probe_due = False
            self._loop.call_later(_PROBE_S, self._probe, self._loop.time() + _PROBE_S, time.thread_time())
        by_run: dict[str, list[int]] = {}
        for position, item in enumerate(items):
            by_run.setdefault(item.run_id, []).append(position)
        results: list[ItemDone | None] = [None] * len(items)
        records: list[Invocation] = []

        async def run_of(positions: list[int]) -> None:
            run_id = items[positions[0]].run_id
            lock = self._locks.get(run_id)
            if lock is None:
                lock = self._locks[run_id] = _RunLock()
            lock.users += 1
            try:
                async with lock:
                    for position in positions:
                        results[position] = await self._item(items[position], loans, records)
            finally:
                lock.users -= 1
                if not lock.users:
                    del self._locks[run_id]

        groups = list(by_run.values())
        if len(groups) == 1:
            await run_of(groups[0])
        else:
            await asyncio.gather(*(run_of(positions) for positions in groups))
        await self._dispatcher.delivered()
        done = [result for result in results if result is not None]
        rows = [tuple(record) for record in records]
        return done, time.perf_counter() - began, self._retire, time.process_time() - cpu, rows

    def _probe(self, due: float, thread_cpu: float) -> None:
        """``_PROBE_S`` into this actor's first call: if an invocation still runs and the event loop has been mostly
        idle meanwhile (this callback on time, the loop's thread computing under half the time), the step awaits
        I/O; the dispatcher is told at once rather than when the call comes back, so a fresh pool lets more runs'
        calls share this actor instead of growing for them. A step computing in the loop delays this callback."""
        if not self._running or self._loop.time() - due > _PROBE_S / 2:
            return
        if time.thread_time() - thread_cpu < _PROBE_S / 2:
            self._dispatcher.waiting(self._step)

    async def _item(self, item: WorkItem, loans: tuple[str, ...], records: list[Invocation]) -> ItemDone:
        """Run one item, and what it returns here while that stays local; what the dispatcher is told of it."""
        if self._retire is not None:
            return ItemDone(item.run_id, requeue=True)
        done = await self._invoke_tracked(item, self._own, records)
        hops = self._local_hops
        while hops and done.output is not None:
            code = self._runs_here(done.output, loans)
            if code is None:
                break
            hops -= 1
            ran = done.output
            done = await self._invoke_tracked(WorkItem(item.run_id, item.ctx_id, ran), code, records)
            shelf.release(held_numbers([ran]) - held_numbers(envelopes_of(done)))
        if self._own.config.collects:
            done = replace(done, holding=self._collect.holds(item.run_id, self._step))
        return done

    def _runs_here(self, envelope: Envelope, loans: tuple[str, ...]) -> StepCode | None:
        """The step to run ``envelope`` here next: the one step accepting it, if it is this step or lent."""
        if envelope.kind is not Kind.EVENT:
            return None
        targets = self._routing.targets(envelope)
        if len(targets) == 1 and (targets[0] == self._step or targets[0] in loans):
            route = self._routing.steps[targets[0]]
            if route.joins is None and not route.slots:  # those wait for other events, at the dispatcher
                return self._steps[targets[0]]
        return None

    async def _invoke_tracked(self, item: WorkItem, code: StepCode, records: list[Invocation]) -> ItemDone:
        """Run one invocation as a task ``end_run`` can cancel, and add its record to ``records``."""
        if item.run_id in self._ended:
            return ItemDone(item.run_id)
        outbox = Outbox(self._host, item, code.name)
        event = class_name(item.envelope.type_name)
        started, began = time.time(), time.perf_counter()
        if self._verbose:
            self._dispatcher.started(
                item.run_id, StepStarted(item.run_id, code.name, self._actor, self._node, started, event)
            )
        task = asyncio.ensure_future(self._invoke(item, code, outbox))
        self._running[item.run_id] = task
        try:
            done = await task
        except asyncio.CancelledError:
            done = None
        finally:
            self._running.pop(item.run_id, None)
        seconds = time.perf_counter() - began
        records.append(
            invocation_record(item.run_id, code.name, self._actor, self._node, started, seconds, event, outbox, done)
        )
        return done if done is not None else ItemDone(item.run_id)

    async def end_run(self, run_id: str) -> None:
        """The run is over: stop its invocation here, skip its queued items, drop its collect buffers."""
        self._ended[run_id] = None
        if len(self._ended) > self._ended_memory:
            self._ended.popitem(last=False)
        task = self._running.get(run_id)
        if task is not None:
            task.cancel()
        self._collect.drop_run(run_id)
        versions = self._collect_versions  # also before ready(): an end_run may come first
        for key in [key for key in versions if key[0] == run_id]:
            del versions[key]

    async def hand_over(self, numbers: list[int]) -> tuple[Any, ...]:
        """The large buffers held here under ``numbers``, as return values the dispatcher (the caller) owns."""
        return shelf.hand_over(numbers)

    def _emit(self, run_id: str, step: str, envelopes: list[Envelope]) -> None:
        """Send emitted events to the dispatcher, in order; the step call returns once they arrived."""
        self._dispatcher.emit(run_id, step, envelopes)

    async def collect_status(self, run_id: str) -> list[str]:
        """What this actor's collect buffers of ``run_id`` still wait for, a line each."""
        lines = []
        for key, short in self._collect.missing(run_id):
            _, step, buffer_id = key  # this actor's keys: (run, step, buffer id)
            wants = ", ".join(
                f"{n - held} more {getattr(kind, '__name__', kind)} (has {held} of {n})" for kind, held, n in short
            )
            where = "" if buffer_id == "default" else f" (buffer {buffer_id!r})"
            lines.append(f"step {step!r} waits in collect_events{where} for {wants}")
        return lines

    async def matches(self, payload: bytes, checks: Checks) -> tuple[int, ...]:
        """Which of ``checks`` (wait number, required field values) the event in ``payload`` meets."""
        event = self._codec.loads(payload)
        return tuple(n for n, required in checks if all(getattr(event, k, None) == v for k, v in required))

    def _store(self, ctx_id: str, known: Known) -> StateStore[Any]:
        reads = ReplicaReads(self._replicas, self._context, known)

        async def backend() -> ReplicaReads:
            return reads

        return StateStore(ctx_id, backend)

    async def _invoke(self, item: WorkItem, code: StepCode, outbox: Outbox) -> ItemDone:
        """One attempt at ``item``: decode its event, build the step's arguments (resources), run the body within
        its timeout. Any failure on the way is the attempt's: the retry policy may retry it (a new delivery after
        the policy's wait, off this actor), else it fails the step, for ``@catch_error`` to see."""
        name = code.name
        codec = self._codec
        attempts = Attempts.of(item.tries, codec.loads)
        known = known_of(item)
        event: Event | None = None
        try:
            if item.timed_out is not None:  # this attempt already ran, past its time, on an actor now replaced
                raise self._timed_out(name, item)
            if item.members is None:
                event = await codec.loads_async(item.envelope.payload)
                events = [event]
            else:  # a join, or a step of several event parameters: its events in order
                events = [await codec.loads_async(member.payload) for member in item.members]
                event = events[0] if events else None
            ctx = step_context(item.ctx_id, StepFace(self._host, item, outbox, code, attempts, known))
            kwargs = await self._arguments(ctx, events, code.config)
            result = await self._body(code, kwargs, item)
        except asyncio.CancelledError:
            raise
        except Paused as paused:
            outbox.flush()
            return ItemDone(item.run_id, waiting=paused.waiter, step=None if name == self._step else name)
        except Exception as err:
            outbox.flush()
            return self._results.failed(item, code, err, event, attempts)
        outbox.flush()
        if result is None:
            return ItemDone(item.run_id)
        return self._results.returned(item, code, result, outbox, known, event, attempts)

    async def _body(self, code: StepCode, kwargs: dict[str, Any], item: WorkItem) -> Any:
        """Run the step's body, within its timeout. A sync body runs in a thread, which nothing can stop: one still
        running after its invocation was stopped (timed out, or its run ended) retires this actor."""
        timeout = code.config.timeout
        if code.is_async and timeout is None:
            return await code.fn(**kwargs)  # the common case: no deadline to keep, no thread to watch
        # the thread runs in a copy of this task's context: Context.get_step_context() works in a sync body too
        step_call = contextvars.copy_context().run
        thread = None if code.is_async else self._loop.run_in_executor(None, lambda: step_call(code.fn, **kwargs))
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                return await (code.fn(**kwargs) if thread is None else asyncio.shield(thread))
        except TimeoutError:
            if not deadline.expired():
                raise  # the step's own TimeoutError
            if thread is not None and not thread.done():
                self._retire = f"step {code.name!r} ran past its timeout of {timeout} s in a thread that cannot stop"
            raise self._timed_out(code.name, item) from None
        except asyncio.CancelledError:
            if thread is not None and not thread.done():
                self._retire = f"step {code.name!r} was stopped while running in a thread that cannot stop"
            raise

    def _timed_out(self, step: str, item: WorkItem) -> StepTimeoutError:
        timeout = item.timed_out or self._steps[step].config.timeout
        return StepTimeoutError(
            f"Step {step!r} ran past its timeout of {timeout} s handling a {item.envelope.class_name} event"
        )

    async def _arguments(self, ctx: Context[Any], events: list[Event], config: StepConfig) -> dict[str, Any]:
        kwargs: dict[str, Any]
        if config.join is not None:
            kwargs = {config.event_name: events}
        elif config.slots is not None:
            kwargs = {parameter: event for (parameter, _), event in zip(config.slots, events, strict=True)}
        else:
            kwargs = {config.event_name: events[0]}
        if config.context_parameter:
            kwargs[config.context_parameter] = ctx
        if config.resources:
            kwargs.update(await self._resources.arguments(config.resources))
        return kwargs


#: The plain class of a step actor, for actor classes that extend it (``rayflow.runtime.reusable_worker``).
StepActorClass = _StepWorker


_Client = TypeVar("_Client", bound="StepWorker")


class StepWorker:
    """Typed client of one step actor (async, so control calls reach it while a step runs)."""

    #: The plain actor class this client starts (a subclass of ``_StepWorker`` for a client that extends it).
    actor_class: ClassVar[type] = _StepWorker

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    @classmethod
    def start(
        cls: type[_Client],
        *,
        blob: bytes | None,
        step: str,
        dispatcher: Any,
        context: ContextActor,
        name: str,
        verbose: bool,
        placement: Placement,
    ) -> _Client:
        """Create the actor ``name`` running ``step`` of the workflow in ``blob`` (None: blank, for an actor class
        that can be bound later), reserving and placed as ``placement`` says; ``dispatcher`` is the creating
        dispatcher's own handle (where the step's events go)."""
        actor: Any = ray.remote(cls.actor_class).options(
            name=name,
            max_concurrency=settings().actor_max_concurrency,
            num_cpus=placement.num_cpus,
            num_gpus=placement.num_gpus,
            scheduling_strategy=placement.scheduling,
        )
        return cls(actor.remote(blob, step, dispatcher, context.handle, name, verbose))

    @property
    def handle(self) -> Any:
        """The Ray actor handle (for ``rayflow.runtime.actors.stop_actors``)."""
        return self._handle

    async def ready(self) -> None:
        """Wait until the actor runs (the workflow loaded); raises what its construction raised."""
        await self._handle.ready.remote()

    def run(self, items: list[WorkItem], loans: tuple[str, ...] = ()) -> Any:
        """Start a call running ``items``; await the result for ``([ItemDone, ...], seconds, retire reason, CPU
        seconds)``."""
        return self._handle.run.remote(items, loans) if loans else self._handle.run.remote(items)

    def end_run(self, run_id: str) -> Any:
        """Tell the actor the run is over (its invocation there is cancelled); the ref answers once it has."""
        return self._handle.end_run.remote(run_id)

    async def collect_status(self, run_id: str) -> list[str]:
        """What the actor's collect buffers of ``run_id`` still wait for, a line each."""
        lines: list[str] = await self._handle.collect_status.remote(run_id)
        return lines

    async def matches(self, payload: bytes, checks: Checks) -> tuple[int, ...]:
        """The wait numbers among ``checks`` whose required field values the event in ``payload`` has."""
        return await self._handle.matches.remote(payload, checks)
