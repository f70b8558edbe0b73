"""Shared state: ``ctx.store`` and dotted paths, atomic ``edit_state`` from parallel workers, ``ctx.set/get``.

The older ``await ctx.set/get`` calls still work, with a DeprecationWarning that ``ctx.store`` replaces them.

python examples/shared_state.py
"""

from __future__ import annotations

import asyncio
from typing import Any

from rayflow import Context, Event, StartEvent, StopEvent, Workflow, step


class ChunkEvent(Event):
    chunk: str


class CountedEvent(Event):
    words: int


class SharedStateWorkflow(Workflow):
    @step
    async def start(self, ctx: Context, ev: StartEvent) -> ChunkEvent | None:
        chunks = ev.get("chunks")
        await ctx.store.set("user.name", ev.get("user"))  # dotted path: creates {"user": {"name": ...}}
        await ctx.store.set("stats", {"chunks": len(chunks), "words": 0, "visits": 0})
        await ctx.set("owner", {"team": "search"})  # the older spelling of ctx.store.set
        for chunk in chunks:
            ctx.send_event(ChunkEvent(chunk=chunk))
        return None

    @step(num_workers=3)
    async def count(self, ctx: Context, ev: ChunkEvent) -> CountedEvent:
        words = len(ev.chunk.split())
        # Read-modify-write from three concurrent workers: atomic inside edit_state, so no update is lost.
        async with ctx.store.edit_state() as state:
            state["stats"]["words"] += words
            state["stats"]["visits"] += 1
        return CountedEvent(words=words)

    @step
    async def summarize(self, ctx: Context, ev: CountedEvent) -> StopEvent | None:
        n = await ctx.store.get("stats.chunks")
        if ctx.collect_events(ev, [CountedEvent] * n) is None:
            return None
        summary: dict[str, Any] = {
            "user": await ctx.store.get("user.name"),
            "words": await ctx.store.get("stats.words"),
            "visits": await ctx.store.get("stats.visits"),
            "missing": await ctx.store.get("user.email", default="<none>"),
            "owner_team": (await ctx.get("owner"))["team"],
        }
        try:
            await ctx.store.get("user.email")
        except ValueError:
            summary["missing_without_default"] = "ValueError"
        return StopEvent(result=summary)


async def main() -> None:
    chunks = [f"chunk {i} has " + "word " * i for i in range(12)]
    workflow = SharedStateWorkflow(timeout=60)
    try:
        summary = await workflow.run(user="ada", chunks=chunks)
    finally:
        await workflow.close()
    for key, value in summary.items():
        print(f"{key}: {value}")
    expected = sum(len(c.split()) for c in chunks)
    print(f"atomic updates: {summary['words'] == expected and summary['visits'] == len(chunks)}")


if __name__ == "__main__":
    asyncio.run(main())
