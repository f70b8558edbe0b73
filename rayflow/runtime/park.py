"""The driver's park of idle actor sets: how a new workflow instance starts warm instead of starting processes.

A *set* is one dispatcher with the context actor and the step actors it owns (``rayflow.runtime.dispatcher``).
Starting one costs an actor start per process (about half a second each, more when several start at once on a small
machine); binding a parked set to a new instance costs a few actor calls. The park holds two kinds of idle sets:

- **released sets**: the set of an instance that was closed, garbage-collected or released for idleness. It
  forgets the instance (``Dispatcher.park``) and waits here, keyed by the instance's class *object*: only an
  instance of that very class takes it. The processes ran that class's code, so whatever the code left at module
  level stays with them; a redefined class (a notebook cell run again) or a reloaded module is another class object
  and never gets them, so it never runs old code.
- **spares**: blank sets started ahead of need. When an instance starts its actors, the park starts one more set of
  the same *shape* (its step names, each pool at its warm size) in the background, unless it already holds one
  (``RAYFLOW_SPARE_SETS``). Its step actors load no workflow until bound, so any class of that shape may take it:
  the next instance of the class, or of a class redefined with the same steps.

A taker prefers a released set of its class, then a spare of its shape; with neither it starts a new set. The park
holds at most ``RAYFLOW_PARK_SETS`` sets (the oldest is stopped to make room) and stops a set unused for
``RAYFLOW_PARK_S`` seconds, so idle processes (about 90 MiB each) are bounded in number and in time: 300 instances
dropped without ``close()`` leave at most ``RAYFLOW_PARK_SETS`` sets behind, for that long. A set that cannot be
parked (a run still going on) stops itself, and one that fails to bind is stopped and replaced by a new set.
``RAYFLOW_PARK_SETS=0`` turns the park off: released sets stop, no spare starts.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ray

from rayflow.config import settings
from rayflow.core.routing import StepRoute
from rayflow.runtime.dispatcher import Dispatcher

__all__ = ["ActorPark", "Shape", "current", "install", "shape_of"]

#: A set's step actors by step name, count and GPUs per actor, in step order.
Shape = tuple[tuple[str, int, float], ...]


def shape_of(routes: Sequence[StepRoute]) -> Shape:
    """The shape of the set an instance with ``routes`` starts with: each pool at its warm size, with the GPUs its
    actors reserve (a spare's actors are placed as the instance's would be)."""
    return tuple((route.name, min(route.warm, route.num_workers), route.num_gpus) for route in routes)


@dataclass
class _Parked:
    dispatcher: Dispatcher
    #: The workflow class whose code the set ran; None for a spare that never loaded one.
    kind: type | None
    shape: Shape
    #: Answers True once the set is parked (or the spare runs); False or an error: it cannot serve.
    ready: Any
    deadline: float


class ActorPark:
    """Idle actor sets of this driver, for new workflow instances (see the module docstring)."""

    def __init__(self, sets: int, spares: int, park_s: float) -> None:
        self._sets = sets
        self._spares = spares if sets > 0 else 0
        self._park_s = park_s
        self._parked: list[_Parked] = []
        self._stopping: list[Any] = []
        self._wake = threading.Condition()
        self._reaper: threading.Thread | None = None

    @classmethod
    def from_settings(cls) -> ActorPark:
        config = settings()
        return cls(config.park_sets, config.spare_sets, config.park_s)

    def __len__(self) -> int:
        with self._wake:
            return len(self._parked)

    def take(self, kind: type, shape: Shape) -> Dispatcher | None:
        """A parked set for an instance of ``kind`` (released by one, else a blank spare of ``shape``), ready to
        ``bind``; None if there is none."""
        while True:
            with self._wake:
                entry = next((p for p in self._parked if p.kind is kind and p.shape == shape), None)
                if entry is None:
                    entry = next((p for p in self._parked if p.kind is None and p.shape == shape), None)
                if entry is None:
                    return None
                self._parked.remove(entry)
            try:  # a spare may still be starting; one not ready within the time it may stay parked is dropped
                answer = ray.get(entry.ready, timeout=self._park_s)
            except Exception:
                answer = False
            if answer is True:
                return entry.dispatcher
            self.stop(entry.dispatcher)

    def put(self, dispatcher: Dispatcher, kind: type, shape: Shape) -> bool:
        """Park the set of ``dispatcher``, released by an instance of ``kind`` (of ``shape``): it forgets the
        instance, never waited for here (a garbage collection may call this). False if the park is off: stop the set
        yourself."""
        if self._sets <= 0 or not ray.is_initialized():
            return False
        self._add(_Parked(dispatcher, kind, shape, dispatcher.park(), 0.0))
        return True

    def refill(self, shape: Shape, name: str) -> None:
        """Start a blank spare of ``shape`` in the background, unless the park holds enough of them already."""
        if self._spares <= 0 or not ray.is_initialized():
            return
        with self._wake:
            if sum(1 for p in self._parked if p.kind is None and p.shape == shape) >= self._spares:
                return
        dispatcher = Dispatcher.create(None, [], f"rayflow.{name}.{uuid.uuid4().hex[:8]}", False)
        self._add(_Parked(dispatcher, None, shape, dispatcher.spare(list(shape)), 0.0))

    def settled_sync(self) -> None:
        """Wait until every parked set has forgotten its instance, or runs (a spare); a benchmark's fair start."""
        with self._wake:
            refs = [p.ready for p in self._parked]
        if refs:
            ray.wait(refs, num_returns=len(refs), timeout=self._park_s)

    def stop(self, dispatcher: Dispatcher) -> None:
        """Stop a set (its dispatcher ends its actors, then itself), without waiting here."""
        ref = dispatcher.release()
        with self._wake:
            if self._stopping:  # forget those already gone
                _, self._stopping = ray.wait(self._stopping, num_returns=len(self._stopping), timeout=0)
            self._stopping.append(ref)

    def drain_sync(self) -> None:
        """Stop every parked set and wait until they are gone (a test's end, the interpreter's exit)."""
        with self._wake:
            parked, self._parked = self._parked, []
        for entry in parked:
            entry.dispatcher.close_sync()
        self.stopped_sync()

    def stopped_sync(self) -> None:
        """Wait until the sets this park stopped are gone."""
        with self._wake:
            stopping, self._stopping = self._stopping, []
        for ref in stopping:
            try:
                ray.get(ref, timeout=settings().shutdown_grace_s * 2)
            except Exception:
                pass  # the dispatcher exits at the end of its release: that is the expected answer

    def _add(self, entry: _Parked) -> None:
        evicted: list[_Parked] = []
        with self._wake:
            entry.deadline = time.monotonic() + self._park_s
            self._parked.append(entry)
            while len(self._parked) > self._sets:
                evicted.append(self._parked.pop(0))
            if self._reaper is None or not self._reaper.is_alive():
                self._reaper = threading.Thread(target=self._reap, name="rayflow.park", daemon=True)
                self._reaper.start()
            self._wake.notify()
        for old in evicted:
            self.stop(old.dispatcher)

    def _reap(self) -> None:
        """Stop sets parked past their deadline; ends once the park is empty."""
        while True:
            with self._wake:
                if not self._parked:
                    self._reaper = None
                    return
                now = time.monotonic()
                expired = [p for p in self._parked if p.deadline <= now]
                self._parked = [p for p in self._parked if p.deadline > now]
                if not expired:
                    self._wake.wait(min(p.deadline for p in self._parked) - now)
                    continue
            for entry in expired:
                if ray.is_initialized():
                    self.stop(entry.dispatcher)


_current: ActorPark | None = None
_current_lock = threading.Lock()


def current() -> ActorPark:
    """The process-wide park, made from the settings at first use."""
    global _current
    with _current_lock:
        if _current is None:
            _current = ActorPark.from_settings()
        return _current


def install(park: ActorPark | None) -> ActorPark | None:
    """Make ``park`` the process-wide park (None: one made from the settings at next use); the one it replaces."""
    global _current
    with _current_lock:
        previous, _current = _current, park
        return previous
