"""Fan-out/fan-in and sequential-chain throughput: rayflow vs LlamaIndex Workflows vs raw Ray, in one run.

The same two workflows are built from each API module (``rayflow`` and LlamaIndex's ``workflows``) by one
function, so both engines run identical code:

* fan-out: a start step ``ctx.send_event``s N ``WorkEvent``s, a ``@step(num_workers=W)`` worker turns each
  into a ``ResultEvent``, a collector ``ctx.collect_events(ev, [ResultEvent] * N)`` and stops with the count;
* chain, two ways: a self-loop (one step sends a ``HopEvent`` back to itself) and a ping-pong (two steps send
  ``HopEvent`` and ``PongEvent`` to each other), each until it has made the requested number of hops. rayflow
  runs a self-loop inside the step's actor (``RAYFLOW_LOCAL_HOPS``), and a ping-pong there too once both steps
  are measured as fast (each call borrows the other step's slot).

The raw-Ray baseline moves N small objects through a pool of W actors in batches of 100, and makes a chain of
sequential actor calls. LlamaIndex's fan-in is quadratic, so it only runs sizes up to ``--llama-max``.

    python benchmarks/fanout.py                      # sizes 1000,5000,10000,100000, 4 workers, 2000 hops
    python benchmarks/fanout.py --quick              # a smoke run in well under a minute
    python benchmarks/fanout.py --engines rayflow --journal --chain 0   # rayflow's fan-out with and without a journal

``--journal`` also times rayflow's fan-out with a journal (``Workflow(journal=...)`` in a temporary local directory:
a checkpoint at the start of each run and every ``--journal-interval`` seconds, the final record at its end),
alternating with the same workflow without one at each size, and prints the ratio.
"""

# No `from __future__ import annotations` here on purpose: the workflow classes are built inside a function,
# and the engines resolve step annotations from the module globals, where the local event classes do not
# exist. Evaluating the annotations when the steps are defined hands the engines real classes, not strings.

import argparse
import asyncio
import gc
import logging
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

RAW_BATCH = 100
ENGINES = ("rayflow", "llama", "ray")


# ------------------------------------------------------------------------------------- workflow definitions


_EXPECTED: dict[tuple[type, int], list[type]] = {}


def expected_list(event_type: type, n: int) -> list[type]:
    """``[event_type] * n``, built once per size (per process: each rayflow actor has its own cache).

    The fan-in step runs once per event; building the n-long list in each call would add O(n) of the
    benchmark's own work per event, an O(n^2) term that measures neither engine. (A plain dict, not
    ``functools.lru_cache``: cloudpickle cannot ship an lru_cache-wrapped function of ``__main__``.)
    """
    found = _EXPECTED.get((event_type, n))
    if found is None:
        found = _EXPECTED[(event_type, n)] = [event_type] * n
    return found


def build_workflows(
    api: ModuleType, workers: int, work_options: dict[str, Any] | None = None
) -> tuple[type, dict[str, type]]:
    """The fan-out workflow class and the chain ones by kind, written once against ``api`` (rayflow or LlamaIndex).

    ``api`` must expose ``Workflow``, ``step``, ``Context``, ``Event``, ``StartEvent`` and ``StopEvent`` the
    way ``llama_index.core.workflow`` does. N rides on every event so that one instance serves every size.
    ``work_options``: more ``@step`` options of the fan-out's worker step (an engine's own, such as rayflow's ``warm``).
    """
    Event, StartEvent, StopEvent, Context = api.Event, api.StartEvent, api.StopEvent, api.Context

    class WorkEvent(Event):
        i: int
        n: int

    class ResultEvent(Event):
        i: int
        n: int

    class HopEvent(Event):
        count: int
        total: int

    class PongEvent(Event):
        count: int
        total: int

    class FanOutWorkflow(api.Workflow):
        @api.step
        async def fan_out(self, ctx: Context, ev: StartEvent) -> WorkEvent | None:
            n = int(ev.get("n"))
            for i in range(n):
                ctx.send_event(WorkEvent(i=i, n=n))
            return None

        @api.step(num_workers=workers, **(work_options or {}))
        async def work(self, ev: WorkEvent) -> ResultEvent:
            return ResultEvent(i=ev.i * 2, n=ev.n)

        @api.step
        async def fan_in(self, ctx: Context, ev: ResultEvent) -> StopEvent | None:
            results = ctx.collect_events(ev, expected_list(ResultEvent, ev.n))
            if results is None:
                return None
            return StopEvent(result=len(results))

    class SelfLoopWorkflow(api.Workflow):
        @api.step
        async def begin(self, ev: StartEvent) -> HopEvent:
            return HopEvent(count=0, total=int(ev.get("hops")))

        @api.step
        async def hop(self, ev: HopEvent) -> HopEvent | StopEvent:
            if ev.count + 1 >= ev.total:
                return StopEvent(result=ev.count + 1)
            return HopEvent(count=ev.count + 1, total=ev.total)

    class PingPongWorkflow(api.Workflow):
        @api.step
        async def begin(self, ev: StartEvent) -> HopEvent:
            return HopEvent(count=0, total=int(ev.get("hops")))

        @api.step
        async def ping(self, ev: HopEvent) -> PongEvent | StopEvent:
            if ev.count + 1 >= ev.total:
                return StopEvent(result=ev.count + 1)
            return PongEvent(count=ev.count + 1, total=ev.total)

        @api.step
        async def pong(self, ev: PongEvent) -> HopEvent | StopEvent:
            if ev.count + 1 >= ev.total:
                return StopEvent(result=ev.count + 1)
            return HopEvent(count=ev.count + 1, total=ev.total)

    return FanOutWorkflow, {"self-loop": SelfLoopWorkflow, "ping-pong": PingPongWorkflow}


