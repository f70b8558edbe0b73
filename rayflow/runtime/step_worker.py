"""A step actor: runs one step's method for batches of events, for every run of one workflow instance.

The workflow object arrives once, at construction; each call carries a batch of (run, envelope) work
items, run one after the other. Events the step emits while it runs (``send_event``, the stream) leave
in batches through ``Dispatcher.emit`` as soon as the step awaits something, and have all been
delivered before the call returns; the event the step returns comes back with the call. Retries of a
failing step happen here, with its retry policy. Collect buffers of the runs homed here live here.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any

import ray
from ray import cloudpickle

from rayflow.config import settings
from rayflow.context.context import Context
from rayflow.context.state_store import StateStore
from rayflow.core.collect import CollectBuffers
from rayflow.core.commands import WorkItem
from rayflow.core.envelope import Envelope, Failure, Kind
from rayflow.core.routing import RoutingTable
from rayflow.core.ticks import ItemDone
from rayflow.decorators import step_config
from rayflow.errors import WorkflowRuntimeError
from rayflow.events import Event, StepFailedEvent
from rayflow.runtime.codec import EventCodec
from rayflow.runtime.context_actor import ContextActor
from rayflow.validation import check_target

_ENDED_MEMORY = 10_000


class _Outbox:
    """Events one invocation emits, sent to the dispatcher in batches while the step still runs."""

    def __init__(self, worker: _StepWorker, run_id: str) -> None:
        self._worker = worker
        self._run_id = run_id
        self._items: list[Envelope] = []
        self._scheduled = False

    def add(self, envelope: Envelope) -> None:
        self._items.append(envelope)
        on_loop = threading.get_ident() == self._worker._loop_thread
        if len(self._items) >= self._worker._flush_size:
            if on_loop:
                self.flush()
            else:
                self._worker._loop.call_soon_threadsafe(self.flush)
        elif not self._scheduled:
            self._scheduled = True
            if on_loop:
                self._worker._loop.call_soon(self.flush)
            else:
                self._worker._loop.call_soon_threadsafe(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if self._items:
            items, self._items = self._items, []
            self._worker._emit(self._run_id, items)


class _StepFace:
    """The step side of ``Context``: emits through the invocation's outbox, collects in this actor."""

    def __init__(self, worker: _StepWorker, run_id: str, outbox: _Outbox) -> None:
        self._worker = worker
        self._run_id = run_id
        self._outbox = outbox

    def store(self, ctx_id: str) -> StateStore[Any]:
        return self._worker._store(ctx_id)

    def send_event(self, event: Event, step: str | None) -> None:
        worker = self._worker
        if not isinstance(event, Event):
            raise WorkflowRuntimeError(f"Step {worker._step!r} sent a {type(event).__name__}, which is not an Event")
        if step is not None:
            check_target(worker._configs, step, event)
        self._outbox.add(worker._codec.encode(event, target=step, step=worker._step))

    def write_event_to_stream(self, event: Event) -> None:
        worker = self._worker
        self._outbox.add(worker._codec.encode(event, kind=Kind.STREAM, step=worker._step))

    def collect_events(self, event: Event, expected: list[type[Event]], buffer_id: str) -> list[Event] | None:
        worker = self._worker
        if not worker._config.collects and worker._config.num_workers > 1:
            raise WorkflowRuntimeError(
                f"Step {worker._step!r} called ctx.collect_events from code rayflow could not see when the "
                "step was decorated (a helper function?). Call collect_events in the step's own body, or "
                "give the step num_workers=1, so that every event of a run reaches the same buffer."
            )
        key = (self._run_id, worker._step, buffer_id)
        return worker._collect.collect(key, event, type(event), expected)

    @property
    def is_running(self) -> bool:
        return True


