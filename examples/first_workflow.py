"""Your first workflow: retrieve -> generate, the tutorial's first example with rayflow imports.

The ``generate`` step answers deterministically so the example runs without an LLM or an API key; pass
``--llm`` to send the prompt to ``rayflow.rag.Settings.llm`` instead (the tutorial uses OpenAI).

    python examples/first_workflow.py
    python examples/first_workflow.py --query "What is a vector index?"
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from rayflow import Context, Event, StartEvent, StopEvent, Workflow, step


class QueryEvent(Event):
    query: str


async def answer(query: str, use_llm: bool) -> str:
    """The LLM call of the tutorial, or a deterministic stand-in when no LLM is wanted."""
    prompt = f"Answer this question: {query}"
    if use_llm:
        # The tutorial's `OpenAI(model="gpt-4o-mini")`: configure rayflow.rag.Settings.llm to pick the model.
        from rayflow.rag import Settings

        response = await Settings.llm.acomplete(prompt)
        return str(response)
    return f"[no LLM] {prompt}"


class SimpleRAGWorkflow(Workflow):
    def __init__(self, use_llm: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.use_llm = use_llm

    @step
    async def retrieve(self, ctx: Context, ev: StartEvent) -> QueryEvent:
        """Step 1: store the query and pass it forward."""
        await ctx.set("query", ev.get("query"))
        return QueryEvent(query=ev.get("query"))

    @step
    async def generate(self, ctx: Context, ev: QueryEvent) -> StopEvent:
        """Step 2: generate an answer."""
        query = ev.query
        stored = await ctx.get("query")
        response = await answer(query, self.use_llm)
        return StopEvent(result=f"{response} (query in context: {stored == query})")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--query", default="What is retrieval-augmented generation?")
    parser.add_argument("--llm", action="store_true", help="answer with rayflow.rag.Settings.llm")
    args = parser.parse_args()

    workflow = SimpleRAGWorkflow(use_llm=args.llm, timeout=60, verbose=True)
    try:
        result = await workflow.run(query=args.query)
        print(result)
    finally:
        await workflow.close()


if __name__ == "__main__":
    asyncio.run(main())
