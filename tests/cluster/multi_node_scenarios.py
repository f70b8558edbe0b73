"""Multi-node scenarios, one per process: each builds a Ray cluster of several nodes on this machine
(``ray.cluster_utils.Cluster``: a raylet per node, each with its own resources), runs a workflow on it, prints one
JSON line of what ran where, and shuts the cluster down.

They run apart from the test session's Ray (a process can join one Ray only); ``test_multi_node.py`` starts them
and asserts on their JSON. By hand: ``python tests/cluster/multi_node_scenarios.py spread`` (or ``gpus``,
``node_loss``), from the repository root.

Where an actor ran: a step returns ``ray.get_runtime_context().get_node_id()`` and its actor's name in its event;
a model pool's replicas tell theirs (``ModelPool.replica_info``).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import ray
from ray.cluster_utils import Cluster

import rayflow
from rayflow import Context, Event, StartEvent, StopEvent, Workflow, step

# No parked or spare actor sets: each would be a few more processes on every node (the nodes inherit this setting).
os.environ.setdefault("RAYFLOW_PARK_SETS", "0")

#: Each node's object store: small, so that three nodes fit beside the rest of the machine.
STORE_BYTES = 80 * 1024 * 1024
#: How the head learns a node is gone: a health check a second, three missed in a row (sooner than Ray's defaults).
HEAD_CONFIG = {"health_check_period_ms": 1000, "health_check_failure_threshold": 3, "health_check_timeout_ms": 1000}


def _where() -> dict[str, str]:
    context = ray.get_runtime_context()
    return {"node": context.get_node_id(), "actor": context.get_actor_name() or ""}


class Work(Event):
    i: int


class Done(Event):
    i: int
    node: str
    actor: str
    gpus: list[int]


class Fan(Workflow):
    """``n`` events fanned out to a pool of ``work`` actors, collected back in one list."""

    pause_s = 0.3

    @step
    async def start(self, ctx: Context, ev: StartEvent) -> Work | None:
        await ctx.store.set("n", ev.n)
        for i in range(ev.n):
            ctx.send_event(Work(i=i))
        return None

    @step(num_workers=3)
    async def work(self, ctx: Context, ev: Work) -> Done:
        await asyncio.sleep(self.pause_s)  # reads ``self``: only this step's own actors run it
        done = Done(i=ev.i, gpus=[int(g) for g in ray.get_gpu_ids()], **_where())
        ctx.write_event_to_stream(done)
        return done

    @step
    async def gather(self, ctx: Context, ev: Done) -> StopEvent | None:
        done = ctx.collect_events(ev, [Done] * await ctx.store.get("n"))
        if done is None:
            return None
        return StopEvent(result=[d.model_dump() for d in done])


class GpuFan(Fan):
    """``Fan`` whose ``work`` actors reserve half a GPU each."""

    @step(num_workers=2, warm=2, num_gpus=0.5)
    async def work(self, ctx: Context, ev: Work) -> Done:
        await asyncio.sleep(self.pause_s)
        return Done(i=ev.i, gpus=[int(g) for g in ray.get_gpu_ids()], **_where())


class Lengths:
    """A stand-in embedding model: a text's "vector" is its length."""

    def embed(self, items: list[str]) -> list[list[float]]:
        return [[float(len(x))] for x in items]


def load_lengths() -> Lengths:
    return Lengths()


def _cluster(workers: list[dict[str, Any]], head_cpus: int) -> Cluster:
    """A head with ``head_cpus`` CPUs and no GPU, and a node per entry of ``workers`` (``add_node`` arguments)."""
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": head_cpus,
            "num_gpus": 0,
            "object_store_memory": STORE_BYTES,
            "include_dashboard": False,
            "_system_config": HEAD_CONFIG,
        },
    )
    for args in workers:
        cluster.add_node(object_store_memory=STORE_BYTES, **{"num_cpus": 1, **args})
    cluster.wait_for_nodes()
    rayflow.init(address=cluster.address)
    return cluster


def _actor_nodes() -> dict[str, str]:
    """Every live rayflow actor's node, by actor name (from the GCS's actor table: no dashboard needed)."""
    table = ray._private.state.actors().values()
    return {
        a["Name"]: a["Address"]["NodeID"] for a in table if a["State"] == "ALIVE" and a["Name"].startswith("rayflow")
    }


def _placements(done: list[dict[str, Any]]) -> dict[str, str]:
    return {d["actor"]: d["node"] for d in done}