# ------------------------------------------------------------------------------------------------ measuring


@dataclass
class Result:
    """Events per second by size, and milliseconds per chain hop by chain kind, for one engine."""

    events_per_s: dict[int, float] = field(default_factory=dict)
    chain_ms_per_hop: dict[str, float] = field(default_factory=dict)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


async def _timed(run: Callable[[], Any], expected: int, repeat: int) -> float:
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
    api: ModuleType, label: str, sizes: Sequence[int], workers: int, hops: int, repeat: int
) -> Result:
    """Time the fan-out at each size and the chain, after a warm-up run of each (rayflow makes its actors)."""
    fanout_cls, chain_classes = build_workflows(api, workers)
    fanout = fanout_cls(timeout=None)
    chains = {kind: cls(timeout=None) for kind, cls in chain_classes.items()}
    result = Result()
    try:
        warm = min(1000, *sizes) if sizes else 1000
        _log(f"[{label}] warm-up: fan-out of {warm}, chains of 50")
        await _timed(lambda: fanout.run(n=warm), warm, 1)
        for chain in chains.values():
            await _timed(lambda chain=chain: chain.run(hops=50), 50, 1)
        for n in sizes:
            seconds = await _timed(lambda n=n: fanout.run(n=n), n, repeat)
            result.events_per_s[n] = n / seconds
            _log(f"[{label}] fan-out {n:>7,}: {seconds:8.2f} s  {n / seconds:10,.0f} events/s")
        for kind, chain in chains.items() if hops else ():
            seconds = await _timed(lambda chain=chain: chain.run(hops=hops), hops, repeat)
            result.chain_ms_per_hop[kind] = seconds / hops * 1e3
            _log(f"[{label}] {kind} chain, {hops:,} hops: {seconds:.2f} s  {seconds / hops * 1e3:.3f} ms/hop")
    finally:
        for wf in (fanout, *chains.values()):
            await close_workflow(wf)
    return result


@dataclass
class JournalResult:
    """rayflow's fan-out events per second by size, without and with a journal."""

    plain: dict[int, float] = field(default_factory=dict)
    journaled: dict[int, float] = field(default_factory=dict)


async def bench_journal(
    api: ModuleType, sizes: Sequence[int], workers: int, repeat: int, interval_s: float | None
) -> JournalResult:
    """Time rayflow's fan-out at each size without a journal, then with one (a temporary local directory), after a
    warm-up run of each; the two instances alternate per size, so both see the machine in the same state."""
    fanout_cls, _ = build_workflows(api, workers)
    result = JournalResult()
    with tempfile.TemporaryDirectory(prefix="rayflow-journal-") as where:
        plain = fanout_cls(timeout=None)
        journaled = fanout_cls(timeout=None, journal=api.Journal(where, interval_s=interval_s))
        try:
            warm = min(1000, *sizes) if sizes else 1000
            _log(f"[journal] warm-up: fan-out of {warm}, without and with a journal in {where}")
            for wf in (plain, journaled):
                await _timed(lambda wf=wf: wf.run(n=warm), warm, 1)
            for n in sizes:
                for wf, rates, label in ((plain, result.plain, "without"), (journaled, result.journaled, "with")):
                    seconds = await _timed(lambda wf=wf, n=n: wf.run(n=n), n, repeat)
                    rates[n] = n / seconds
                    rate = f"{n / seconds:10,.0f} events/s"
                    _log(f"[journal] fan-out {n:>7,} {label:>7} a journal: {seconds:8.2f} s  {rate}")
        finally:
            await plain.close()
            await journaled.close()
    return result


