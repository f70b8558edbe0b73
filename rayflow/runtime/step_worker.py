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
import inspect
import threading
import time
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any

import ray
from ray import cloudpickle

from rayflow.config import settings
from rayflow.context.context import Context, step_context
from rayflow.context.state_store import StateStore
from rayflow.core.collect import CollectBuffers
from rayflow.core.commands import Checks, WorkItem
from rayflow.core.envelope import Envelope, Failure, Kind
from rayflow.core.ticks import ItemDone
from rayflow.errors import WorkflowRuntimeError
from rayflow.events import Event, StepFailedEvent
from rayflow.runtime.context_actor import ContextActor
from rayflow.runtime.resources import ResourceResolver
from rayflow.runtime.step_context import Attempts, Outbox, Paused, StepCode, StepFace, StepHost
from rayflow.spec import StepConfig, WorkflowSpec

__all__ = ["StepWorker"]


class _DispatcherInbox:
    """The step actor's side of its dispatcher: where emitted events go, in the order they were emitted."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self._last: Any = None

    def emit(self, run_id: str, step: str, envelopes: list[Envelope]) -> Any:
        """Send ``envelopes``; the ref of the call, to await before the step call returns.

        Ray may start calls to an async actor out of order; each emit names the previous one as an
        argument, and Ray runs a call only once its arguments are ready, so emits apply in order.
        """
        self._last = self._handle.emit.remote(run_id, step, envelopes, self._last)
        return self._last


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
        self._routing = spec.routing
        self._dispatcher = _DispatcherInbox(dispatcher)
        self._context = ContextActor(context)
        self._collect = CollectBuffers()
        self._resources = ResourceResolver()
        config = settings()
        self._local_hops = config.local_hops
        self._ended_memory = config.ended_runs_memory
        self._verbose = verbose
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._running: dict[str, asyncio.Task[Any]] = {}
        self._pending: list[Any] = []
        self._gate: asyncio.Semaphore | None = None
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
        )
        self._gate = asyncio.Semaphore(1)
        return self._label

    async def run(self, items: list[WorkItem], loans: tuple[str, ...] = ()) -> tuple[list[ItemDone], float]:
        """Run the step for each item, one at a time; one ``ItemDone`` per item, in order, and the seconds taken.

        An event a step returns that only this step accepts (a loop), or only a step in ``loans`` (slots the
        dispatcher lent to this call), runs here at once, up to ``RAYFLOW_LOCAL_HOPS`` times, instead of a round
        trip through the dispatcher.
        """
        assert self._gate is not None
        async with self._gate:
            began = time.perf_counter()
            results = []
            for item in items:
                done = await self._invoke_tracked(item, self._own)
                hops = self._local_hops
                while hops and done.output is not None:
                    code = self._runs_here(done.output, loans)
                    if code is None:
                        break
                    hops -= 1
                    done = await self._invoke_tracked(WorkItem(item.run_id, item.ctx_id, done.output), code)
                results.append(done)
            if self._pending:
                pending, self._pending = self._pending, []
                await asyncio.gather(*pending)
            return results, time.perf_counter() - began

    def _runs_here(self, envelope: Envelope, loans: tuple[str, ...]) -> StepCode | None:
        """The step to run ``envelope`` here next: the one step accepting it, if it is this step or lent."""
        if envelope.kind is not Kind.EVENT:
            return None
        targets = self._routing.targets(envelope)
        if len(targets) == 1 and (targets[0] == self._step or targets[0] in loans):
            return self._steps[targets[0]]
        return None

    async def _invoke_tracked(self, item: WorkItem, code: StepCode) -> ItemDone:
        if item.run_id in self._ended:
            return ItemDone(item.run_id)
        task = asyncio.ensure_future(self._invoke(item, code))
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
        if len(self._ended) > self._ended_memory:
            self._ended.popitem(last=False)
        task = self._running.get(run_id)
        if task is not None:
            task.cancel()
        self._collect.drop_run(run_id)

    def _emit(self, run_id: str, step: str, envelopes: list[Envelope]) -> None:
        """Send emitted events to the dispatcher, in order; the step call returns once they arrived."""
        self._pending.append(self._dispatcher.emit(run_id, step, envelopes))

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

    def _store(self, ctx_id: str) -> StateStore[Any]:
        async def actor() -> ContextActor:
            return self._context

        return StateStore(ctx_id, actor)

    async def _invoke(self, item: WorkItem, code: StepCode) -> ItemDone:
        name = code.name
        event = self._codec.loads(item.envelope.payload)
        outbox = Outbox(self._host, item.run_id, name)
        attempts = Attempts()
        ctx = step_context(item.ctx_id, StepFace(self._host, item, outbox, code, attempts))
        kwargs = await self._arguments(ctx, event, code.config)
        if self._verbose:
            print(f"Running step {name}", flush=True)
        while True:
            attempts.begin()
            try:
                if code.is_async:
                    result = await code.fn(**kwargs)
                else:
                    result = await self._loop.run_in_executor(None, lambda: code.fn(**kwargs))
                break
            except asyncio.CancelledError:
                raise
            except Paused as paused:
                outbox.flush()
                return ItemDone(item.run_id, waiting=paused.waiter, step=None if name == self._step else name)
            except Exception as err:
                attempts.failed(err)
                try:
                    delay = self._retry_delay(code.config, attempts, err)
                except Exception as policy_err:  # a user's retry condition or wait that raised fails the step
                    err = policy_err
                    delay = None
                if delay is None:
                    outbox.flush()
                    return ItemDone(item.run_id, failure=self._failure(name, err, event, attempts))
                await asyncio.sleep(delay)
        outbox.flush()
        if self._verbose:
            produced = "no event" if result is None else f"event {type(result).__name__}"
            print(f"Step {name} produced {produced}", flush=True)
        if result is None:
            return ItemDone(item.run_id)
        if not isinstance(result, Event):
            wrong = WorkflowRuntimeError(
                f"Step function {name} returned {type(result).__name__} instead of an Event instance."
            )
            return ItemDone(item.run_id, failure=self._failure(name, wrong, event, attempts))
        try:
            output = self._codec.encode(result, step=name)
        except Exception as err:
            return ItemDone(item.run_id, failure=self._failure(name, err, event, attempts))
        return ItemDone(item.run_id, output=output, step=None if name == self._step else name)

    async def _arguments(self, ctx: Context[Any], event: Event, config: StepConfig) -> dict[str, Any]:
        kwargs: dict[str, Any] = {config.event_name: event}
        if config.context_parameter:
            kwargs[config.context_parameter] = ctx
        if config.resources:
            kwargs.update(await self._resources.arguments(config.resources))
        return kwargs

    @staticmethod
    def _retry_delay(config: StepConfig, attempts: Attempts, error: Exception) -> float | None:
        """The seconds to wait before running the step again after ``error``, or None to give up."""
        policy = config.retry_policy
        if policy is None:
            return None
        return policy.next(attempts.elapsed(), attempts.runs, error)

    def _failure(self, step: str, err: Exception, event: Event, attempts: Attempts) -> Failure:
        """The step failed for good after ``attempts``: its error and the ``StepFailedEvent`` for ``@catch_error``."""
        message = f"{type(err).__name__}: {err}"
        elapsed = attempts.elapsed()
        try:
            error: Any = self._codec.dumps(err)
        except Exception:
            error = self._codec.dumps(WorkflowRuntimeError(f"Step {step!r} failed with {message}"))
        failed = StepFailedEvent(
            step_name=step,
            input_event=event,
            exception=err,
            attempts=attempts.runs,
            elapsed_seconds=elapsed,
            failed_at=datetime.now(timezone.utc),
        )
        try:
            failed_envelope: Envelope | None = self._codec.encode(failed, step=step)
        except Exception:
            failed_envelope = None
        return Failure(step, error, message, failed_envelope, attempts.runs, elapsed)


class StepWorker:
    """Typed client of one step actor (async, so control calls reach it while a step runs)."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    @classmethod
    def start(
        cls,
        *,
        blob: bytes,
        step: str,
        dispatcher: Any,
        context: ContextActor,
        name: str,
        verbose: bool,
        num_cpus: float,
    ) -> StepWorker:
        """Create the actor ``name`` running ``step`` of the workflow in ``blob``; ``dispatcher`` is the creating
        dispatcher's own handle (where the step's events go)."""
        actor = ray.remote(_StepWorker).options(name=name, max_concurrency=1000, num_cpus=num_cpus)
        return cls(actor.remote(blob, step, dispatcher, context.handle, name, verbose))

    @property
    def handle(self) -> Any:
        """The Ray actor handle (for ``rayflow.runtime.actors.stop_actors``)."""
        return self._handle

    async def ready(self) -> None:
        """Wait until the actor runs (the workflow loaded); raises what its construction raised."""
        await self._handle.ready.remote()

    def run(self, items: list[WorkItem], loans: tuple[str, ...] = ()) -> Any:
        """Start a call running ``items``; await the result for ``([ItemDone, ...], seconds)``."""
        return self._handle.run.remote(items, loans) if loans else self._handle.run.remote(items)

    def end_run(self, run_id: str) -> None:
        """Tell the actor the run is over (its invocation there is cancelled); does not wait."""
        self._handle.end_run.remote(run_id)

    async def collect_status(self, run_id: str) -> list[str]:
        """What the actor's collect buffers of ``run_id`` still wait for, a line each."""
        lines: list[str] = await self._handle.collect_status.remote(run_id)
        return lines

    async def matches(self, payload: bytes, checks: Checks) -> tuple[int, ...]:
        """The wait numbers among ``checks`` whose required field values the event in ``payload`` has."""
        return await self._handle.matches.remote(payload, checks)
