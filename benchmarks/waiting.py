"""Steps that wait on I/O: many concurrent runs of a workflow whose step awaits a slow call (an LLM, in effect).

One workflow instance, one async step (default ``num_workers``) that awaits ``--wait`` seconds; ``--runs`` runs
started at once with ``asyncio.gather``. Timed on a fresh instance (its first batch of runs, pools not grown) and
again on the same instance (warm), for rayflow and LlamaIndex Workflows, with the same code; raw Ray runs the same
number of concurrent calls on one async actor as the floor.

    python benchmarks/waiting.py                       # 32 runs of a 1 s step
    python benchmarks/waiting.py --runs 128 --wait 0.5
"""

# No `from __future__ import annotations`: see fanout.py (the engines resolve step annotations at definition).

import argparse
import asyncio
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout import _fmt, _log, _ratio, close_workflow, connect_ray, llama_api


def build(api: ModuleType, wait_s: float) -> type:
    StartEvent, StopEvent = api.StartEvent, api.StopEvent

    class SlowCall(api.Workflow):
        @api.step
        async def call(self, ev: StartEvent) -> StopEvent:
            await asyncio.sleep(wait_s)  # an LLM or HTTP call
            return StopEvent(result=ev.get("i"))

    return SlowCall


async def _batch(wf: object, runs: int) -> float:
    t0 = time.perf_counter()
    got = await asyncio.gather(*(wf.run(i=i) for i in range(runs)))  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - t0
    if sorted(got) != list(range(runs)):
        raise RuntimeError(f"runs returned {got!r}")
    return elapsed


async def bench(api: ModuleType, label: str, runs: int, wait_s: float) -> tuple[float, float]:
    wf = build(api, wait_s)(timeout=None)
    try:
        fresh = await _batch(wf, runs)
        warm = await _batch(wf, runs)
    finally:
        await close_workflow(wf)
    _log(f"[{label}] {runs} runs of a {wait_s} s step: fresh instance {fresh:.2f} s, warm {warm:.2f} s")
    return fresh, warm


def bench_raw_ray(runs: int, wait_s: float) -> float:
    import ray

    @ray.remote(num_cpus=0)
    class Caller:
        async def call(self, i: int) -> int:
            await asyncio.sleep(wait_s)
            return i

    actor = Caller.remote()  # type: ignore[attr-defined]
    try:
        ray.get(actor.call.remote(0))
        t0 = time.perf_counter()
        ray.get([actor.call.remote(i) for i in range(runs)])
        elapsed = time.perf_counter() - t0
    finally:
        ray.kill(actor)
    _log(f"[raw Ray] {runs} concurrent calls on one async actor: {elapsed:.2f} s")
    return elapsed


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=32)
    parser.add_argument("--wait", type=float, default=1.0, help="seconds the step awaits")
    args = parser.parse_args(argv)
    print(
        f"{args.runs} concurrent runs of a {args.wait} s async step; Python {platform.python_version()},"
        f" {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    connect_ray()
    import rayflow

    rf_fresh, rf_warm = await bench(rayflow, "rayflow", args.runs, args.wait)
    li_fresh, li_warm = await bench(llama_api(), "LlamaIndex", args.runs, args.wait)
    raw = bench_raw_ray(args.runs, args.wait)
    print("| instance | rayflow s | LlamaIndex s | raw Ray s | rayflow / LlamaIndex (time) |")
    print("|---|---:|---:|---:|---:|")
    for label, rf, li in (("fresh", rf_fresh, li_fresh), ("warm", rf_warm, li_warm)):
        print(f"| {label} | {_fmt(rf, '.2f')} | {_fmt(li, '.2f')} | {_fmt(raw, '.2f')} | {_ratio(rf, li)} |")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
