"""A workflow instance's actors, seen from the driver: started by the first run, shared, released.

The dispatcher (and through it the step pools and the context actor) starts on the first ``run()`` (or the
caller's first ``ctx.store`` call) and stays warm for later and concurrent runs. It is released by ``close()``,
when the workflow object is garbage-collected, when the instance has had no run for ``RAYFLOW_IDLE_RELEASE_S``
seconds (a later run starts it again), and at interpreter exit. Killing the dispatcher also ends the actors it owns.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import ray
from ray.exceptions import RayActorError

from rayflow.config import settings
from rayflow.runtime.cluster import ensure_ray
from rayflow.runtime.context_actor import ContextActor
from rayflow.runtime.dispatcher import Dispatcher
from rayflow.spec import WorkflowSpec

__all__ = ["WorkflowRuntime", "released"]

_live: weakref.WeakSet[WorkflowRuntime] = weakref.WeakSet()
_releasing: list[Any] = []


def _release(holder: list[Dispatcher | None]) -> None:
    """Finalizer of a collected workflow: its dispatcher stops its actors, then itself (no waiting here)."""
    dispatcher = holder[0]
    holder[0] = None
    if dispatcher is not None and ray.is_initialized():
        _releasing.append(dispatcher.release())


async def released() -> None:
    """Wait until the actors of every garbage-collected workflow are gone."""
    while _releasing:
        ref = _releasing.pop()
        try:
            await ref
        except RayActorError:
            pass  # the dispatcher exits at the end of its release: that is the expected answer


class WorkflowRuntime:
    """The driver's handle on one workflow instance's actors."""

    def __init__(self, owner: object, spec: WorkflowSpec, label: str, blob: Callable[[], bytes], verbose: bool) -> None:
        # No reference to the owner is kept (``blob`` pickles it through a weak reference): its garbage
        # collection is what releases the actors.
        self.label = label
        self._spec = spec
        self._blob = blob
        self._verbose = verbose
        self._lock = threading.Lock()
        self._holder: list[Dispatcher | None] = [None]
        self._context: ContextActor | None = None
        self._active = 0
        self._closing: asyncio.Future[None] | None = None
        self._last_end = time.monotonic()
        weakref.finalize(owner, _release, self._holder)
        _live.add(self)

    @property
    def dispatcher(self) -> Dispatcher | None:
        return self._holder[0]

    @property
    def started(self) -> bool:
        return self._holder[0] is not None

    async def start(self) -> tuple[Dispatcher, ContextActor]:
        """The running dispatcher and context actor, starting them (and Ray) if needed."""
        dispatcher, context = self._holder[0], self._context
        if dispatcher is not None and context is not None:
            return dispatcher, context
        # Ray is started on this thread, not in the helper thread below: Ray ties the processes of a
        # local cluster to the thread that started them, and the helper thread ends with its event loop.
        ensure_ray()
        return await asyncio.to_thread(self.start_blocking)

    def start_blocking(self) -> tuple[Dispatcher, ContextActor]:
        with self._lock:
            dispatcher = self._holder[0]
            if dispatcher is None or self._context is None:
                ensure_ray()
                dispatcher = Dispatcher.create(self._blob(), list(self._spec.routes), self.label, self._verbose)
                self._context = dispatcher.ready_sync()
                self._holder[0] = dispatcher
            assert self._context is not None
            return dispatcher, self._context

    def run_started(self) -> None:
        self._active += 1

    def run_ended(self) -> None:
        self._active -= 1
        self._last_end = time.monotonic()
        if self._active == 0:
            idle = settings().idle_release_s
            try:
                asyncio.get_running_loop().call_later(idle, self._release_if_idle, idle)
            except RuntimeError:
                pass

    def _release_if_idle(self, idle: float) -> None:
        if self._active == 0 and time.monotonic() - self._last_end >= idle * 0.99 and self.started:
            self._closing = asyncio.ensure_future(self.close())

    async def close(self) -> None:
        """Stop every actor of this instance and wait until they are gone."""
        with self._lock:
            dispatcher, self._holder[0], self._context = self._holder[0], None, None
        if dispatcher is not None and ray.is_initialized():
            await dispatcher.close()

    def close_sync(self) -> None:
        with self._lock:
            dispatcher, self._holder[0], self._context = self._holder[0], None, None
        if dispatcher is not None and ray.is_initialized():
            dispatcher.close_sync()


@atexit.register
def _close_all() -> None:
    for runtime in list(_live):
        try:
            runtime.close_sync()
        except Exception:
            pass
