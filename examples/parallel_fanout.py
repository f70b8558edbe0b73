"""Parallel steps: fan N searches out to a ``@step(num_workers=3)`` pool, then fan them back in.

A dispatch step ``ctx.send_event``s one ``SearchEvent`` per source; three workers search concurrently; the
merge step waits with ``ctx.collect_events(ev, [SearchResultEvent] * N)`` until all N results are in.

    python examples/parallel_fanout.py --n 9
"""

from __future__ import annotations

import argparse
import asyncio
import time

from rayflow import Context, Event, StartEvent, StopEvent, Workflow, step

SOURCES = ("knowledge_base", "web", "docs")


class SearchEvent(Event):
    source: str
    query: str


class SearchResultEvent(Event):
    source: str
    results: str


class ParallelSearchWorkflow(Workflow):
    @step
    async def dispatch(self, ctx: Context, ev: StartEvent) -> SearchEvent | None:
        query = ev.get("query")
        sources = [f"{SOURCES[i % len(SOURCES)]}-{i}" for i in range(int(ev.get("n", 3)))]
        await ctx.store.set("num_sources", len(sources))
        for source in sources:
            ctx.send_event(SearchEvent(source=source, query=query))
        return None

    @step(num_workers=3)  # run 3 workers concurrently
    async def search_sources(self, ctx: Context, ev: SearchEvent) -> SearchResultEvent:
        # In production: each worker searches a different source
        await asyncio.sleep(0.1)  # simulate async search
        return SearchResultEvent(source=ev.source, results=f"Results from {ev.source} for: {ev.query}")

    @step
    async def merge_results(self, ctx: Context, ev: SearchResultEvent) -> StopEvent | None:
        # Collect results from all parallel workers
        n = await ctx.store.get("num_sources")
        results = ctx.collect_events(ev, [SearchResultEvent] * n)
        if results is None:
            return None  # not all results ready yet

        merged = "\n".join([f"[{r.source}] {r.results}" for r in results])
        return StopEvent(result=merged)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=3, help="number of searches to fan out")
    args = parser.parse_args()

    workflow = ParallelSearchWorkflow(timeout=60)
    try:
        t0 = time.perf_counter()
        merged = await workflow.run(query="vector databases", n=args.n)
        elapsed = time.perf_counter() - t0
    finally:
        await workflow.close()
    lines = merged.splitlines()
    print("\n".join(lines[:5] + ([f"... ({len(lines) - 5} more)"] if len(lines) > 5 else [])))
    print(f"merged {len(lines)} results in {elapsed:.2f} s")


if __name__ == "__main__":
    asyncio.run(main())
