"""ModelPool: the pure batching policy with a fixed clock, then real replica actors running a small real model."""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import Any

import pytest
import ray
from ray.exceptions import RayActorError

from rayflow.rag.batching import BatchQueue, Request, is_idle, pick_replica, plan_chunks
from rayflow.rag.model_pool import ModelPool, ModelPoolError, replica_name, shutdown_model_pools
from rayflow.rag.model_replica import ReplicaRetired

# The model classes below live in this test module, which Ray workers cannot import: ship them by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


class Tagger:
    """A tiny model: tags each item with the size of the batch it ran in and the replica instance that ran it."""

    def __init__(self) -> None:
        self.instance = uuid.uuid4().hex

    def run(self, items: list[Any], scale: int = 1) -> list[tuple[Any, int, str]]:
        if "boom" in items:
            raise ValueError("boom is not a valid item")
        return [(x * scale, len(items), self.instance) for x in items]

    def short(self, items: list[Any]) -> list[Any]:
        return items[:-1]


def load_tagger() -> Tagger:
    return Tagger()


def load_broken() -> Tagger:
    raise RuntimeError("weights missing: put them in /models/tagger")


def _pool(model: str, **kw: Any) -> ModelPool:
    return ModelPool.get_or_create(kind="test", model=model, loader=load_tagger, method="run", **kw)


# -- pure policy ------------------------------------------------------------------------------------------------


def _req(n: int, at: float, key: str = "k") -> Request:
    return Request(items=list(range(n)), key=("run", key), kwargs={}, arrived=at, future=None)


def test_batch_is_due_when_full_or_after_max_wait() -> None:
    queue = BatchQueue(max_batch=4, max_wait_s=0.5)
    assert queue.due_at() is None
    queue.push(_req(1, at=10.0))
    queue.push(_req(2, at=10.1))
    assert queue.due_at() == 10.5  # 3 of 4: waits for company until 0.5 s after the oldest arrived
    queue.push(_req(1, at=10.2))
    assert queue.due_at() == 10.0  # full: due at once
    assert [len(r.items) for r in queue.take()] == [1, 2, 1]
    assert queue.due_at() is None


def test_batch_keeps_keys_apart_and_stops_at_the_first_request_that_does_not_fit() -> None:
    queue = BatchQueue(max_batch=4, max_wait_s=1.0)
    queue.push(_req(3, at=0.0, key="a"))
    queue.push(_req(1, at=0.1, key="b"))
    queue.push(_req(2, at=0.2, key="a"))
    queue.push(_req(1, at=0.3, key="a"))
    assert queue.due_at() == 0.0  # the next "a" request cannot join: the batch cannot grow
    first = queue.take()
    assert [(r.key[1], len(r.items)) for r in first] == [("a", 3)]
    second = queue.take()
    assert [(r.key[1], len(r.items)) for r in second] == [("b", 1)]
    assert [(r.key[1], len(r.items)) for r in queue.take()] == [("a", 2), ("a", 1)]