class _StepWorker:
    def __init__(self, workflow_blob: bytes, step: str, dispatcher: Any, context: Any, label: str) -> None:
        self._workflow = cloudpickle.loads(workflow_blob)
        self._step = step
        self._label = label
        steps = self._workflow._get_steps()
        self._configs = {name: step_config(fn) for name, fn in steps.items()}
        self._config = self._configs[step]
        fn = steps[step]
        self._fn = getattr(self._workflow, step, fn) if hasattr(type(self._workflow), step) else fn
        self._is_async = inspect.iscoroutinefunction(self._fn)
        self._codec = EventCodec(self._workflow._event_keys)
        self._routing = RoutingTable.of(self._workflow._routes())
        self._dispatcher = dispatcher
        self._context = ContextActor(context)
        self._collect = CollectBuffers()
        self._resources: dict[str, Any] = {}
        self._flush_size = settings().outbox_flush
        self._local_hops = settings().local_hops
        self._verbose = bool(getattr(self._workflow, "_verbose", False))
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._running: dict[str, asyncio.Task[Any]] = {}
        self._pending: list[Any] = []
        self._last_flush: Any = None
        self._gate: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop
        self._loop_thread = -1

    async def ready(self) -> str:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._gate = asyncio.Semaphore(1)
        return self._label

    async def run(self, items: list[WorkItem]) -> tuple[list[ItemDone], float]:
        """Run the step for each item, one at a time; one ``ItemDone`` per item, in order, and the seconds taken.

        An event the step returns that only this step accepts (a loop) runs here again at once, up to
        ``RAYFLOW_LOCAL_HOPS`` times, instead of a round trip through the dispatcher.
        """
        assert self._gate is not None
        async with self._gate:
            began = time.perf_counter()
            results = []
            for item in items:
                done = await self._invoke_tracked(item)
                hops = self._local_hops
                while hops and done.output is not None and self._loops_back(done.output):
                    hops -= 1
                    done = await self._invoke_tracked(WorkItem(item.run_id, item.ctx_id, done.output))
                results.append(done)
            if self._pending:
                pending, self._pending = self._pending, []
                await asyncio.gather(*pending)
            return results, time.perf_counter() - began

    def _loops_back(self, envelope: Envelope) -> bool:
        return envelope.kind is Kind.EVENT and self._routing.targets(envelope) == (self._step,)

    async def _invoke_tracked(self, item: WorkItem) -> ItemDone:
        if item.run_id in self._ended:
            return ItemDone(item.run_id)
        task = asyncio.ensure_future(self._invoke(item))
        self._running[item.run_id] = task
        try:
            return await task
        except asyncio.CancelledError:
            return ItemDone(item.run_id)
        finally:
            self._running.pop(item.run_id, None)

    async def end_run(self, run_id: str) -> None:
        """The run is over: stop its invocation here, skip its queued items, drop its collect buffers."""
        self._ended[run_id] = None
        if len(self._ended) > _ENDED_MEMORY:
            self._ended.popitem(last=False)
        task = self._running.get(run_id)
        if task is not None:
            task.cancel()
        self._collect.drop_run(run_id)

    def _emit(self, run_id: str, envelopes: list[Envelope]) -> None:
        """Send emitted events to the dispatcher, in order.

        Ray may start calls to an async actor out of order; each flush names the previous one as an
        argument, and Ray runs a call only once its arguments are ready, so flushes apply in order.
        """
        ref = self._dispatcher.emit.remote(run_id, self._step, envelopes, self._last_flush)
        self._last_flush = ref
        self._pending.append(ref)

    def _store(self, ctx_id: str) -> StateStore[Any]:
        async def actor() -> ContextActor:
            return self._context

        return StateStore(ctx_id, actor)

    async def _invoke(self, item: WorkItem) -> ItemDone:
        event = self._codec.loads(item.envelope.payload)
        outbox = _Outbox(self, item.run_id)
        ctx = Context._in_step(item.ctx_id, _StepFace(self, item.run_id, outbox))
        kwargs = await self._arguments(ctx, event)
        if self._verbose:
            print(f"Running step {self._step}", flush=True)
        started = time.monotonic()
        attempts = 0
        while True:
            attempts += 1
            try:
                if self._is_async:
                    result = await self._fn(**kwargs)
                else:
                    result = await self._loop.run_in_executor(None, lambda: self._fn(**kwargs))
                break
            except asyncio.CancelledError:
                raise
            except Exception as err:
                policy = self._config.retry_policy
                delay = policy.next(time.monotonic() - started, attempts, err) if policy else None
                if delay is None:
                    outbox.flush()
                    return ItemDone(item.run_id, failure=self._failure(err, event, attempts, started))
                await asyncio.sleep(delay)
        outbox.flush()
        if self._verbose:
            produced = "no event" if result is None else f"event {type(result).__name__}"
            print(f"Step {self._step} produced {produced}", flush=True)
        if result is None:
            return ItemDone(item.run_id)
        if not isinstance(result, Event):
            wrong = WorkflowRuntimeError(
                f"Step function {self._step} returned {type(result).__name__} instead of an Event instance."
            )
            return ItemDone(item.run_id, failure=self._failure(wrong, event, attempts, started))
        try:
            return ItemDone(item.run_id, output=self._codec.encode(result, step=self._step))
        except Exception as err:
            return ItemDone(item.run_id, failure=self._failure(err, event, attempts, started))

    async def _arguments(self, ctx: Context[Any], event: Event) -> dict[str, Any]:
        config = self._config
        kwargs: dict[str, Any] = {config.event_name: event}
        if config.context_parameter:
            kwargs[config.context_parameter] = ctx
        for definition in config.resources:
            resource = definition.resource
            if resource.cache and resource.name in self._resources:
                kwargs[definition.name] = self._resources[resource.name]
                continue
            value = resource.build()
            if inspect.isawaitable(value):  # an async factory
                value = await value
            if resource.cache:
                self._resources[resource.name] = value
            kwargs[definition.name] = value
        return kwargs

    def _failure(self, err: Exception, event: Event, attempts: int, started: float) -> Failure:
        message = f"{type(err).__name__}: {err}"
        try:
            error: Any = self._codec.dumps(err)
        except Exception:
            error = self._codec.dumps(WorkflowRuntimeError(f"Step {self._step!r} failed with {message}"))
        failed = StepFailedEvent(
            step_name=self._step,
            input_event=event,
            exception=err,
            attempts=attempts,
            elapsed_seconds=time.monotonic() - started,
            failed_at=datetime.now(timezone.utc),
        )
        try:
            failed_envelope: Envelope | None = self._codec.encode(failed, step=self._step)
        except Exception:
            failed_envelope = None
        return Failure(self._step, error, message, failed_envelope, attempts)


def step_worker_class() -> Any:
    """The Ray actor class of step workers (async, so control calls reach it while a step runs)."""
    return ray.remote(_StepWorker)
