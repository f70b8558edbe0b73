"""The fan-out/fan-in as users write it: a fresh workflow instance run once, its collector reading state per event.

``fanout.py`` measures the best case: pools grown by a warm-up of the same size, the count riding in every event.
Here, for each size N, a new instance of the workflow is created, run once and closed; its start step writes N to
``ctx.store`` and its collecting step reads it back with ``await ctx.store.get("n")`` for every event it receives, as
the tutorial's steps read state. The warm, count-in-the-event case of ``fanout.py`` runs beside it at each size, on
one instance warmed up once with 1,000 events, for the ratio. LlamaIndex Workflows runs the same fresh, store-reading
code up to ``--llama-max`` (its fan-in is quadratic).

    python benchmarks/users_fanout.py                        # sizes 1000,2000,5000,10000,20000,50000,100000
    python benchmarks/users_fanout.py --sizes 1000,5000 --llama-max 1000      # a quick look
    python benchmarks/users_fanout.py --plot benchmarks/results/users_fanout.png

Prints a markdown table, the issue's two ratios (fresh vs LlamaIndex at 5,000; 100,000 vs 5,000), and with
``--plot`` draws events/s against N for both engines (matplotlib).
"""

# No `from __future__ import annotations`: see fanout.py (the engines resolve step annotations at definition).

import argparse
import asyncio
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout import _fmt, _log, _ratio, _timed, build_workflows, close_workflow, connect_ray, expected_list, llama_api


def build_store_fanout(api: ModuleType, workers: int) -> type:
    """The fan-out whose collector reads N from the store for every event (written once by the start step)."""
    Event, StartEvent, StopEvent, Context = api.Event, api.StartEvent, api.StopEvent, api.Context

    class Work(Event):
        i: int

    class Done(Event):
        i: int

    class StoreFanOut(api.Workflow):
        @api.step
        async def fan_out(self, ctx: Context, ev: StartEvent) -> Work | None:
            n = int(ev.get("n"))
            await ctx.store.set("n", n)
            for i in range(n):
                ctx.send_event(Work(i=i))
            return None

        @api.step(num_workers=workers)
        async def work(self, ev: Work) -> Done:
            return Done(i=ev.i * 2)

        @api.step
        async def fan_in(self, ctx: Context, ev: Done) -> StopEvent | None:
            n = await ctx.store.get("n")
            results = ctx.collect_events(ev, expected_list(Done, n))
            if results is None:
                return None
            return StopEvent(result=len(results))

    return StoreFanOut


@dataclass
class Rates:
    fresh: dict[int, float] = field(default_factory=dict)
    warm: dict[int, float] = field(default_factory=dict)


async def bench(api: ModuleType, label: str, sizes: Sequence[int], workers: int, warm_too: bool) -> Rates:
    store_cls = build_store_fanout(api, workers)
    rates = Rates()
    warm_wf = None
    if warm_too:
        fanout_cls, _ = build_workflows(api, workers)
        warm_wf = fanout_cls(timeout=None)
        _log(f"[{label}] warm instance: warm-up fan-out of 1,000")
        await _timed(lambda: warm_wf.run(n=1000), 1000, 1)
    try:
        for n in sizes:
            wf = store_cls(timeout=None)  # a new instance for each size: its first run is the one timed
            try:
                seconds = await _timed(lambda wf=wf, n=n: wf.run(n=n), n, 1)
            finally:
                await close_workflow(wf)
            rates.fresh[n] = n / seconds
            _log(f"[{label}] fresh instance, store read per event, {n:>7,}: {seconds:7.2f} s {n / seconds:9,.0f}/s")
            if warm_wf is not None:
                seconds = await _timed(lambda n=n: warm_wf.run(n=n), n, 1)
                rates.warm[n] = n / seconds
                _log(f"[{label}] warm instance, count in the event,  {n:>7,}: {seconds:7.2f} s {n / seconds:9,.0f}/s")
    finally:
        if warm_wf is not None:
            await close_workflow(warm_wf)
    return rates


def render(rayflow: Rates, llama: Rates, sizes: Sequence[int]) -> str:
    lines = [
        "| size | rayflow, fresh + store reads | rayflow, warm + count in event | LlamaIndex, fresh + store reads "
        "| fresh / warm | rayflow / LlamaIndex (fresh) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for n in sizes:
        a, w, b = rayflow.fresh.get(n), rayflow.warm.get(n), llama.fresh.get(n)
        lines.append(f"| {n:,} | {_fmt(a)} | {_fmt(w)} | {_fmt(b)} | {_ratio(a, w)} | {_ratio(a, b)} |")
    lines.append("")
    if 5000 in sizes:
        lines.append(
            f"- 5,000 events, fresh instance with store reads: rayflow / LlamaIndex ="
            f" {_ratio(rayflow.fresh.get(5000), llama.fresh.get(5000))} (target >= 100x); fresh / warm ="
            f" {_ratio(rayflow.fresh.get(5000), rayflow.warm.get(5000))} (target >= 0.67x, within 1.5x)"
        )
    if 5000 in sizes and 100_000 in sizes:
        lines.append(
            f"- 100,000 events run at {_ratio(rayflow.fresh.get(100_000), rayflow.fresh.get(5000))} of the events/s"
            " at 5,000 (target >= 0.80x)"
        )
    return "\n".join(lines)


def plot(rayflow: Rates, llama: Rates, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for rates, name, style in (
        (rayflow.fresh, "rayflow: fresh instance, store read per event", "o-"),
        (rayflow.warm, "rayflow: warm instance, count in the event", "s--"),
        (llama.fresh, "LlamaIndex Workflows: fresh instance, store read per event", "^-"),
    ):
        if rates:
            xs = sorted(rates)
            ax.plot(xs, [rates[x] for x in xs], style, label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("events fanned out and collected (N)")
    ax.set_ylabel("events/s")
    ax.set_title(f"fan-out/fan-in, {os.cpu_count()} cores")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"plot: {path}")


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,2000,5000,10000,20000,50000,100000")
    parser.add_argument("--workers", type=int, default=4, help="num_workers of the worker step")
    parser.add_argument("--llama-max", type=int, default=5000, help="largest size LlamaIndex runs (quadratic fan-in)")
    parser.add_argument("--engines", default="rayflow,llama")
    parser.add_argument("--plot", default=None, help="write a PNG of events/s against N here")
    args = parser.parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    engines = {e.strip() for e in args.engines.split(",")}
    print(
        f"sizes {sizes}, {args.workers} workers, LlamaIndex up to {args.llama_max:,}; Python"
        f" {platform.python_version()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    rayflow_rates, llama_rates = Rates(), Rates()
    if "rayflow" in engines:
        connect_ray()
        import rayflow

        rayflow_rates = await bench(rayflow, "rayflow", sizes, args.workers, warm_too=True)
    if "llama" in engines:
        llama_sizes = [n for n in sizes if n <= args.llama_max]
        llama_rates = await bench(llama_api(), "LlamaIndex", llama_sizes, args.workers, warm_too=False)
    print(render(rayflow_rates, llama_rates, sizes))
    if args.plot:
        plot(rayflow_rates, llama_rates, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
