"""CPU-bound steps over the machine's cores: a fan-out of ``--items`` events whose step computes ``--ms`` ms of pure
Python each (``num_workers=--workers``), against the same work done serially in one process, LlamaIndex Workflows
(one process, one event loop) and raw Ray (the same calls spread over as many actors).

    python benchmarks/cpu_scaling.py                    # 80 x 20 ms, num_workers=8
    python benchmarks/cpu_scaling.py --items 320 --workers 16

The speedup is serial time over wall time; the issue's bar is 0.85 x cores. The work burns CPU time of its own thread
(``time.thread_time``), so a loaded machine shows as a lower speedup, not as more work.
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

from fanout import _log, close_workflow, connect_ray, expected_list, llama_api


def burn(ms: float) -> int:
    """About ``ms`` milliseconds of CPU time of this thread, in pure Python."""
    until = time.thread_time() + ms / 1000
    spins = 0
    while time.thread_time() < until:
        spins += 1
    return spins


def build(api: ModuleType, workers: int, ms: float) -> type:
    Event, StartEvent, StopEvent, Context = api.Event, api.StartEvent, api.StopEvent, api.Context

    class Item(Event):
        i: int

    class Done(Event):
        i: int

    class CpuFanOut(api.Workflow):
        @api.step
        async def fan_out(self, ctx: Context, ev: StartEvent) -> Item | None:
            for i in range(int(ev.get("n"))):
                ctx.send_event(Item(i=i))
            return None

        @api.step(num_workers=workers)
        async def work(self, ev: Item) -> Done:
            burn(ms)
            return Done(i=ev.i)

        @api.step(num_workers=1)
        async def fan_in(self, ctx: Context, ev: Done) -> StopEvent | None:
            done = ctx.collect_events(ev, expected_list(Done, N_ITEMS[0]))
            return None if done is None else StopEvent(result=len(done))

    return CpuFanOut


#: The fan-in's expected count (one size per process run; module-level so every actor reads the same value).
N_ITEMS = [80]


async def bench(api: ModuleType, label: str, items: int, workers: int, ms: float, rounds: int) -> tuple[float, float]:
    wf = build(api, workers, ms)(timeout=None)
    try:
        t0 = time.perf_counter()
        assert await wf.run(n=items) == items
        first = time.perf_counter() - t0
        warm = float("inf")
        for _ in range(rounds):
            t0 = time.perf_counter()
            assert await wf.run(n=items) == items
            warm = min(warm, time.perf_counter() - t0)
    finally:
        await close_workflow(wf)
    _log(f"[{label}] first run {first:.2f} s, warm best of {rounds} {warm:.2f} s")
    return first, warm


def bench_raw_ray(items: int, workers: int, ms: float, rounds: int) -> float:
    import ray

    @ray.remote(num_cpus=0)
    class Burner:
        def work(self, i: int) -> int:
            burn(ms)
            return i

    pool = [Burner.remote() for _ in range(workers)]  # type: ignore[attr-defined]
    try:
        ray.get([actor.work.remote(0) for actor in pool])
        best = float("inf")
        for _ in range(rounds):
            t0 = time.perf_counter()
            ray.get([pool[i % workers].work.remote(i) for i in range(items)])
            best = min(best, time.perf_counter() - t0)
    finally:
        for actor in pool:
            ray.kill(actor)
    _log(f"[raw Ray] best of {rounds}: {best:.2f} s")
    return best


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=80)
    parser.add_argument("--ms", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    N_ITEMS[0] = args.items
    cores = os.cpu_count() or 1
    print(
        f"{args.items} x {args.ms} ms of CPU, num_workers={args.workers}; Python {platform.python_version()}, {cores}"
        f" cores, load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    t0 = time.perf_counter()
    for _ in range(args.items):
        burn(args.ms)
    serial = time.perf_counter() - t0
    connect_ray()
    import rayflow

    rf_first, rf_warm = await bench(rayflow, "rayflow", args.items, args.workers, args.ms, args.rounds)
    _, li_warm = await bench(llama_api(), "LlamaIndex", args.items, args.workers, args.ms, 1)
    raw = bench_raw_ray(args.items, args.workers, args.ms, args.rounds)
    print("| | wall s | speedup over serial |")
    print("|---|---:|---:|")
    for label, wall in (
        ("serial, one process", serial),
        ("LlamaIndex Workflows", li_warm),
        ("raw Ray", raw),
        ("rayflow, first run of an instance", rf_first),
        ("rayflow, warm", rf_warm),
    ):
        print(f"| {label} | {wall:.2f} | {serial / wall:.2f}x |")
    print(f"\nbar: 0.85 x {cores} cores = {0.85 * cores:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
