"""Fan-out/fan-in and sequential-chain throughput: rayflow vs LlamaIndex Workflows vs raw Ray, in one run.

The same two workflows are built from each API module (``rayflow`` and LlamaIndex's ``workflows``) by one
function, so both engines run identical code (the shared core is ``rayflow.commands.bench``, which ``rayflow bench``
runs):

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

import argparse
import asyncio
import logging
import os
import platform
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType

from rayflow.commands.bench import (  # the shared core, which `rayflow bench` runs; re-exported for the other scripts
    ENGINES,
    Result,
    bench_raw_ray,
    bench_workflows,
    close_workflow,
    llama_api,
    render,
    run_bench,
)
from rayflow.commands.bench import fmt as _fmt
from rayflow.commands.bench import log as _log
from rayflow.commands.bench import ratio as _ratio
from rayflow.commands.bench import timed as _timed
from rayflow.commands.bench_workflows import build_workflows, expected_list

__all__ = [
    "ENGINES",
    "Result",
    "_fmt",
    "_log",
    "_ratio",
    "_timed",
    "bench_raw_ray",
    "bench_workflows",
    "build_workflows",
    "close_workflow",
    "connect_ray",
    "expected_list",
    "llama_api",
    "render",
]


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
    if "rayflow" in args.engines or "ray" in args.engines:
        connect_ray()
    results = await run_bench(args.engines, args.sizes, args.workers, args.chain, args.repeat, args.llama_max)
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
