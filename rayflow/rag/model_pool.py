"""Batched model actors shared across a cluster: the compute stage under embedding and reranking.

Data flow: ``HuggingFaceEmbedding`` / ``SentenceTransformerRerank`` -> ``ModelPool`` (typed client, one per process)
-> replica actors named ``rayflow.model.<kind>.<model-slug>.<gpus>.<i>`` -> ``getattr(model, method)(batch, **kw)``.

What is shared: replicas are *detached named* actors created with ``get_if_exists``, so every process (the driver,
step actors, other jobs in the namespace) that asks for the same ``kind``/``model``/``num_gpus`` reaches the same
replicas, and the model is loaded once per replica. The first creator's ``loader``, ``max_batch`` and
``max_wait_ms`` win. What is batched: a replica packs the queued requests that share a method and kwargs, in arrival
order, into one model call of up to ``max_batch`` items; a request waits at most ``max_wait_ms`` for company, and
never waits when the batch is already full. Replicas exit by themselves after ``RAYFLOW_MODEL_IDLE_S`` seconds
(default 900, 0 disables) with no request; a client whose replica exited or died recreates it once and retries.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import RayActorError

from rayflow.config import settings
from rayflow.errors import RayflowError
from rayflow.runtime.cluster import ensure_ray

__all__ = ["BatchQueue", "ModelPool", "ModelPoolError", "shutdown_model_pools"]

ACTOR_PREFIX = "rayflow.model."


class ModelPoolError(RayflowError):
    """A model pool could not load its model, or one of its replicas died twice in a row."""


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return default if raw in (None, "") else float(raw)


def _idle_s_default() -> float:
    return _env_float("RAYFLOW_MODEL_IDLE_S", 900.0)


def _num_cpus_default() -> float:
    # 0 by default: a replica computes with threads of its own, and reserving a CPU would deadlock small clusters
    # where step actors also want one.
    return _env_float("RAYFLOW_MODEL_NUM_CPUS", 0.0)


# ---------------------------------------------------------------------------------------------------------------
# Pure policy: chunking, replica choice, batching, idleness. No Ray, no event loop, times passed in.


def plan_chunks(n: int, max_batch: int) -> list[tuple[int, int]]:
    """``[start, end)`` ranges of at most ``max_batch`` items covering ``range(n)``."""
    return [(start, min(start + max_batch, n)) for start in range(0, n, max_batch)]


def pick_replica(inflight: list[int], turn: int) -> int:
    """The replica with the fewest chunks in flight; ties go round-robin from ``turn``."""
    n = len(inflight)
    return min(range(n), key=lambda i: (inflight[i], (i - turn) % n))


@dataclass(slots=True)
class _Request:
    items: list[Any]
    key: tuple[str, str]
    kwargs: dict[str, Any]
    arrived: float
    future: Any  # an asyncio.Future in the replica; anything in tests


class BatchQueue:
    """The replica's waiting requests and the rule that decides when and what to run.

    A batch is the oldest request plus the following requests with the same key (method and kwargs), in order,
    up to ``max_batch`` items in all; it stops at the first same-key request that does not fit, so requests run in
    arrival order within a key. The batch is due when it cannot grow any more, or ``max_wait_s`` after its oldest
    request arrived.
    """

    def __init__(self, max_batch: int, max_wait_s: float) -> None:
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._pending: deque[_Request] = deque()

    def __len__(self) -> int:
        return len(self._pending)

    def push(self, request: _Request) -> None:
        self._pending.append(request)

    def _plan(self) -> tuple[list[int], bool]:
        head = self._pending[0]
        chosen, total = [], 0
        for i, request in enumerate(self._pending):
            if request.key != head.key:
                continue
            if chosen and total + len(request.items) > self.max_batch:
                return chosen, True
            chosen.append(i)
            total += len(request.items)
        return chosen, total >= self.max_batch

    def due_at(self) -> float | None:
        """When the next batch should run (a past time means now); None when nothing waits."""
        if not self._pending:
            return None
        head = self._pending[0]
        _, full = self._plan()
        return head.arrived if full else head.arrived + self.max_wait_s

    def take(self) -> list[_Request]:
        """Remove and return the next batch (call when ``due_at()`` has passed)."""
        chosen, _ = self._plan()
        batch = [self._pending[i] for i in chosen]
        for i in reversed(chosen):
            del self._pending[i]
        return batch


def is_idle(now: float, last_active: float, busy: bool, idle_s: float) -> bool:
    """Whether a replica with no queued or running work since ``last_active`` should exit."""
    return idle_s > 0 and not busy and now - last_active >= idle_s


# ---------------------------------------------------------------------------------------------------------------
# The replica actor (private): loads the model once, batches requests from every caller.


class _ModelReplica:
    def __init__(
        self,
        loader: Callable[[], Any],
        max_batch: int,
        max_wait_ms: float,
        idle_s: float,
        num_replicas: int,
        name: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._name = name
        self._idle_s = idle_s
        self._threads = _configure_threads(num_replicas)
        started = clock()
        self._model = loader()
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(self._threads)
        self._load_s = clock() - started
        self._queue = BatchQueue(max_batch, max_wait_ms / 1000.0)
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
        assert self._wakeup is not None and self._drained is not None
        self._drained.clear()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        key = (method, repr(sorted(kwargs.items())))
        self._queue.push(_Request(items, key, kwargs, self._clock(), future))
        self._last_active = self._clock()
        self._wakeup.set()
        return await future

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

    async def _run(self, batch: list[_Request]) -> None:
        loop = asyncio.get_running_loop()
        method, kwargs = batch[0].key[0], batch[0].kwargs
        items = [item for request in batch for item in request.items]
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
        self._batches += 1
        self._items += len(items)
        offset = 0
        for request in batch:
            end = offset + len(request.items)
            if not request.future.done():
                request.future.set_result(result[offset:end])
            offset = end

    def _call(self, method: str, items: list[Any], kwargs: dict[str, Any]) -> Any:
        fn = getattr(self._model, method, None)
        if fn is None:
            raise ModelPoolError(f"model of pool {self._name!r} ({type(self._model).__name__}) has no method {method!r}")
        result = fn(items, **kwargs)
        if len(result) != len(items):
            raise ModelPoolError(
                f"{type(self._model).__name__}.{method} in pool {self._name!r} returned {len(result)} results "
                f"for {len(items)} items"
            )
        return result

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
        }

    async def stop(self) -> None:
        """Finish the queued requests, then end the background tasks (before the actor is terminated)."""
        self._ensure_started()
        assert self._drained is not None
        await self._drained.wait()
        for task in self._tasks:
            task.cancel()

    async def until_exit(self) -> str:
        """Returns when the replica has decided to exit for idleness (tests await it instead of sleeping)."""
        self._ensure_started()
        assert self._exiting is not None
        await self._exiting.wait()
        return self._name


def _configure_threads(num_replicas: int) -> int:
    """Threads for the model: the node's cores shared by the pool's replicas (Ray sets OMP_NUM_THREADS=1)."""
    raw = os.environ.get("RAYFLOW_MODEL_THREADS")
    threads = int(raw) if raw else max(1, (os.cpu_count() or 1) // max(1, num_replicas))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    return threads


_ReplicaActor = ray.remote(_ModelReplica)


# ---------------------------------------------------------------------------------------------------------------
# The typed client.


def _slug(model: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-") or "model"
    if len(slug) > 40:
        slug = f"{slug[-31:].strip('-')}-{hashlib.sha1(model.encode()).hexdigest()[:8]}"
    return slug


def replica_name(kind: str, model: str, num_gpus: float, index: int) -> str:
    """``rayflow.model.<kind>.<model-slug>.<gpus>.<i>``."""
    return f"{ACTOR_PREFIX}{kind}.{_slug(model)}.{num_gpus:g}.{index}"


@dataclass(frozen=True)
class _PoolSpec:
    kind: str
    model: str
    loader: Callable[[], Any]
    method: str
    num_gpus: float
    num_replicas: int
    max_batch: int
    max_wait_ms: float
    num_cpus: float
    idle_s: float


class ModelPool:
    """A client for the replicas of one model; cheap, one per process and spec, and picklable (into actors too)."""

    _cache: dict[tuple[str, str, str, float, int], ModelPool] = {}
    _cache_lock = threading.Lock()

    def __init__(self, spec: _PoolSpec) -> None:
        self._spec = spec
        self._names = [replica_name(spec.kind, spec.model, spec.num_gpus, i) for i in range(spec.num_replicas)]
        self._handles: list[Any] = [None] * spec.num_replicas
        self._inflight = [0] * spec.num_replicas
        self._turn = itertools.count()
        self._lock = threading.Lock()

    @classmethod
    def get_or_create(
        cls,
        *,
        kind: str,
        model: str,
        loader: Callable[[], Any],
        method: str,
        num_gpus: float = 0.0,
        num_replicas: int = 1,
        max_batch: int = 64,
        max_wait_ms: float = 5.0,
        num_cpus: float | None = None,
        idle_s: float | None = None,
    ) -> ModelPool:
        """The pool for ``kind``/``model``/``num_gpus``, reusing running replicas anywhere in the cluster.

        Replicas start loading the model at once (in the background); the first call waits for them.
        """
        if num_replicas < 1 or max_batch < 1 or num_gpus < 0:
            raise ModelPoolError(
                f"model pool {kind}/{model}: need num_replicas >= 1, max_batch >= 1, num_gpus >= 0 "
                f"(got {num_replicas}, {max_batch}, {num_gpus})"
            )
        key = (kind, model, method, float(num_gpus), num_replicas)
        with cls._cache_lock:
            pool = cls._cache.get(key)
            if pool is None:
                spec = _PoolSpec(
                    kind, model, loader, method, float(num_gpus), num_replicas, max_batch, max_wait_ms,
                    _num_cpus_default() if num_cpus is None else num_cpus,
                    _idle_s_default() if idle_s is None else idle_s,
                )  # fmt: skip
                pool = cls._cache[key] = cls(spec)
        for i in range(num_replicas):
            pool._handle(i)
        return pool

    def __reduce__(self) -> tuple[Any, ...]:
        return (_pool_from_spec, (self._spec,))

    @property
    def replica_names(self) -> list[str]:
        """The Ray actor names of this pool's replicas."""
        return list(self._names)

    def _handle(self, i: int) -> Any:
        with self._lock:
            if self._handles[i] is None:
                ensure_ray()
                spec = self._spec
                handle = _ReplicaActor.options(  # type: ignore[attr-defined]
                    name=self._names[i],
                    namespace=settings().namespace,
                    get_if_exists=True,
                    lifetime="detached",
                    num_gpus=spec.num_gpus,
                    num_cpus=spec.num_cpus,
                    max_concurrency=1000,
                ).remote(spec.loader, spec.max_batch, spec.max_wait_ms, spec.idle_s, spec.num_replicas, self._names[i])
                handle.start.remote()
                self._handles[i] = handle
            return self._handles[i]

    def _forget(self, i: int, handle: Any) -> None:
        with self._lock:
            if self._handles[i] is handle:
                self._handles[i] = None

    def _acquire(self) -> int:
        with self._lock:
            i = pick_replica(self._inflight, next(self._turn))
            self._inflight[i] += 1
            return i

    def _release(self, i: int) -> None:
        with self._lock:
            self._inflight[i] -= 1

    def _died(self, i: int, handle: Any, err: RayActorError, attempt: int) -> None:
        """Forget a dead replica so the next try recreates it, or raise if retrying cannot help."""
        self._forget(i, handle)
        if err.actor_init_failed or attempt > 0:
            lines = [ln for ln in re.sub(r"\x1b\[[0-9;]*m", "", str(err)).splitlines() if ln.strip()]
            raise ModelPoolError(
                f"model pool replica {self._names[i]!r} (model {self._spec.model!r}) "
                f"{'could not load its model' if err.actor_init_failed else 'died'}: {lines[-1] if lines else err}"
            ) from err

    async def _achunk(self, items: list[Any], kwargs: dict[str, Any]) -> Any:
        for attempt in range(2):
            i = self._acquire()
            handle = self._handle(i)
            try:
                return await handle.infer.remote(self._spec.method, items, kwargs)
            except RayActorError as err:
                self._died(i, handle, err, attempt)
            finally:
                self._release(i)
        raise AssertionError("unreachable")

    async def amap_chunks(
        self, items: list[Any], *, on_chunk: Callable[[int], None] | None = None, **kwargs: Any
    ) -> list[Any]:
        """The model's raw result for each chunk of ``max_batch`` items, in order (e.g. one ndarray per chunk).

        Chunks run concurrently, spread over the replicas; ``on_chunk(n_items)`` is called as each one finishes.
        """

        async def one(chunk: list[Any]) -> Any:
            result = await self._achunk(chunk, kwargs)
            if on_chunk is not None:
                on_chunk(len(chunk))
            return result

        spans = plan_chunks(len(items), self._spec.max_batch)
        return list(await asyncio.gather(*(one(items[a:b]) for a, b in spans)))

    async def acall(self, items: list[Any], **kwargs: Any) -> list[Any]:
        """One result per item, in order: ``getattr(model, method)(batch, **kwargs)`` over the replicas."""
        return [r for chunk in await self.amap_chunks(list(items), **kwargs) for r in chunk]

    def map_chunks(
        self, items: list[Any], *, on_chunk: Callable[[int], None] | None = None, **kwargs: Any
    ) -> list[Any]:
        """The blocking twin of ``amap_chunks`` (no event loop needed; safe from any thread)."""
        spans = plan_chunks(len(items), self._spec.max_batch)
        results: list[Any] = [None] * len(spans)
        todo = list(range(len(spans)))
        for attempt in range(2):
            pending = {}
            for k in todo:
                i = self._acquire()
                handle = self._handle(i)
                a, b = spans[k]
                pending[handle.infer.remote(self._spec.method, items[a:b], kwargs)] = (k, i, handle)
            todo = []
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                k, i, handle = pending.pop(done[0])
                self._release(i)
                try:
                    results[k] = ray.get(done[0])
                except RayActorError as err:
                    self._died(i, handle, err, attempt)
                    todo.append(k)
                    continue
                if on_chunk is not None:
                    on_chunk(spans[k][1] - spans[k][0])
            if not todo:
                break
        return results

    def call(self, items: list[Any], **kwargs: Any) -> list[Any]:
        """The blocking twin of ``acall``."""
        return [r for chunk in self.map_chunks(list(items), **kwargs) for r in chunk]

    def replica_info(self) -> list[dict[str, Any]]:
        """Per replica: name, pid, node, ``gpu_ids``, assigned ``resources``, device, threads, load time, counters."""
        return list(ray.get([self._handle(i).info.remote() for i in range(len(self._names))]))

    def warmup(self) -> None:
        """Block until every replica has loaded its model."""
        self.replica_info()

    def shutdown(self) -> None:
        """Stop this pool's replicas (graceful, then killed after the grace period), in every process's view."""
        ensure_ray()
        handles = []
        for name in self._names:
            try:
                handles.append(ray.get_actor(name, namespace=settings().namespace))
            except ValueError:
                continue
        _stop_actors(handles)
        with self._lock:
            self._handles = [None] * len(self._names)
        with ModelPool._cache_lock:
            for key, pool in list(ModelPool._cache.items()):
                if pool is self:
                    del ModelPool._cache[key]