def test_chunks_replicas_and_idleness() -> None:
    assert plan_chunks(0, 4) == []
    assert plan_chunks(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert pick_replica([0, 0, 0], turn=1) == 1
    assert pick_replica([2, 1, 1], turn=0) == 1
    assert pick_replica([2, 1, 1], turn=2) == 2
    assert is_idle(now=100.0, last_active=0.0, busy=False, idle_s=100.0)
    assert not is_idle(now=99.0, last_active=0.0, busy=False, idle_s=100.0)
    assert not is_idle(now=500.0, last_active=0.0, busy=True, idle_s=100.0)
    assert not is_idle(now=500.0, last_active=0.0, busy=False, idle_s=0.0)  # 0 disables
    assert replica_name("embed", "sentence-transformers/all-MiniLM-L6-v2", 0.5, 1) == (
        "rayflow.model.embed.sentence-transformers-all-minilm-l6-v2.0.5.1"
    )
    long_name = replica_name("embed", "/very/long/path/" + "x" * 80, 0.0, 0)
    assert len(long_name) < 80 and long_name.endswith(".0.0")


# -- real replicas ----------------------------------------------------------------------------------------------


def test_results_come_back_in_order_and_chunks_spread_over_replicas(rag_env: None) -> None:
    pool = _pool("spread", num_replicas=2, max_batch=4, max_wait_ms=1.0)
    results = pool.call(list(range(20)), scale=3)
    assert [r[0] for r in results] == [3 * i for i in range(20)]
    assert all(r[1] <= 4 for r in results)
    assert len({r[2] for r in results}) == 2  # both replicas worked
    again = asyncio.run(pool.acall(list(range(5))))
    assert [r[0] for r in again] == list(range(5))
    assert pool.call([]) == []
    pool.shutdown()
    assert not [n for n in ray.util.list_named_actors() if n.startswith("rayflow.model.test.spread")]


async def test_concurrent_callers_share_batches_per_kwargs(rag_env: None) -> None:
    # A huge max_wait: a batch runs only because it is full, so the sizes seen are exact.
    pool = _pool("batching", max_batch=4, max_wait_ms=60_000.0)
    calls = [pool.acall([i], scale=1 + i % 2) for i in range(8)]
    results = [r for chunk in await asyncio.gather(*calls) for r in chunk]
    assert [r[0] for r in results] == [i * (1 + i % 2) for i in range(8)]
    assert {r[1] for r in results} == {4}  # two batches of four, never mixing scale=1 with scale=2


async def test_a_bad_item_fails_only_its_own_caller(rag_env: None) -> None:
    pool = _pool("errors", max_batch=2, max_wait_ms=60_000.0)
    bad, good = await asyncio.gather(pool.acall(["boom"]), pool.acall(["ok"]), return_exceptions=True)
    assert isinstance(bad, ValueError) and "boom is not a valid item" in str(bad)
    assert isinstance(good, list) and good[0][0] == "ok"
    short = ModelPool.get_or_create(kind="test", model="errors", loader=load_tagger, method="short")
    with pytest.raises(ModelPoolError, match=r"Tagger.short .* returned 1 results for 2 items"):
        short.call(["a", "b"])


def test_a_model_that_cannot_load_gives_its_own_message(rag_env: None) -> None:
    pool = ModelPool.get_or_create(kind="test", model="broken", loader=load_broken, method="run")
    with pytest.raises(ModelPoolError, match=r"could not load its model: RuntimeError: weights missing"):
        pool.call([1])
    assert not [n for n in ray.util.list_named_actors() if "broken" in n]


@ray.remote
def _call_from_another_process(pool: ModelPool | None) -> str:
    if pool is None:  # rebuilt from scratch inside this worker, as a step body would
        pool = _pool("shared")
    return str(pool.call(["x"])[0][2])


def test_other_processes_reuse_the_running_replicas(rag_env: None) -> None:
    pool = _pool("shared")
    instance = pool.call(["x"])[0][2]
    assert ray.get(_call_from_another_process.remote(None)) == instance
    assert ray.get(_call_from_another_process.remote(pool)) == instance  # a pickled pool reconnects too


def test_fractional_gpu_replicas_get_gpus_and_cpu_replicas_none(rag_env: None) -> None:
    gpu_pool = _pool("placement", num_gpus=0.5, num_replicas=2)
    infos = gpu_pool.replica_info()
    assert [i["name"] for i in infos] == [replica_name("test", "placement", 0.5, i) for i in range(2)]
    for info in infos:
        assert info["resources"].get("GPU") == 0.5
        assert len(info["gpu_ids"]) == 1
    cpu_info = _pool("placement").replica_info()[0]
    assert cpu_info["gpu_ids"] == [] and "GPU" not in cpu_info["resources"]
    assert cpu_info["pid"] not in {i["pid"] for i in infos}


def test_an_idle_replica_exits_by_itself_and_the_pool_recovers(rag_env: None) -> None:
    pool = _pool("idle", idle_s=0.2)
    assert pool.call([1])[0][0] == 1
    handle = pool._handle(0)
    assert ray.get(handle.until_exit.remote()) == replica_name("test", "idle", 0.0, 0)
    # A request reaching the replica after it decided to exit is refused (or finds it dead): it never waits on an
    # actor that has stopped batching. (The timeout only turns a hang into a failure.)
    with pytest.raises((ReplicaRetired, RayActorError)):
        ray.get(handle.infer.remote("run", [1], {}), timeout=60)
    # The next call finds the replica gone (or going) and starts a fresh one.
    assert pool.call([2])[0][0] == 2


class Bystander:
    """Another application's actor on the same cluster."""

    def ping(self) -> str:
        return "alive"


def test_shutdown_model_pools_stops_every_replica_of_rayflows_namespace_only(ray_cluster: None) -> None:
    _pool("cleanup-a").call([1])
    _pool("cleanup-b", num_replicas=2).call([1, 2])
    assert len([n for n in ray.util.list_named_actors() if "cleanup" in n]) == 3
    # Same name as a replica above, in another namespace: not rayflow's to stop.
    same_name = replica_name("test", "cleanup-a", 0.0, 0)
    other = ray.remote(Bystander).options(name=same_name, namespace=f"elsewhere-{uuid.uuid4().hex[:8]}").remote()
    try:
        assert ray.get(other.ping.remote(), timeout=60) == "alive"
        shutdown_model_pools()
        assert not [n for n in ray.util.list_named_actors() if n.startswith("rayflow.model.")]
        assert ray.get(other.ping.remote(), timeout=60) == "alive"
    finally:
        ray.kill(other)
