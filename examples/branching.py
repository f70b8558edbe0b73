"""Branching: the return type of a step names every event it may emit, and the event it returns picks the path.

``triage`` splits a question into parts (at commas and semicolons); a one-part question goes to
``answer_directly``, one with several parts to ``answer_in_depth``. ``Union[A, B]`` and ``A | B`` both declare
the two possible events.

    python examples/branching.py
"""

from __future__ import annotations

import asyncio
import re

from rayflow import Event, StartEvent, StopEvent, Workflow, step


class OnePart(Event):
    question: str


class SeveralParts(Event):
    parts: list[str]


class TriageWorkflow(Workflow):
    @step
    async def triage(self, ev: StartEvent) -> OnePart | SeveralParts:
        question = ev.get("question", "")
        parts = [p.strip() for p in re.split(r"[,;]", question) if p.strip()]
        return SeveralParts(parts=parts) if len(parts) > 1 else OnePart(question=question)

    @step
    async def answer_directly(self, ev: OnePart) -> StopEvent:
        # One lookup is enough; a real workflow would ask its LLM here (rayflow.rag.Settings.llm).
        return StopEvent(result=f"direct: one lookup for {ev.question!r}")

    @step
    async def answer_in_depth(self, ev: SeveralParts) -> StopEvent:
        # One lookup per part, then a combined answer; a real workflow would retrieve for each part.
        return StopEvent(result=f"in depth: {len(ev.parts)} lookups for " + " + ".join(map(repr, ev.parts)))


async def main() -> None:
    workflow = TriageWorkflow(timeout=30)
    try:
        for question in (
            "What is RAG?",
            "Compare dense and sparse retrieval, then explain reranking trade-offs",
        ):
            print(f"{question!r} -> {await workflow.run(question=question)}")
    finally:
        await workflow.close()


if __name__ == "__main__":
    asyncio.run(main())
