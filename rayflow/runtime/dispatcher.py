"""``Dispatcher``: the driver's typed client of a workflow instance's dispatcher actor.

The dispatcher itself, what it keeps and how it routes, is ``rayflow.runtime.dispatcher_actor``. The driver creates
one per actor set, on its own node, and talks to it only through this client: starting and parking the set,
starting and resuming runs, reading their streams, sending the caller's events, snapshots, statistics, and closing.
"""

from __future__ import annotations

from typing import Any

import ray
from ray.exceptions import RayActorError

from rayflow.config import settings
from rayflow.core.envelope import Envelope
from rayflow.core.routing import StepRoute
from rayflow.core.state import Pending
from rayflow.core.stats import StatsBook
from rayflow.runtime.actors import stop_actors, stop_actors_sync
from rayflow.runtime.context_actor import ContextActor
from rayflow.runtime.dispatcher_actor import DispatcherActor
from rayflow.runtime.placement import here

__all__ = ["Dispatcher"]


class Dispatcher:
    """Typed client of a workflow instance's dispatcher actor (created by the driver, owned by it)."""

    def __init__(self, handle: Any, label: str) -> None:
        self._handle = handle
        self.label = label
        self._last_emit: Any = None

    @classmethod
    def create(cls, workflow_blob: bytes | None, routes: list[StepRoute], label: str, verbose: bool) -> Dispatcher:
        """Start the dispatcher of one workflow instance (it starts its step actors and context actor), on the
        caller's node (``rayflow.runtime.placement``); with no blob, a blank one for ``spare`` and ``bind``."""
        actor = ray.remote(DispatcherActor).options(
            name=f"{label}.dispatcher",
            num_cpus=0,
            max_concurrency=settings().dispatcher_max_concurrency,
            scheduling_strategy=here(),
        )
        return cls(actor.remote(workflow_blob, routes, label, verbose), label)

    def ready_sync(self) -> ContextActor:
        """Block until the dispatcher, one actor per step and the context actor run; the context actor's client."""
        context: ContextActor = ray.get(self._handle.ready.remote())
        return context

    def spare(self, shape: list[tuple[str, int, float]]) -> Any:
        """Have a blank dispatcher start blank step actors by ``(step, count, num_gpus)``; the ref answers True once
        they run."""
        return self._handle.spare.remote(shape)

    def park(self) -> Any:
        """Have the dispatcher forget its workflow instance, keeping its actors; the ref answers True once it has,
        False if a run is going on (nothing was forgotten)."""
        return self._handle.park.remote()

    def bind_sync(self, workflow_blob: bytes, routes: list[StepRoute], verbose: bool) -> ContextActor:
        """Block until a parked set serves the workflow in ``workflow_blob``; the context actor's client."""
        context: ContextActor = ray.get(self._handle.bind.remote(workflow_blob, routes, verbose))
        return context

    async def start_run(
        self,
        run_id: str,
        ctx_id: str,
        start: Envelope,
        timeout: float | None,
        forward: int = 0,
        *,
        internal: bool = False,
        tenant: str = "",
    ) -> None:
        """Start a run of instance ``tenant`` (whose statistics it counts in); ``forward``: how many records of its
        step invocations its stream carries (-1: all); ``internal``: its caller streams internal events."""
        await self._handle.start_run.remote(run_id, ctx_id, start, timeout, forward, internal, tenant)

    def expose(self, run_id: str) -> None:
        """Stream the run's internal events (step states, idle, ignored events) from now on."""
        self._handle.expose.remote(run_id)

    async def resume_run(
        self, run_id: str, ctx_id: str, pending: Pending, timeout: float | None, forward: int = 0, tenant: str = ""
    ) -> None:
        await self._handle.resume_run.remote(run_id, ctx_id, pending, timeout, forward, tenant)

    async def stats(self, run_id: str | None, tenant: str = "") -> tuple[StatsBook, dict[str, int]] | None:
        """The book of run ``run_id`` (None: of instance ``tenant``) and the events queued per step now; None:
        unknown."""
        answer: tuple[StatsBook, dict[str, int]] | None = await self._handle.stats.remote(run_id, tenant)
        return answer

    async def snapshot(self, run_id: str) -> Pending | None:
        """The run's unfinished work (None: a run that ended with a StopEvent, or an unknown one)."""
        pending: Pending | None = await self._handle.snapshot.remote(run_id)
        return pending

    async def running_steps(self, run_id: str) -> list[str]:
        """The steps with an invocation of run ``run_id`` going on now."""
        steps: list[str] = await self._handle.running_steps.remote(run_id)
        return steps

    def snapshot_sync(self, run_id: str) -> Pending | None:
        pending: Pending | None = ray.get(self._handle.snapshot.remote(run_id))
        return pending

    async def next_items(self, run_id: str) -> list[Any]:
        items: list[Any] = await self._handle.next_items.remote(run_id)
        return items

    def emit(self, run_id: str, envelopes: list[Envelope]) -> None:
        """Events from the caller (``handler.ctx.send_event``), applied in the order of these calls."""
        self._last_emit = self._handle.emit.remote(run_id, None, envelopes, self._last_emit)

    def cancel(self, run_id: str) -> None:
        self._handle.cancel.remote(run_id)

    async def close(self) -> None:
        """Stop the step actors and the context actor, then the dispatcher; wait until all are gone."""
        try:
            await self._handle.shutdown.remote()
        except RayActorError:
            pass
        await stop_actors([self._handle])

    def release(self) -> Any:
        """Ask the dispatcher to stop its actors and itself, without waiting; the ref ends when it is gone."""
        return self._handle.release.remote()

    def close_sync(self) -> None:
        """``close`` for places without an event loop (interpreter exit, garbage collection)."""
        try:
            ray.get(self._handle.shutdown.remote(), timeout=settings().shutdown_grace_s)
        except Exception:
            pass  # gone or stuck: ending the dispatcher below ends what it owns with it
        stop_actors_sync([self._handle])