async def spread() -> dict[str, Any]:
    """A pool that grows to three actors while twelve events wait: on which nodes its actors run.

    Run with ``RAYFLOW_STEP_NUM_CPUS=1`` (as on a cluster) on nodes of 16 CPUs each (logical ones: none need exist)
    that every actor fits on: Ray's own placement would pack the actors on the dispatcher's node until half its
    CPUs are taken; rayflow's spread (``RAYFLOW_STEP_SCHEDULING``) puts each new one on the next node."""
    async with Fan(timeout=240) as wf:
        done = await wf.run(n=12)
        actors = _actor_nodes()
    return {
        "head": ray.get_runtime_context().get_node_id(),
        "results": sorted(d["i"] for d in done),
        "ran": _placements(done),
        "work": {name: node for name, node in actors.items() if ".work." in name},
        "actors": actors,
    }


async def gpus() -> dict[str, Any]:
    """A step with ``num_gpus`` and a model pool with ``num_gpus`` on a cluster where one node of three has GPUs."""
    from rayflow.rag.model_pool import ModelPool, shutdown_model_pools

    gpu_node = next(n["NodeID"] for n in ray.nodes() if n["Resources"].get("GPU"))
    async with GpuFan(timeout=240) as wf:
        done = await wf.run(n=6)
    pool = ModelPool.get_or_create(
        kind="embed", model="lengths", loader=load_lengths, method="embed", num_gpus=0.5, num_replicas=2
    )
    vectors = await pool.acall(["a", "bb", "ccc"])
    replicas = pool.replica_info()
    shutdown_model_pools()
    return {
        "gpu_node": gpu_node,
        "results": sorted(d["i"] for d in done),
        "work": _placements(done),
        "work_gpus": sorted({g for d in done for g in d["gpus"]}),
        "vectors": vectors,
        "replicas": {r["name"]: r["node_id"] for r in replicas},
        "replica_gpus": sorted({int(g) for r in replicas for g in r["gpu_ids"]}),
    }


async def node_loss(cluster: Cluster) -> dict[str, Any]:
    """Forty events over a pool of three spread actors; once the first results are in, a worker node that runs some
    of them is removed. Every result must still arrive, once."""
    head = cluster.head_node.node_id
    workers = {node.node_id: node for node in cluster.worker_nodes}
    seen: list[dict[str, Any]] = []
    removed, before = "", {}
    async with Fan(timeout=240) as wf:
        handler = wf.run(n=40)
        async for ev in handler.stream_events():
            if not isinstance(ev, Done):
                continue
            seen.append(ev.model_dump())
            if removed or len(seen) < 6:
                continue
            # Remove a worker node that ran ``work`` actors. The dispatcher and context actors are on the driver's
            # node, the head (``rayflow.runtime.placement``); every step actor of the removed node goes (``gather``
            # too at times, with the run's collect buffers) and is replaced.
            busy = {d["node"] for d in seen} - {head}
            if busy:
                removed = next(iter(busy))
                before = _actor_nodes()
                cluster.remove_node(workers[removed], allow_graceful=False)
        done = await handler
    alive = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])
    return {
        "head": head,
        "removed": removed,
        "alive": alive,
        "results": [d["i"] for d in done],
        "streamed": len(seen),
        "before": before,
        "work_nodes": sorted({d["node"] for d in seen}),
    }


#: Each scenario: its worker nodes (``Cluster.add_node`` arguments), the head's CPUs, its CPUs per step actor
#: (``RAYFLOW_STEP_NUM_CPUS``), and what it runs.
SCENARIOS: dict[str, tuple[list[dict[str, Any]], int, str, Callable[..., Any]]] = {
    "spread": ([{"num_cpus": 16}, {"num_cpus": 16}], 16, "1", spread),
    "gpus": ([{"num_gpus": 0}, {"num_gpus": 1}], 1, "0", gpus),
    # A head of 2 CPUs holds at most 2 of the 5 step actors (start, gather, 3 of work): some work runs on a worker
    # node. The 5 CPUs left when a worker node goes hold the 5 again.
    "node_loss": ([{"num_cpus": 3}, {"num_cpus": 3}], 2, "1", node_loss),
}


def main(name: str) -> None:
    workers, head_cpus, step_cpus, scenario = SCENARIOS[name]
    os.environ.setdefault("RAYFLOW_STEP_NUM_CPUS", step_cpus)  # before the nodes start: their workers inherit it
    began = time.monotonic()
    cluster = _cluster(workers, head_cpus)
    started = time.monotonic()
    try:
        result = asyncio.run(scenario(cluster) if name == "node_loss" else scenario())
    finally:
        ray.shutdown()
        cluster.shutdown()
    result["nodes_s"] = round(started - began, 1)
    result["run_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
