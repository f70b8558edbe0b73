"""A workflow instance's actors, seen from the driver: started by the first run, shared, released.

The dispatcher (and through it the step pools and the context actor) starts on the first ``run()`` (or the
caller's first ``ctx.store`` call) and stays warm for later and concurrent runs. It is released by ``close()``,
when the workflow object is garbage-collected, when the instance has had no run for ``RAYFLOW_IDLE_RELEASE_S``
seconds (a later run starts it again), and at interpreter exit. Killing the dispatcher also ends the actors it owns.

When the dispatcher or the context actor dies, the driver forgets that set of actors (``died``) and stops what is
left of it in a helper thread; the next run starts a new set. Every set after an instance's first has names of its
own (``<label>-<n>.dispatcher``, ...): Ray may hold the names of a set that died or was released a while.
Before an idle release, ``keep`` reads what the caller's live contexts need to find again in the next set.

A start first joins the live set of an equal instance of the same class (``rayflow.runtime.sharing``), if there is
one. Else it goes through the driver's park (``rayflow.runtime.park``): it takes a parked set (one an earlier
instance of the same class released, or a blank spare of the same shape) and binds it to this instance before it
starts new actors, then has a spare started for the next instance once it has had no run for
``RAYFLOW_SPARE_AFTER_S`` (a spare started at once takes the cores from its runs: on 2 cores it made the first run of
a CPU-bound fan-out 2.3x slower, and one started as soon as that run ended made the next run 4x slower).
``close()``, the garbage collection and the idle release let go of the set: the last of its sharers parks it
instead of stopping it, while the park has room. A set that died is never parked.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import RayActorError

from rayflow.config import settings
from rayflow.runtime.actors import stop_actors_sync
from rayflow.runtime.cluster import ensure_ray
from rayflow.runtime.context_actor import ContextActor
from rayflow.runtime.dispatcher import Dispatcher
from rayflow.runtime.park import Shape, current, shape_of
from rayflow.runtime.sharing import SetKey, key_of, shared
from rayflow.spec import WorkflowSpec

__all__ = ["WorkflowRuntime", "released"]

_live: weakref.WeakSet[WorkflowRuntime] = weakref.WeakSet()
_releasing: list[Any] = []


@dataclass(frozen=True)
class _Actors:
    """One started set of an instance's actors, as the driver holds it."""

    dispatcher: Dispatcher
    context: ContextActor
    #: Ready once the context actor is gone (with an error) or no longer watched; it goes when the dispatcher goes.
    watch: Any

    def gone(self) -> bool:
        return bool(ray.wait([self.watch], timeout=0)[0])


def _let_go(actors: _Actors, kind: type, shape: Shape) -> bool:
    """An instance of ``kind`` lets go of its set: True if another sharer still holds it or the park took it; False:
    the caller stops it. Call with Ray initialized."""
    return not shared().leave(actors) or current().put(actors.dispatcher, kind, shape)


def _release(holder: list[_Actors | None], kind: type, shape: Shape) -> None:
    """Finalizer of a collected workflow: it lets go of its set, which its last sharer parks, or whose dispatcher
    stops its actors, then itself (no waiting here)."""
    actors = holder[0]
    holder[0] = None
    if actors is not None and ray.is_initialized() and not _let_go(actors, kind, shape):
        _releasing.append(actors.dispatcher.release())