def render_journal(result: JournalResult, sizes: Sequence[int]) -> str:
    lines = [
        "| size | rayflow events/s | with a journal | journaled / plain |",
        "|---:|---:|---:|---:|",
    ]
    for n in sizes:
        a, b = result.plain.get(n), result.journaled.get(n)
        lines.append(f"| {n:,} | {_fmt(a)} | {_fmt(b)} | {_ratio(b, a)} |")
    return "\n".join(lines)


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

    def timed(fn: Callable[[], int], expected: int) -> float:
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
        _log("[raw Ray] warm-up")
        fan_out(workers * RAW_BATCH)
        chain_run(50)
        for n in sizes:
            seconds = timed(lambda n=n: fan_out(n), n)
            result.events_per_s[n] = n / seconds
            _log(f"[raw Ray] fan-out {n:>7,}: {seconds:8.2f} s  {n / seconds:10,.0f} events/s")
        if hops:
            seconds = timed(lambda: chain_run(hops), hops)
            result.chain_ms_per_hop["ping-pong"] = seconds / hops * 1e3
            _log(f"[raw Ray] ping-pong chain, {hops:,} hops: {seconds:.2f} s  {seconds / hops * 1e3:.3f} ms/hop")
    finally:
        for actor in pool:
            ray.kill(actor)
    return result


# --------------------------------------------------------------------------------------------------- report


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "n/a" if value is None else format(value, spec)


def _ratio(a: float | None, b: float | None) -> str:
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
        lines.append(f"| {n:,} | {_fmt(a)} | {_fmt(b)} | {_fmt(c)} | {_ratio(a, b)} | {_ratio(a, c)} |")
    if hops:
        lines += [
            "",
            "| chain of sequential hops | rayflow ms/hop | LlamaIndex ms/hop | raw Ray ms/hop |",
            "|---|---:|---:|---:|",
        ]
        for kind in ("self-loop", "ping-pong"):
            cells = " | ".join(_fmt(r.chain_ms_per_hop.get(kind), ".3f") for r in (rf, li, rr))
            lines.append(f"| {kind}, {hops:,} hops | {cells} |")
    lines.append("")
    if 5000 in sizes:
        lines.append(
            f"- 5,000 events: rayflow / LlamaIndex ="
            f" {_ratio(rf.events_per_s.get(5000), li.events_per_s.get(5000))} (target >= 50x)"
        )
    if 5000 in sizes and 100_000 in sizes:
        lines.append(
            f"- 100,000 events: rayflow runs at"
            f" {_ratio(rf.events_per_s.get(100_000), rf.events_per_s.get(5000))} of its events/s at 5,000"
            " (target >= 0.80x)"
        )
    return "\n".join(lines)


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


def connect_ray() -> None:
    """Join ``RAY_ADDRESS`` or start a local Ray, through rayflow when it is importable."""
    import ray

    if ray.is_initialized():
        return
    try:
        import rayflow
    except ImportError:
        ray.init(include_dashboard=False, logging_level=logging.WARNING)
    else:
        rayflow.init()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,5000,10000,100000", help="comma-separated fan-out sizes")
    parser.add_argument("--workers", type=int, default=4, help="num_workers of the worker step / raw-Ray actors")
    parser.add_argument("--chain", type=int, default=2000, help="hops in the sequential chain (0 skips it)")
    parser.add_argument("--llama-max", type=int, default=5000, help="largest size LlamaIndex runs (quadratic fan-in)")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per measurement; the best is kept")
    parser.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated subset of {','.join(ENGINES)}")
    parser.add_argument("--quick", action="store_true", help="sizes 1000,5000, LlamaIndex to 1000, 200 hops")
    parser.add_argument("--journal", action="store_true", help="also time rayflow's fan-out with a journal")
    parser.add_argument(
        "--journal-interval", type=float, default=None, help="seconds between checkpoints (RAYFLOW_JOURNAL_INTERVAL_S)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.llama_max, args.chain = "1000,5000", 1000, 200
    args.sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = set(args.engines) - set(ENGINES)
    if unknown:
        parser.error(f"unknown engines {sorted(unknown)}; choose from {','.join(ENGINES)}")
    return args


async def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(
        f"fan-out sizes {args.sizes}, {args.workers} workers, chain {args.chain} hops, LlamaIndex up to"
        f" {args.llama_max:,}; Python {platform.python_version()}, {os.cpu_count()} cores,"
        f" load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    results: dict[str, Result] = {}
    if "rayflow" in args.engines or "ray" in args.engines:
        connect_ray()
    if "rayflow" in args.engines:
        import rayflow

        results["rayflow"] = await bench_workflows(
            rayflow, "rayflow", args.sizes, args.workers, args.chain, args.repeat
        )
    if "ray" in args.engines:
        results["ray"] = bench_raw_ray(args.sizes, args.workers, args.chain, args.repeat)
    if "llama" in args.engines:
        api = llama_api()
        llama_sizes = [n for n in args.sizes if n <= args.llama_max]
        results["llama"] = await bench_workflows(api, "LlamaIndex", llama_sizes, args.workers, args.chain, args.repeat)
    print(render(results, args.sizes, args.chain))
    if args.journal:
        import rayflow

        connect_ray()
        journal = await bench_journal(rayflow, args.sizes, args.workers, args.repeat, args.journal_interval)
        print()
        print(render_journal(journal, args.sizes))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
