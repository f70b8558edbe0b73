"""``rayflow bench``: fan-out/fan-in and sequential-chain throughput of rayflow, LlamaIndex Workflows and raw Ray.

The same workflows are built from each engine's API module (``rayflow`` and LlamaIndex's ``workflows``) by one
function, so both engines run identical code:

* fan-out: a start step ``ctx.send_event``s N ``WorkEvent``s, a ``@step(num_workers=W)`` worker turns each
  into a ``ResultEvent``, a collector ``ctx.collect_events(ev, [ResultEvent] * N)`` and stops with the count;
* chain, two ways: a self-loop (one step sends a ``HopEvent`` back to itself) and a ping-pong (two steps send
  ``HopEvent`` and ``PongEvent`` to each other), each until it has made the requested number of hops.

The raw-Ray baseline moves N small objects through a pool of W actors in batches of 100, and makes a chain of
sequential actor calls. LlamaIndex's fan-in is quadratic, so it runs only sizes up to a bound. Each engine is
warmed up first (rayflow starts its actors), then each size is timed and the best of ``repeat`` runs kept.
``benchmarks/fanout.py`` (the project's benchmark script, with more options) builds on this module.
"""

from __future__ import annotations

import functools
import gc
import importlib.util
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from rayflow.commands.bench_workflows import build_workflows

__all__ = [
    "ENGINES",
    "Result",
    "bench_raw_ray",
    "bench_workflows",
    "close_workflow",
    "fmt",
    "llama_api",
    "llama_available",
    "log",
    "ratio",
    "rayflow_api",
    "render",
    "run_bench",
    "timed",
]

RAW_BATCH = 100
#: The engines, by the names ``--engines`` takes: rayflow, LlamaIndex Workflows, raw Ray.
ENGINES = ("rayflow", "llama", "ray")

# ------------------------------------------------------------------------------------------------ measuring


@dataclass
class Result:
    """Events per second by size, and milliseconds per chain hop by chain kind, for one engine."""

    events_per_s: dict[int, float] = field(default_factory=dict)
    chain_ms_per_hop: dict[str, float] = field(default_factory=dict)


def log(msg: str) -> None:
    """A line of progress, on stderr (the table goes to stdout)."""
    print(msg, file=sys.stderr, flush=True)


async def timed(run: Callable[[], Any], expected: int, repeat: int) -> float:
    """Best wall time of ``repeat`` runs of the awaitable factory ``run``; each must return ``expected``."""
    best = math.inf
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        got = await run()
        elapsed = time.perf_counter() - t0
        if got != expected:
            raise RuntimeError(f"run returned {got!r}, expected {expected!r}")
        best = min(best, elapsed)
    return best


async def bench_workflows(
    api: ModuleType, label: str, sizes: Sequence[int], workers: int, hops: int, repeat: int, warm_up: int = 1000
) -> Result:
    """Time the fan-out at each size and the chain, after a warm-up run of each (rayflow makes its actors): a fan-out
    of ``warm_up`` events at most (the smallest size if smaller) and chains of 50 hops."""
    fanout_cls, chain_classes = build_workflows(api, workers)
    fanout = fanout_cls(timeout=None)
    chains = {kind: cls(timeout=None) for kind, cls in chain_classes.items()} if hops else {}
    result = Result()
    try:
        warm = min(warm_up, *sizes) if sizes else warm_up
        log(f"[{label}] warm-up: fan-out of {warm}, chains of 50")
        await timed(lambda: fanout.run(n=warm), warm, 1)
        for chain in chains.values():
            await timed(functools.partial(chain.run, hops=50), 50, 1)
        for n in sizes:
            seconds = await timed(functools.partial(fanout.run, n=n), n, repeat)
            result.events_per_s[n] = n / seconds
            log(f"[{label}] fan-out {n:>7,}: {seconds:8.2f} s  {n / seconds:10,.0f} events/s")
        for kind, chain in chains.items() if hops else ():
            seconds = await timed(functools.partial(chain.run, hops=hops), hops, repeat)
            result.chain_ms_per_hop[kind] = seconds / hops * 1e3
            log(f"[{label}] {kind} chain, {hops:,} hops: {seconds:.2f} s  {seconds / hops * 1e3:.3f} ms/hop")
    finally:
        for wf in (fanout, *chains.values()):
            await close_workflow(wf)
    return result


def bench_raw_ray(sizes: Sequence[int], workers: int, hops: int, repeat: int) -> Result:
    """N small objects through a pool of ``workers`` actors in batches of 100; a chain of sequential calls."""
    import ray

    @ray.remote(num_cpus=0)
    class Worker:
        def work(self, batch: list[dict[str, int]]) -> list[dict[str, int]]:
            return [{"i": item["i"] * 2, "n": item["n"]} for item in batch]

        def hop(self, count: int) -> int:
            return count + 1

    pool = [Worker.remote() for _ in range(workers)]  # type: ignore[attr-defined]

    def fan_out(n: int) -> int:
        batches = [[{"i": i, "n": n} for i in range(lo, min(lo + RAW_BATCH, n))] for lo in range(0, n, RAW_BATCH)]
        refs = [pool[k % workers].work.remote(batch) for k, batch in enumerate(batches)]
        return sum(len(out) for out in ray.get(refs))

    def chain_run(total: int) -> int:
        count = 0
        while count < total:
            count = ray.get(pool[count % 2 % workers].hop.remote(count))
        return count

    def best_of(fn: Callable[[], int], expected: int) -> float:
        best = math.inf
        for _ in range(repeat):
            t0 = time.perf_counter()
            got = fn()
            best = min(best, time.perf_counter() - t0)
            if got != expected:
                raise RuntimeError(f"raw Ray returned {got}, expected {expected}")
        return best

    result = Result()
    try:
        log("[raw Ray] warm-up")
        fan_out(workers * RAW_BATCH)
        chain_run(50)
        for n in sizes:
            seconds = best_of(functools.partial(fan_out, n), n)
            result.events_per_s[n] = n / seconds
            log(f"[raw Ray] fan-out {n:>7,}: {seconds:8.2f} s  {n / seconds:10,.0f} events/s")
        if hops:
            seconds = best_of(functools.partial(chain_run, hops), hops)
            result.chain_ms_per_hop["ping-pong"] = seconds / hops * 1e3
            log(f"[raw Ray] ping-pong chain, {hops:,} hops: {seconds:.2f} s  {seconds / hops * 1e3:.3f} ms/hop")
    finally:
        for actor in pool:
            ray.kill(actor)
    return result