def _retire(actors: _Actors) -> None:
    """Stop a set of actors one of which died: the dispatcher, then any of its actors still alive (those it owned
    die with it in Ray, but not at once, and a context actor's death leaves the dispatcher and its step actors)."""
    if not ray.is_initialized():
        return
    actors.dispatcher.close_sync()
    prefix = f"{actors.dispatcher.label}."
    handles = []
    for name in ray.util.list_named_actors():
        if name.startswith(prefix):
            try:
                handles.append(ray.get_actor(name))
            except ValueError:
                pass  # gone in the meantime
    stop_actors_sync(handles)


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

    def __init__(
        self,
        owner: object,
        spec: WorkflowSpec,
        label: str,
        blob: Callable[[], bytes],
        verbose: bool,
        keep: Callable[[ContextActor], Awaitable[None]] | None = None,
    ) -> None:
        """``keep(context)`` runs before an idle release lets go of the context actor ``context`` (and before
        ``close()`` does, while other instances share it): it takes this instance's contexts out of it."""
        # No reference to the owner is kept (``blob`` pickles it through a weak reference): its garbage
        # collection is what releases the actors.
        self.label = label
        self._spec = spec
        self._blob = blob
        self._verbose = verbose
        self._keep = keep
        self._lock = threading.Lock()
        self._holder: list[_Actors | None] = [None]
        #: Threads stopping sets of actors that died (``close`` waits for them), and how many sets died.
        self._retiring: list[threading.Thread] = []
        #: Sets of actors this instance started: each new one is named apart (``<label>-<n>``), as Ray may still
        #: hold the names of one released or dead a moment ago.
        self._sets = 0
        self._active = 0
        #: A set was taken or started for this instance: a spare of its shape starts once it has been idle a while.
        self._refill = False
        self._closing: asyncio.Future[None] | None = None
        self._last_end = time.monotonic()
        self._kind = type(owner)
        self._shape = shape_of(spec.routes)
        weakref.finalize(owner, _release, self._holder, self._kind, self._shape)
        _live.add(self)

    @property
    def dispatcher(self) -> Dispatcher | None:
        actors = self._holder[0]
        return None if actors is None else actors.dispatcher

    @property
    def context(self) -> ContextActor | None:
        actors = self._holder[0]
        return None if actors is None else actors.context

    @property
    def started(self) -> bool:
        return self._holder[0] is not None

    async def start(self) -> tuple[Dispatcher, ContextActor]:
        """The running dispatcher and context actor, starting them (and Ray) if needed.

        A set found dead (it died while the instance had no run) is replaced; a release on the way is waited for.
        """
        closing = self._closing
        if closing is not None and not closing.done() and closing.get_loop() is asyncio.get_running_loop():
            await asyncio.shield(closing)
        actors = self._holder[0]
        if actors is not None:
            if not actors.gone():
                return actors.dispatcher, actors.context
            self.died(actors.dispatcher)
        # Ray is started on this thread, not in the helper thread below: Ray ties the processes of a
        # local cluster to the thread that started them, and the helper thread ends with its event loop.
        ensure_ray()
        return await asyncio.to_thread(self.start_blocking)

    def start_blocking(self) -> tuple[Dispatcher, ContextActor]:
        with self._lock:
            actors = self._holder[0]
            if actors is None:
                ensure_ray()
                blob = self._blob()
                sharing = settings().share_sets and not self._spec.caches_resources
                key = key_of(self._kind, blob, self._verbose) if sharing else None
                actors = self._join(key) if key is not None else None
                if actors is None:
                    actors = self._start(blob, key)
                self._holder[0] = actors
            return actors.dispatcher, actors.context

    def _join(self, key: SetKey) -> _Actors | None:
        """The live set of an equal instance (``rayflow.runtime.sharing``), now held by this one too."""
        while (actors := shared().join(key)) is not None:
            if not actors.gone():
                return actors
            shared().forget(actors)  # died unnoticed so far: its holders retire it at their next run
        return None

    def _start(self, blob: bytes, key: SetKey | None) -> _Actors:
        """A set for this instance: a parked one bound to it, else a new one; shared from now on under ``key``."""
        park = current()
        dispatcher, context = park.take(self._kind, self._shape), None
        if dispatcher is not None:
            try:
                context = dispatcher.bind_sync(blob, list(self._spec.routes), self._verbose)
            except Exception:
                park.stop(dispatcher)  # it could not serve: a new set below
                dispatcher = None
        if dispatcher is None or context is None:
            label = f"{self.label}-{self._sets}" if self._sets else self.label
            self._sets += 1
            dispatcher = Dispatcher.create(blob, list(self._spec.routes), label, self._verbose)
            context = dispatcher.ready_sync()
        actors = _Actors(dispatcher, context, context.watching())
        if key is not None:
            shared().add(key, actors)
        self._refill = True  # once the instance is idle: a spare starting now would take the cores from its runs
        return actors

    def _park(self, actors: _Actors) -> bool:
        """Let go of a released set: True if another sharer still holds it or the park took it; False: the caller
        stops it."""
        return ray.is_initialized() and _let_go(actors, self._kind, self._shape)

    def run_started(self) -> None:
        self._active += 1

    def run_ended(self) -> None:
        self._active -= 1
        self._last_end = time.monotonic()
        if self._active == 0:
            if self._refill:
                try:
                    asyncio.get_running_loop().call_later(settings().spare_after_s, self._refill_if_idle)
                except RuntimeError:
                    pass
            idle = settings().idle_release_s
            try:
                asyncio.get_running_loop().call_later(idle, self._release_if_idle, idle)
            except RuntimeError:
                pass

    def _refill_if_idle(self) -> None:
        """Start the spare this instance's set asked for, if no run of it went on since the wait began."""
        idle = time.monotonic() - self._last_end >= settings().spare_after_s * 0.99
        if self._refill and self._active == 0 and idle and ray.is_initialized():
            self._refill = False
            current().refill(self._shape, self._spec.name)

    def died(self, dispatcher: Dispatcher) -> None:
        """One of ``dispatcher``'s set of actors died: forget the set (if it is still this instance's) and stop what
        is left of it, without waiting here."""
        with self._lock:
            actors = self._holder[0]
            if actors is None or actors.dispatcher is not dispatcher:
                return  # already forgotten (by another run of the set, or by close())
            self._holder[0] = None
            shared().forget(actors)
            retiring = threading.Thread(target=_retire, args=(actors,), name=f"{self.label}.retire", daemon=True)
            self._retiring.append(retiring)
        retiring.start()

    def _join_retiring(self) -> None:
        while self._retiring:
            self._retiring.pop().join()

    def _release_if_idle(self, idle: float) -> None:
        if self._active == 0 and time.monotonic() - self._last_end >= idle * 0.99 and self.started:
            self._closing = asyncio.ensure_future(self._release())

    async def settled(self) -> None:
        """Wait until an idle release on the way is done (its actors gone)."""
        closing = self._closing
        if closing is not None:
            await asyncio.shield(closing)

    async def _release(self) -> None:
        """The idle release: what the caller's contexts need is kept (``keep``), then every actor is stopped."""
        with self._lock:
            actors, self._holder[0] = self._holder[0], None
        if actors is None or not ray.is_initialized():
            return
        if self._keep is not None:
            await self._keep(actors.context)
        if not self._park(actors):
            await actors.dispatcher.close()

    async def close(self) -> None:
        """Release this instance's actors: parked for a later instance (the park has room), else stopped and waited
        for until they are gone."""
        closing = self._closing
        if closing is not None and not closing.done() and closing.get_loop() is asyncio.get_running_loop():
            await asyncio.shield(closing)
        with self._lock:
            actors, self._holder[0] = self._holder[0], None
        if actors is not None and ray.is_initialized():
            if self._keep is not None and shared().holders(actors) > 1:
                await self._keep(actors.context)  # the set goes on serving others: this instance's contexts leave it
            if not self._park(actors):
                await actors.dispatcher.close()
        await asyncio.to_thread(self._join_retiring)

    def close_sync(self) -> None:
        with self._lock:
            actors, self._holder[0] = self._holder[0], None
        if actors is not None and ray.is_initialized() and shared().leave(actors):
            actors.dispatcher.close_sync()
        self._join_retiring()

    def forget_context(self, ctx_id: str) -> None:
        """Drop a context's state from the context actor (its ``Context`` is gone); safe from a garbage collection."""
        actors = self._holder[0]
        if actors is not None and ray.is_initialized():
            actors.context.release(ctx_id)


@atexit.register
def _close_all() -> None:
    for runtime in list(_live):
        try:
            runtime.close_sync()
        except Exception:
            pass
    if ray.is_initialized():
        current().drain_sync()
