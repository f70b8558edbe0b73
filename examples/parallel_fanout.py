"""Parallel steps: fan lookups out to a pool of three workers, then gather every answer in one step.

``spread`` sends one ``LookupEvent`` per source with ``ctx.send_event``; ``look_up`` has ``num_workers=3``, so up
to three lookups run at once; ``combine`` calls ``ctx.collect_events`` with one ``FoundEvent`` per source and
gets ``None`` until the last one has arrived.

    python examples/parallel_fanout.py --n 9
"""

from __future__ import annotations

import argparse
import asyncio
import time

from rayflow import Context, Event, StartEvent, StopEvent, Workflow, step

KINDS = ("wiki", "tickets", "manuals")
LOOKUP_SECONDS = 0.1  # stands in for a call to a search service


class LookupEvent(Event):
    source: str
    topic: str


class FoundEvent(Event):
    source: str
    summary: str


class FanOutSearch(Workflow):
    @step
    async def spread(self, ctx: Context, ev: StartEvent) -> LookupEvent | None:
        sources = [f"{KINDS[i % len(KINDS)]}-{i}" for i in range(int(ev.get("n", 3)))]
        await ctx.store.set("sources", len(sources))
        for source in sources:
            ctx.send_event(LookupEvent(source=source, topic=ev.get("topic")))
        return None

    @step(num_workers=3)
    async def look_up(self, ev: LookupEvent) -> FoundEvent:
        await asyncio.sleep(LOOKUP_SECONDS)
        return FoundEvent(source=ev.source, summary=f"2 pages about {ev.topic}")

    @step
    async def combine(self, ctx: Context, ev: FoundEvent) -> StopEvent | None:
        expected = await ctx.store.get("sources")
        found = ctx.collect_events(ev, [FoundEvent] * expected)
        if found is None:
            return None  # more lookups are still running
        return StopEvent(result=[f"{f.source}: {f.summary}" for f in found])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=3, help="number of sources to look up")
    args = parser.parse_args()

    workflow = FanOutSearch(timeout=60)
    try:
        started = time.perf_counter()
        found = await workflow.run(topic="vector databases", n=args.n)
        elapsed = time.perf_counter() - started
    finally:
        await workflow.close()
    for line in found[:5]:
        print(line)
    if len(found) > 5:
        print(f"and {len(found) - 5} more")
    print(f"combined {len(found)} lookups in {elapsed:.2f} s")


if __name__ == "__main__":
    asyncio.run(main())