# --------------------------------------------------------------------------------------------------- report


def fmt(value: float | None, spec: str = ",.0f") -> str:
    """A number for the table, ``n/a`` when it was not measured."""
    return "n/a" if value is None else format(value, spec)


def ratio(a: float | None, b: float | None) -> str:
    """``a / b`` as ``1.23x``, ``n/a`` when either was not measured."""
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:,.2f}x"


def render(results: dict[str, Result], sizes: Sequence[int], hops: int) -> str:
    """A markdown table of the results, then the two headline ratios."""
    rf, li, rr = (results.get(k, Result()) for k in ENGINES)
    lines = [
        "| size | rayflow events/s | LlamaIndex events/s | raw Ray events/s "
        "| rayflow / LlamaIndex | rayflow / raw Ray |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for n in sizes:
        a, b, c = rf.events_per_s.get(n), li.events_per_s.get(n), rr.events_per_s.get(n)
        lines.append(f"| {n:,} | {fmt(a)} | {fmt(b)} | {fmt(c)} | {ratio(a, b)} | {ratio(a, c)} |")
    if hops:
        lines += [
            "",
            "| chain of sequential hops | rayflow ms/hop | LlamaIndex ms/hop | raw Ray ms/hop |",
            "|---|---:|---:|---:|",
        ]
        for kind in ("self-loop", "ping-pong"):
            cells = " | ".join(fmt(r.chain_ms_per_hop.get(kind), ".3f") for r in (rf, li, rr))
            lines.append(f"| {kind}, {hops:,} hops | {cells} |")
    lines.append("")
    if 5000 in li.events_per_s:
        lines.append(
            f"- 5,000 events: rayflow / LlamaIndex ="
            f" {ratio(rf.events_per_s.get(5000), li.events_per_s.get(5000))} (target >= 50x)"
        )
    if 5000 in sizes and 100_000 in sizes:
        lines.append(
            f"- 100,000 events: rayflow runs at"
            f" {ratio(rf.events_per_s.get(100_000), rf.events_per_s.get(5000))} of its events/s at 5,000"
            " (target >= 0.80x)"
        )
    return "\n".join(lines)


def rayflow_api() -> ModuleType:
    """rayflow's names the workflow builders take, from its public modules (the package itself sits above the
    commands: it re-exports what they use)."""
    from rayflow.context import Context
    from rayflow.decorators import step
    from rayflow.events import Event, StartEvent, StopEvent
    from rayflow.workflow import Workflow

    api = ModuleType("rayflow_api")
    api.__dict__.update(
        Workflow=Workflow, step=step, Context=Context, Event=Event, StartEvent=StartEvent, StopEvent=StopEvent
    )
    return api


def llama_api() -> ModuleType:
    """LlamaIndex Workflows' names in one namespace, as the benchmarks' workflow builders take them (``workflows``
    splits what ``llama_index.core.workflow`` re-exports)."""
    import workflows
    from workflows import events as wf_events

    api = ModuleType("llama_api")
    api.__dict__.update(
        Workflow=workflows.Workflow,
        step=workflows.step,
        Context=workflows.Context,
        Event=wf_events.Event,
        StartEvent=wf_events.StartEvent,
        StopEvent=wf_events.StopEvent,
    )
    return api


async def close_workflow(wf: object) -> None:
    """Release a rayflow workflow's actors; LlamaIndex workflows hold no resources and have no ``close()``."""
    close = getattr(wf, "close", None)
    if close is not None:
        await close()


def llama_available() -> bool:
    """Whether LlamaIndex Workflows (the ``workflows`` package) can be imported here."""
    return importlib.util.find_spec("workflows") is not None


async def run_bench(
    engines: Sequence[str],
    sizes: Sequence[int],
    workers: int,
    hops: int,
    repeat: int,
    llama_max: int,
    llama_warm_up: int = 1000,
) -> dict[str, Result]:
    """Measure each of ``engines`` in turn (Ray already connected): rayflow, raw Ray, then LlamaIndex up to
    ``llama_max`` events, warmed up with a fan-out of ``llama_warm_up`` (it starts no actors: a small one will do)."""
    results: dict[str, Result] = {}
    if "rayflow" in engines:
        results["rayflow"] = await bench_workflows(rayflow_api(), "rayflow", sizes, workers, hops, repeat)
    if "ray" in engines:
        results["ray"] = bench_raw_ray(sizes, workers, hops, repeat)
    if "llama" in engines:
        llama_sizes = [n for n in sizes if n <= llama_max]
        results["llama"] = await bench_workflows(
            llama_api(), "LlamaIndex", llama_sizes, workers, hops, repeat, llama_warm_up
        )
    return results
