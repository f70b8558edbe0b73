"""A FastAPI service: ``POST /query`` runs a workflow created once at startup and closed at shutdown.

python examples/fastapi_app.py --port 8000
curl -s -X POST localhost:8000/query -H 'content-type: application/json' -d '{"query": "What is RAG?"}'
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from rayflow import Context, Event, StartEvent, StopEvent, Workflow, step


class QueryRequest(BaseModel):
    query: str


class QueryEvent(Event):
    query: str


class AnswerWorkflow(Workflow):
    @step
    async def retrieve(self, ctx: Context, ev: StartEvent) -> QueryEvent:
        await ctx.store.set("query", ev.get("query"))
        return QueryEvent(query=ev.get("query"))

    @step
    async def generate(self, ev: QueryEvent) -> StopEvent:
        # The LLM call goes here, e.g. `await Settings.llm.acomplete(...)` from rayflow.rag.
        return StopEvent(result=f"[no LLM] {len(ev.query.split())}-word question: {ev.query}")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # One workflow for the whole service: its step actors start once and serve every request concurrently.
    app.state.workflow = AnswerWorkflow(timeout=60)
    # A first run at startup starts the step actors (and Ray), so the first request does not wait for them.
    await app.state.workflow.run(query="warm-up")
    try:
        yield
    finally:
        await app.state.workflow.close()


app = FastAPI(title="rayflow example", lifespan=lifespan)


@app.post("/query")
async def query_endpoint(request: QueryRequest) -> dict[str, str]:
    workflow: AnswerWorkflow = app.state.workflow
    result = await workflow.run(query=request.query)
    return {"answer": result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
