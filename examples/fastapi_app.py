"""A FastAPI service: ``POST /ask`` runs a workflow created once at startup and closed at shutdown.

python examples/fastapi_app.py --port 8000
curl -s -X POST localhost:8000/ask -H 'content-type: application/json' -d '{"question": "What is RAG?"}'
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from rayflow import Context, Event, StartEvent, StopEvent, Workflow, step


class AskRequest(BaseModel):
    question: str


class AskResponse(BaseModel):
    reply: str


class Question(Event):
    text: str


class AnswerService(Workflow):
    @step
    async def receive(self, ctx: Context, ev: StartEvent) -> Question:
        await ctx.store.set("asked", ev.get("question"))
        return Question(text=ev.get("question"))

    @step
    async def compose(self, ev: Question) -> StopEvent:
        # The LLM call goes here, e.g. `await Settings.llm.acomplete(...)` from rayflow.rag.
        return StopEvent(result=f"[no LLM] {len(ev.text.split())}-word question: {ev.text}")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # One workflow for the whole service: its step actors start once and serve every request concurrently.
    app.state.workflow = AnswerService(timeout=60)
    # A first run at startup starts the step actors (and Ray), so the first request does not wait for them.
    await app.state.workflow.run(question="warm-up")
    try:
        yield
    finally:
        await app.state.workflow.close()


app = FastAPI(title="rayflow example", lifespan=lifespan)


@app.post("/ask")
async def ask(request: AskRequest) -> AskResponse:
    workflow: AnswerService = app.state.workflow
    return AskResponse(reply=await workflow.run(question=request.question))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
