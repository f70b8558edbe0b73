"""Batched model actors shared across a cluster: the compute stage under embedding and reranking.

Data flow: ``HuggingFaceEmbedding`` / ``SentenceTransformerRerank`` -> ``ModelPool`` (typed client, one per process)
-> replica actors named ``rayflow.model.<kind>.<model-slug>.<gpus>.<i>`` -> ``getattr(model, method)(batch, **kw)``.

What is shared: replicas are *detached named* actors created with ``get_if_exists``, so every process (the driver,
step actors, other jobs in the namespace) that asks for the same ``kind``/``model``/``num_gpus`` reaches the same
replicas, and the model is loaded once per replica. The first creator's ``loader``, ``max_batch`` and
``max_wait_ms`` win. What is batched: a replica packs the queued requests that share a method and kwargs, in arrival
order, into one model call of up to ``max_batch`` items; a request waits at most ``max_wait_ms`` (default
``RAYFLOW_MODEL_MAX_WAIT_MS``) for company, and never waits when the batch is already full. What is reused: a replica
keeps the results of its last ``cache_items`` inputs (default ``RAYFLOW_MODEL_CACHE_ITEMS``) and answers those at
once, without a model call.
Replicas exit by themselves after ``RAYFLOW_MODEL_IDLE_S`` seconds
(default 900, 0 disables) with no request; a client whose replica exited or died recreates it and retries,
for up to ``_RETRY_S`` seconds (a replica that exited keeps its name until Ray has marked it dead).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import RayActorError

from rayflow.config import settings
from rayflow.rag.batching import pick_replica, plan_chunks
from rayflow.rag.model_replica import ModelPoolError, ModelReplicaActor, ReplicaRetired
from rayflow.runtime.actors import own_named_actors, stop_actors_sync
from rayflow.runtime.cluster import ensure_ray

__all__ = ["ModelPool", "ModelPoolError", "replica_name", "shutdown_model_pools"]

ACTOR_PREFIX = "rayflow.model."
# How long a chunk whose replica is gone (idle exit, crash) keeps retrying on a recreated one; the waits in between
# grow from 0.05 s to at most 1 s.
_RETRY_S = 30.0
# What a request answered by a replica that is gone raises: the actor is dead, or it is exiting for idleness.
_GONE = (RayActorError, ReplicaRetired)


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
    cache_items: int


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
        max_wait_ms: float | None = None,
        num_cpus: float | None = None,
        idle_s: float | None = None,
        cache_items: int | None = None,
    ) -> ModelPool:
        """The pool for ``kind``/``model``/``num_gpus``, reusing running replicas anywhere in the cluster.

        Replicas start loading the model at once (in the background); the first call waits for them.
        ``max_wait_ms``, ``num_cpus``, ``idle_s`` and ``cache_items`` default to ``RAYFLOW_MODEL_MAX_WAIT_MS``,
        ``RAYFLOW_MODEL_NUM_CPUS``, ``RAYFLOW_MODEL_IDLE_S`` and ``RAYFLOW_MODEL_CACHE_ITEMS``.
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
                    kind, model, loader, method, float(num_gpus), num_replicas, max_batch,
                    settings().model_max_wait_ms if max_wait_ms is None else max_wait_ms,
                    settings().model_num_cpus if num_cpus is None else num_cpus,
                    settings().model_idle_s if idle_s is None else idle_s,
                    settings().model_cache_items if cache_items is None else cache_items,
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
                handle: Any = ModelReplicaActor.options(
                    name=self._names[i],
                    namespace=settings().namespace,
                    get_if_exists=True,
                    lifetime="detached",
                    num_gpus=spec.num_gpus,
                    num_cpus=spec.num_cpus,
                    max_concurrency=1000,
                ).remote(
                    spec.loader, spec.max_batch, spec.max_wait_ms, spec.idle_s, spec.num_replicas, self._names[i],
                    spec.cache_items,
                )  # fmt: skip
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

    def _gone(self, i: int, handle: Any, err: Exception, attempt: int, started: float) -> float:
        """Forget a replica that is gone so the next try recreates it; the seconds to wait first, or raise if
        retrying cannot help. (A replica that just exited keeps its name until Ray has marked it dead, and until
        then ``get_if_exists`` hands back the dead one: hence a growing wait.)"""
        self._forget(i, handle)
        load_failed = isinstance(err, RayActorError) and err.actor_init_failed
        if load_failed or time.monotonic() - started > _RETRY_S:
            lines = [ln for ln in re.sub(r"\x1b\[[0-9;]*m", "", str(err)).splitlines() if ln.strip()]
            what = "could not load its model" if load_failed else f"stayed gone for {_RETRY_S:g} s"
            raise ModelPoolError(
                f"model pool replica {self._names[i]!r} (model {self._spec.model!r}) {what}: "
                f"{lines[-1] if lines else err}"
            ) from err
        return min(0.05 * 2**attempt, 1.0)

    async def _achunk(self, items: list[Any], kwargs: dict[str, Any]) -> Any:
        started = time.monotonic()
        for attempt in itertools.count():
            i = self._acquire()
            handle = self._handle(i)
            try:
                return await handle.infer.remote(self._spec.method, items, kwargs)
            except _GONE as err:
                delay = self._gone(i, handle, err, attempt, started)
            finally:
                self._release(i)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable: itertools.count() does not end")

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
        started = time.monotonic()
        for attempt in itertools.count():
            pending = {}
            delay = 0.0
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
                except _GONE as err:
                    delay = max(delay, self._gone(i, handle, err, attempt, started))
                    todo.append(k)
                    continue
                if on_chunk is not None:
                    on_chunk(spans[k][1] - spans[k][0])
            if not todo:
                break
            time.sleep(delay)
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
        stop_actors_sync(handles, before="stop")
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
        num_cpus=spec.num_cpus, idle_s=spec.idle_s, cache_items=spec.cache_items,
    )  # fmt: skip


def shutdown_model_pools() -> None:
    """Stop every model pool replica of rayflow's namespace (``RAYFLOW_NAMESPACE``) and forget this process's pool
    clients; actors of other namespaces are left alone, whatever their names."""
    ensure_ray()
    handles = list(own_named_actors(ACTOR_PREFIX).values())
    stop_actors_sync(handles, before="stop")
    with ModelPool._cache_lock:
        ModelPool._cache.clear()
