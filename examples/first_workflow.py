"""A first workflow: two steps, one event between them, and a value kept in the run's context.

``remember`` keeps the question in the context and hands it on in a ``QuestionEvent``; ``reply`` reads it back
and answers. Without ``--llm`` the answer is a fixed template, so the example needs no model and no API key;
with ``--llm`` the prompt goes to ``rayflow.rag.Settings.llm`` (an OpenAI-compatible server when
``OPENAI_BASE_URL`` is set, else the offline local model).

    python examples/first_workflow.py
    python examples/first_workflow.py --query "What is a vector index?"
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from rayflow import Context, Event, StartEvent, StopEvent, Workflow, step


class QuestionEvent(Event):
    text: str


async def respond(question: str, use_llm: bool) -> str:
    """Ask the configured LLM, or fill in a template when no LLM is wanted."""
    prompt = f"Please answer in one or two sentences: {question}"
    if not use_llm:
        return f"[no LLM] would send: {prompt}"
    from rayflow.rag import Settings

    return str(await Settings.llm.acomplete(prompt))


class FirstWorkflow(Workflow):
    def __init__(self, use_llm: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.use_llm = use_llm

    @step
    async def remember(self, ctx: Context, ev: StartEvent) -> QuestionEvent:
        """Keeps the question in the run's context (``ctx.set``, the older spelling of ``ctx.store.set``)."""
        question = ev.get("question")
        await ctx.set("question", question)
        return QuestionEvent(text=question)

    @step
    async def reply(self, ctx: Context, ev: QuestionEvent) -> StopEvent:
        """Answers, and reports whether the context still holds the question it was sent."""
        kept = await ctx.get("question")
        answer = await respond(ev.text, self.use_llm)
        return StopEvent(result=f"{answer} (context kept the question: {kept == ev.text})")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--query", default="Why run workflow steps as actors?")
    parser.add_argument("--llm", action="store_true", help="answer with rayflow.rag.Settings.llm")
    args = parser.parse_args()

    workflow = FirstWorkflow(use_llm=args.llm, timeout=60, verbose=True)
    try:
        print(await workflow.run(question=args.query))
    finally:
        await workflow.close()


if __name__ == "__main__":
    asyncio.run(main())