def _pool_from_spec(spec: _PoolSpec) -> ModelPool:
    return ModelPool.get_or_create(
        kind=spec.kind, model=spec.model, loader=spec.loader, method=spec.method, num_gpus=spec.num_gpus,
        num_replicas=spec.num_replicas, max_batch=spec.max_batch, max_wait_ms=spec.max_wait_ms,
        num_cpus=spec.num_cpus, idle_s=spec.idle_s,
    )  # fmt: skip


def _stop_actors(handles: list[Any]) -> None:
    """Let each replica finish its queued requests and exit; kill those still alive after the grace period."""
    if not handles:
        return
    grace = settings().shutdown_grace_s
    ray.wait([h.stop.remote() for h in handles], num_returns=len(handles), timeout=grace)
    refs = [h.__ray_terminate__.remote() for h in handles]
    _, late = ray.wait(refs, num_returns=len(refs), timeout=grace)
    for handle, ref in zip(handles, refs, strict=True):
        if ref in late:
            ray.kill(handle, no_restart=True)
    for ref in refs:
        try:
            ray.get(ref)
        except RayActorError:
            pass  # the expected way an exited actor answers; its name is free once this returns


def shutdown_model_pools() -> None:
    """Stop every model pool replica in the cluster (all namespaces) and forget this process's pool clients."""
    ensure_ray()
    handles = []
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["name"].startswith(ACTOR_PREFIX):
            try:
                handles.append(ray.get_actor(entry["name"], namespace=entry["namespace"]))
            except ValueError:
                continue
    _stop_actors(handles)
    with ModelPool._cache_lock:
        ModelPool._cache.clear()
