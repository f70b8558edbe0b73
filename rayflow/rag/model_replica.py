"""The model pool replica actor (private to ``rayflow.rag.model_pool``): loads the model once, batches requests.

Data flow: ``ModelPool`` client -> ``infer(method, items, kwargs)`` -> ``ResultCache`` (inputs computed recently are
answered from it) -> ``BatchQueue`` (the rest, merged with other callers' requests) -> one thread calls
``getattr(model, method)(batch, **kwargs)`` -> each caller gets its slice of the result. The event loop keeps
accepting requests while the model computes, so the next batch is ready when the current one ends.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import ray

from rayflow.config import settings
from rayflow.errors import RayflowError
from rayflow.rag.batching import MISS, BatchQueue, Request, ResultCache, is_idle

__all__ = ["ModelPoolError", "ModelReplicaActor", "ReplicaRetired"]


class ModelPoolError(RayflowError):
    """A model pool could not load its model, or its replica stayed gone for longer than the client retries."""


class ReplicaRetired(Exception):
    """Raised to a request that reaches a replica after it decided to exit for idleness: the client retries it
    on a fresh replica. (Served instead, it would keep the exiting actor alive with no batch loop to run it.)"""


class _ModelReplica:
    def __init__(
        self,
        loader: Callable[[], Any],
        max_batch: int,
        max_wait_ms: float,
        idle_s: float,
        num_replicas: int,
        name: str,
        cache_items: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._name = name
        self._idle_s = idle_s
        self._threads = _configure_threads(num_replicas)
        self._threads_now = 0  # unknown in the model's thread until its first call sets it
        self._parallel_min_items = settings().model_parallel_min_items
        started = clock()
        self._model = loader()
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(self._threads)
        self._load_s = clock() - started
        self._queue = BatchQueue(max_batch, max_wait_ms / 1000.0)
        self._cache = ResultCache(cache_items)
        # One thread runs the model: the event loop stays free to accept (and batch) new requests meanwhile.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="rayflow-model")
        self._wakeup: asyncio.Event | None = None
        self._exiting: asyncio.Event | None = None
        self._drained: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False
        self._last_active = clock()
        self._batches = 0
        self._items = 0
        self._requests = 0
        self._queued = 0
        self._cache_hits = 0
        self._model_s = 0.0
        self._wait_s = 0.0

    def _ensure_started(self) -> None:
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
            self._exiting = asyncio.Event()
            self._drained = asyncio.Event()
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._batch_loop()), loop.create_task(self._idle_watch())]

    async def start(self) -> None:
        self._ensure_started()

    async def infer(self, method: str, items: list[Any], kwargs: dict[str, Any]) -> Any:
        self._ensure_started()
        assert self._wakeup is not None and self._drained is not None and self._exiting is not None
        if self._exiting.is_set():
            raise ReplicaRetired(f"model pool replica {self._name!r} is exiting for idleness")
        key = (method, repr(sorted(kwargs.items())))
        self._requests += 1
        self._last_active = self._clock()
        rows = self._cache.lookup(key, items)
        missing = [i for i, row in enumerate(rows) if row is MISS]
        self._cache_hits += len(items) - len(missing)
        if not missing:
            return _stacked(rows)
        self._queued += 1
        self._drained.clear()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        todo = items if len(missing) == len(items) else [items[i] for i in missing]
        self._queue.push(Request(todo, key, kwargs, self._clock(), future))
        self._wakeup.set()
        computed = await future
        if todo is items:
            return computed
        for i, row in zip(missing, computed, strict=True):
            rows[i] = row
        return _stacked(rows)

    async def _batch_loop(self) -> None:
        assert self._wakeup is not None and self._drained is not None
        while True:
            self._wakeup.clear()
            due = self._queue.due_at()
            if due is None:
                self._drained.set()
            delay = None if due is None else due - self._clock()
            if delay is None or delay > 0:
                try:
                    await asyncio.wait_for(self._wakeup.wait(), delay)
                except asyncio.TimeoutError:
                    pass
                continue
            self._running = True
            try:
                await self._run(self._queue.take())
            finally:
                self._running = False
                self._last_active = self._clock()

    async def _run(self, batch: list[Request]) -> None:
        loop = asyncio.get_running_loop()
        method, kwargs = batch[0].key[0], batch[0].kwargs
        items = [item for request in batch for item in request.items]
        started = self._clock()
        try:
            result = await loop.run_in_executor(self._executor, self._call, method, items, kwargs)
        except Exception as err:
            if len(batch) > 1:
                # Run the requests one by one, so a bad input fails only the caller that sent it.
                for request in batch:
                    await self._run([request])
            elif not batch[0].future.done():
                batch[0].future.set_exception(err)
            return
        self._model_s += self._clock() - started
        self._wait_s += sum(started - request.arrived for request in batch)
        self._batches += 1
        self._items += len(items)
        self._cache.store(batch[0].key, items, [_owned(row) for row in result])
        offset = 0
        for request in batch:
            end = offset + len(request.items)
            if not request.future.done():
                request.future.set_result(result[offset:end])
            offset = end

    def _call(self, method: str, items: list[Any], kwargs: dict[str, Any]) -> Any:
        fn = getattr(self._model, method, None)
        if fn is None:
            raise ModelPoolError(
                f"model of pool {self._name!r} ({type(self._model).__name__}) has no method {method!r}"
            )
        self._use_threads(self._threads if len(items) >= self._parallel_min_items else 1)
        result = fn(items, **kwargs)
        if len(result) != len(items):
            raise ModelPoolError(
                f"{type(self._model).__name__}.{method} in pool {self._name!r} returned {len(result)} results "
                f"for {len(items)} items"
            )
        return result

    def _use_threads(self, n: int) -> None:
        """Run the model with ``n`` torch threads from now on (called in the model's thread, where it applies)."""
        torch = sys.modules.get("torch")
        if torch is not None and n != self._threads_now:
            torch.set_num_threads(n)
            self._threads_now = n

    async def _idle_watch(self) -> None:
        assert self._exiting is not None
        period = max(0.05, min(self._idle_s / 4, 30.0)) if self._idle_s > 0 else 3600.0
        while True:
            await asyncio.sleep(period)
            busy = self._running or len(self._queue) > 0
            if is_idle(self._clock(), self._last_active, busy, self._idle_s):
                self._exiting.set()
                self._tasks[0].cancel()
                # Graceful: Ray runs calls already queued on this actor, then ends the process.
                ray.get_runtime_context().current_actor.__ray_terminate__.remote()
                return

    async def info(self) -> dict[str, Any]:
        self._ensure_started()
        ctx = ray.get_runtime_context()
        return {
            "name": self._name,
            "pid": os.getpid(),
            "node_id": ctx.get_node_id(),
            "gpu_ids": list(ray.get_gpu_ids()),
            "resources": dict(ctx.get_assigned_resources()),
            "device": str(getattr(self._model, "device", "cpu")),
            "threads": self._threads,
            "load_s": self._load_s,
            "batches": self._batches,
            "items": self._items,
            "requests": self._requests,
            "queued": self._queued,
            "cache_hits": self._cache_hits,
            "model_s": self._model_s,
            "wait_s": self._wait_s,
        }

    async def stop(self) -> None:
        """Finish the queued requests, then end the background tasks (before the actor is terminated)."""
        self._ensure_started()
        assert self._drained is not None
        if not self._tasks[0].done():  # after an idle exit began, the batch loop is gone and nothing is queued
            await self._drained.wait()
        for task in self._tasks:
            task.cancel()

    async def until_exit(self) -> str:
        """Returns when the replica has decided to exit for idleness (tests await it instead of sleeping)."""
        self._ensure_started()
        assert self._exiting is not None
        await self._exiting.wait()
        return self._name


def _owned(row: Any) -> Any:
    """A row of a batch result that does not keep the whole batch's array alive in the cache."""
    return row.copy() if isinstance(row, np.ndarray) else row


def _stacked(rows: list[Any]) -> Any:
    """Rows from the cache and from a model call as one result: an array when they are arrays of one shape."""
    if not rows:
        return []
    first = rows[0]
    if isinstance(first, np.ndarray) and all(isinstance(r, np.ndarray) and r.shape == first.shape for r in rows):
        return np.stack(rows)
    return list(rows)


def _configure_threads(num_replicas: int) -> int:
    """Threads for the model: the node's cores shared by the pool's replicas (Ray sets OMP_NUM_THREADS=1)."""
    threads = settings().model_threads or max(1, (os.cpu_count() or 1) // max(1, num_replicas))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    return threads


ModelReplicaActor = ray.remote(_ModelReplica)
