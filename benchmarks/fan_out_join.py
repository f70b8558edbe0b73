"""The fan-out/join API of LlamaIndex 2.22+ (a step returns ``list[Part]``, a ``list[Done]`` parameter joins):
rayflow vs LlamaIndex Workflows, the same workflow code on both, and the cost of the join per event as N grows.

    split -> list[Part] (N events) -> work (num_workers=W, sleeps --work-ms) -> Done -> join(list[Done]) -> StopEvent

Each size runs on a fresh instance (its first run, pools not grown: what a user's one-off run feels) and then
again on the same instance (warm). The join's cost per event is O(1) in both engines' designs; the table shows
events/s per size, so a cost growing with N would show as falling rates.

    python benchmarks/fan_out_join.py                         # sizes 1000,10000, 4 workers, LlamaIndex to 2000
    python benchmarks/fan_out_join.py --sizes 1000,10000,50000 --work-ms 0
"""

# No `from __future__ import annotations`: the workflow classes are built in a function, and the engines resolve
# step annotations where they are defined.

import argparse
import asyncio
import importlib
import logging
import os
import time
from types import ModuleType
from typing import Any

from rayflow.commands.bench import close_workflow, llama_api


def build(api: ModuleType, workers: int) -> type:
    """The fan-out/join workflow, written against one engine's modules."""

    class Part(api.Event):
        i: int

    class Done(api.Event):
        i: int

    class FanJoin(api.Workflow):
        @api.step
        async def split(self, ev: api.StartEvent) -> list[Part]:
            return [Part(i=i) for i in range(ev.n)]

        @api.step(num_workers=workers)
        async def work(self, ev: Part) -> Done:
            if WORK_S:
                await asyncio.sleep(WORK_S)
            return Done(i=ev.i)

        @api.step
        async def join(self, done: list[Done]) -> api.StopEvent:
            return api.StopEvent(result=len(done))

    return FanJoin


WORK_S = 0.0


async def _one(workflow: Any, n: int) -> float:
    began = time.perf_counter()
    assert await workflow.run(n=n) == n
    return time.perf_counter() - began


async def measure(engine: str, sizes: list[int], workers: int, limit: int) -> dict[int, tuple[float, float]]:
    """(fresh seconds, warm seconds) per size on ``engine``."""
    api = importlib.import_module("rayflow") if engine == "rayflow" else llama_api()
    cls = build(api, workers)
    times = {}
    for n in sizes:
        if n > limit:
            continue
        workflow = cls(timeout=3600)
        fresh = await _one(workflow, n)
        warm = await _one(workflow, n)
        await close_workflow(workflow)
        times[n] = (fresh, warm)
        print(f"  {engine:9} n={n:>7,}: fresh {fresh:7.3f} s  warm {warm:7.3f} s", flush=True)
    return times


def render(results: dict[str, dict[int, tuple[float, float]]], sizes: list[int]) -> str:
    rows = [
        "| N | rayflow fresh ev/s | rayflow warm ev/s | LlamaIndex ev/s (best) | rayflow warm / LlamaIndex |",
        "|---|---:|---:|---:|---:|",
    ]
    for n in sizes:
        if n not in results.get("rayflow", {}):
            continue
        fresh, warm = results["rayflow"][n]
        llama = results.get("llama", {}).get(n)
        best_llama = None if llama is None else min(llama)
        rows.append(
            f"| {n:,} | {n / fresh:,.0f} | {n / warm:,.0f} | "
            f"{'-' if best_llama is None else f'{n / best_llama:,.0f}'} | "
            f"{'-' if best_llama is None else f'{best_llama / warm:.2f}x'} |"
        )
    return "\n".join(rows)


async def main() -> None:
    global WORK_S
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--work-ms", type=float, default=0.0, help="each worker invocation awaits this long")
    parser.add_argument("--engines", default="rayflow,llama")
    parser.add_argument("--llama-max", type=int, default=2000, help="largest N LlamaIndex runs (it slows down fast)")
    args = parser.parse_args()
    WORK_S = args.work_ms / 1000
    sizes = [int(s) for s in args.sizes.split(",")]
    logging.getLogger("workflows").setLevel(logging.ERROR)
    import rayflow

    rayflow.init(address=os.environ.get("RAY_ADDRESS") or "local", include_dashboard=False)
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    results = {
        engine: await measure(engine, sizes, args.workers, args.llama_max if engine == "llama" else max(sizes))
        for engine in args.engines.split(",")
    }
    print(render(results, sizes))


if __name__ == "__main__":
    asyncio.run(main())
