"""Branching: a step whose ``Union`` return type routes a query to a simple or a complex handler.

python examples/branching.py
"""

from __future__ import annotations

import asyncio
from typing import Union

from rayflow import Context, Event, StartEvent, StopEvent, Workflow, step


class SimpleQueryEvent(Event):
    query: str


class ComplexQueryEvent(Event):
    query: str


class QueryRoutingWorkflow(Workflow):
    # `Union[A, B]` is the tutorial's spelling; `A | B` works the same.
    @step
    async def classify_query(self, ctx: Context, ev: StartEvent) -> Union[SimpleQueryEvent, ComplexQueryEvent]:  # noqa: UP007
        query = ev.get("query", "")
        await ctx.set("query", query)

        # Route based on query complexity
        # In production: use an LLM classifier
        if len(query.split()) < 5:
            return SimpleQueryEvent(query=query)
        else:
            return ComplexQueryEvent(query=query)

    @step
    async def handle_simple(self, ctx: Context, ev: SimpleQueryEvent) -> StopEvent:
        # Fast path: direct LLM answer -- `await Settings.llm.acomplete(ev.query)` in the tutorial
        response = f"short answer to {ev.query!r}"
        return StopEvent(result=f"[simple] {response}")

    @step
    async def handle_complex(self, ctx: Context, ev: ComplexQueryEvent) -> StopEvent:
        # Slow path: multi-step RAG -- `await Settings.llm.acomplete(f"Decompose and answer thoroughly: ...")`
        parts = [p.strip() for p in ev.query.split(",") if p.strip()]
        response = f"answered {len(parts)} sub-question(s): " + " | ".join(parts)
        return StopEvent(result=f"[complex] {response}")


async def main() -> None:
    workflow = QueryRoutingWorkflow(timeout=30)
    try:
        for query in (
            "What is RAG?",
            "Compare dense and sparse retrieval, then explain reranking trade-offs",
        ):
            result = await workflow.run(query=query)
            print(f"{query!r} -> {result}")
    finally:
        await workflow.close()


if __name__ == "__main__":
    asyncio.run(main())
