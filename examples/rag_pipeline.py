"""Answer a question from a folder of documents: retrieve, rerank, then ask an LLM; offline by default.

python examples/rag_pipeline.py [--query "..."] [--data DIR] [--rerank-model PATH_OR_NAME]

The pipeline is three steps: ``search`` takes the index's best matches, ``shortlist`` reranks them and keeps
the best five, ``compose`` asks the LLM with those excerpts and streams its reply. What it runs on offline: the
embedding model is the shipped all-MiniLM-L6-v2 (``Settings.embed_model``'s default); the LLM is ``OpenAI`` when
``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` is set, else ``LocalLLM`` (SmolLM2-135M in one shared Ray actor); the
reranker is a cross-encoder only when ``--rerank-model`` names one (no trained cross-encoder ships offline), else
``CosineRerank``. Progress and the LLM's tokens reach the console through ``ctx.write_event_to_stream``. Ray is
the local one rayflow starts, or ``RAY_ADDRESS``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import rayflow
from rayflow import Context, Event, StartEvent, StopEvent, Workflow, step
from rayflow.rag import (
    CompletionResponse,
    CosineRerank,
    LocalLLM,
    ModelNotAvailableError,
    OpenAI,
    SentenceSplitter,
    SentenceTransformerRerank,
    Settings,
    SimpleDirectoryReader,
    VectorStoreIndex,
    shutdown_llms,
    shutdown_model_pools,
)
from rayflow.rag.rerank import resolve_cross_encoder

DATA_DIR = Path(__file__).resolve().parent / "data"
QUERY = "Where are API rate limits set, and how is a change applied?"
SIMILARITY_TOP_K = 15  # retrieve widely, then let the reranker pick
TOP_N = 5
CHUNK_WORDS = 64  # small chunks: the sample documents are short, and 15 retrieved nodes should mean something
MAX_NEW_TOKENS = 96  # SmolLM2 makes 15-20 tokens/s on 2 CPU cores


class Retrieved(Event):
    """The index's best matches for the question, best first."""

    question: str
    hits: list[Any]


class Shortlisted(Event):
    """The matches the reranker kept, best first."""

    question: str
    hits: list[Any]


class StatusLine(Event):
    """A line of progress for the console (streamed, not routed to any step)."""

    text: str


class TokenEvent(Event):
    """A piece of the answer as the LLM produces it (streamed)."""

    delta: str


def build_prompt(question: str, excerpts: list[str]) -> str:
    """Numbered excerpts, then the question; the model is told to answer from the excerpts alone."""
    numbered = "\n\n".join(f"[{i}] {text.strip()}" for i, text in enumerate(excerpts, start=1))
    return (
        "Answer the question using only the numbered documentation excerpts below; "
        "if they do not contain the answer, say that you do not know.\n\n"
        f"{numbered}\n\nQuestion: {question}"
    )


class AnswerFromDocs(Workflow):
    """Retrieve 15 nodes, rerank to 5, answer from them; ``rerank_model`` None means ``CosineRerank``."""

    def __init__(self, index: VectorStoreIndex, rerank_model: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.index = index  # travels to the step actors as a handle to one shared index actor
        self.rerank_model = rerank_model

    @step
    async def search(self, ctx: Context, ev: StartEvent) -> Retrieved:
        question = ev.get("query", "")
        hits = await self.index.as_retriever(similarity_top_k=SIMILARITY_TOP_K).aretrieve(question)
        ctx.write_event_to_stream(StatusLine(text=f"retrieved {len(hits)} nodes"))
        return Retrieved(question=question, hits=hits)

    @step
    async def shortlist(self, ctx: Context, ev: Retrieved) -> Shortlisted:
        reranker = make_reranker(self.rerank_model)  # cheap: the model lives in a shared, warm model pool
        kept = await reranker.apostprocess_nodes(ev.hits, query_str=ev.question)
        ctx.write_event_to_stream(StatusLine(text=f"reranked to {len(kept)} with {type(reranker).__name__}"))
        return Shortlisted(question=ev.question, hits=kept)

    @step
    async def compose(self, ctx: Context, ev: Shortlisted) -> StopEvent:
        prompt = build_prompt(ev.question, [n.text for n in ev.hits])
        ctx.write_event_to_stream(StatusLine(text=f"asking {Settings.llm!r}"))
        answer = ""
        async for chunk in Settings.llm.astream_complete(prompt):
            if chunk.delta:
                answer += chunk.delta
                ctx.write_event_to_stream(TokenEvent(delta=chunk.delta))
        sources = [(n.metadata.get("file_name", "?"), n.get_score(), n.text) for n in ev.hits]
        return StopEvent(result={"answer": answer.strip(), "sources": sources})


def make_reranker(model: str | None) -> SentenceTransformerRerank | CosineRerank:
    """A cross-encoder when one is named (a local directory, or a Hugging Face name in the cache), else cosine."""
    if model:
        return SentenceTransformerRerank(model=model, top_n=TOP_N)
    return CosineRerank(top_n=TOP_N)


def check_rerank_model(model: str | None) -> str | None:
    """``--rerank-model`` as the step actors must see it (a directory made absolute); exits if it cannot load."""
    if not model:
        return None
    try:
        return resolve_cross_encoder(model)
    except ModelNotAvailableError as err:
        raise SystemExit(f"--rerank-model: {err}") from err


def describe_reranker(model: str | None) -> str:
    if model:
        return f"SentenceTransformerRerank(model={model!r}, top_n={TOP_N}) (--rerank-model)"
    return (
        f"CosineRerank(top_n={TOP_N}): no trained cross-encoder ships offline (a hub model such as "
        "cross-encoder/ms-marco-MiniLM-L-2-v2 needs a download); --rerank-model PATH_OR_NAME uses one"
    )


class NoLLM:
    """``--llm none``: no generation; the answer is the top node's text, so retrieval alone can be timed."""

    model = "none"

    def __repr__(self) -> str:
        return "NoLLM()"

    def complete(self, prompt: str, **_: Any) -> CompletionResponse:
        first = prompt.split("[1] ", 1)[-1]  # build_prompt's first excerpt runs to the next one or the question
        top = re.split(r"\n\n(?:\[2\] |Question: )", first, maxsplit=1)[0]
        return CompletionResponse(text=top, delta=top)

    async def acomplete(self, prompt: str, **kwargs: Any) -> CompletionResponse:
        return self.complete(prompt, **kwargs)

    async def astream_complete(self, prompt: str, **kwargs: Any) -> AsyncIterator[CompletionResponse]:
        yield self.complete(prompt, **kwargs)


def choose_llm(kind: str, model: str, max_new_tokens: int) -> tuple[Any, str]:
    """The LLM for ``--llm`` (auto, openai, local, none) and why it was chosen."""
    endpoint = [v for v in ("OPENAI_BASE_URL", "OPENAI_API_BASE", "OPENAI_API_KEY") if os.environ.get(v)]
    if kind == "auto":
        kind = "openai" if endpoint else "local"
        why = f"{endpoint[0]} is set" if endpoint else "no OPENAI_BASE_URL / OPENAI_API_KEY set, so offline"
    else:
        why = f"--llm {kind}"
    if kind == "openai":
        llm: Any = OpenAI(model=model)
        return llm, f"{llm!r} ({why})"
    if kind == "local":
        llm = LocalLLM(max_new_tokens=max_new_tokens)
        return llm, f"LocalLLM SmolLM2-135M-Instruct in one Ray actor, {max_new_tokens} new tokens at most ({why})"
    return NoLLM(), f"none: answers are the top node's text ({why})"


def build_index(data_dir: Path, chunk_words: int) -> VectorStoreIndex:
    """Read ``data_dir`` and index it with the shipped MiniLM embeddings (a progress bar while embedding)."""
    started = time.perf_counter()
    documents = SimpleDirectoryReader(str(data_dir)).load_data()
    print(f"loaded {len(documents)} documents from {data_dir}", flush=True)
    splitter = SentenceSplitter(chunk_size=chunk_words, chunk_overlap=chunk_words // 4)
    index = VectorStoreIndex.from_documents(documents, transformations=[splitter], show_progress=True)
    print(f"indexed {len(index)} nodes in {time.perf_counter() - started:.1f} s", flush=True)
    return index


def connect() -> None:
    """Start the embedded local Ray (or join ``RAY_ADDRESS``), saying which."""
    started = time.perf_counter()
    address = os.environ.get("RAY_ADDRESS")
    print(f"Ray: joining {address}" if address else "Ray: starting a local Ray (a few seconds)...", flush=True)
    rayflow.init()
    print(f"Ray: ready in {time.perf_counter() - started:.1f} s", flush=True)


async def shut_down(workflow: Workflow | None, index: VectorStoreIndex | None, keep_models: bool) -> None:
    """Stop what this program started: the workflow's actors, the index server, the model and LLM actors."""
    if workflow is not None:
        await workflow.close()
    if index is not None:
        index.close()
    if not keep_models:
        shutdown_llms()
        shutdown_model_pools()


def print_result(result: dict[str, Any]) -> None:
    print(f"\n\nAnswer:\n{result['answer']}\n\nSources:")
    for file_name, score, text in result["sources"]:
        snippet = " ".join(text.split())[:60]
        print(f"  {score:.3f}  {file_name}  {snippet!r}")


async def ask(workflow: AnswerFromDocs, query: str) -> dict[str, Any]:
    """One run, its progress and tokens printed as they stream in."""
    handler = workflow.run(query=query)
    async for event in handler.stream_events():
        if isinstance(event, StatusLine):
            print(f"[{event.text}]", flush=True)
        elif isinstance(event, TokenEvent):
            print(event.delta, end="", flush=True)
    result: dict[str, Any] = await handler
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--query", default=QUERY)
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="directory of documents (default: %(default)s)")
    parser.add_argument("--rerank-model", default=None, help="cross-encoder directory or Hugging Face name")
    parser.add_argument("--llm", choices=["auto", "openai", "local", "none"], default="auto")
    parser.add_argument("--llm-model", default=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"), help="for OpenAI")
    parser.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS, help="for the local LLM")
    parser.add_argument("--chunk-words", type=int, default=CHUNK_WORDS)
    parser.add_argument("--verbose", action="store_true", help="the engine logs every step and streamed event")
    parser.add_argument("--keep-models", action="store_true", help="leave the model and LLM actors running")
    return parser.parse_args(argv)


async def run_pipeline(args: argparse.Namespace) -> None:
    """Index the documents, answer the question, shut everything down."""
    connect()
    workflow: AnswerFromDocs | None = None
    index: VectorStoreIndex | None = None
    try:
        index = build_index(args.data, args.chunk_words)
        workflow = AnswerFromDocs(index=index, rerank_model=args.rerank_model, timeout=120, verbose=args.verbose)
        print_result(await ask(workflow, args.query))
    finally:
        await shut_down(workflow, index, args.keep_models)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    args.rerank_model = check_rerank_model(args.rerank_model)
    Settings.llm, why_llm = choose_llm(args.llm, args.llm_model, args.max_new_tokens)
    print(f"question: {args.query}")
    print("embeddings: all-MiniLM-L6-v2, shipped with rayflow's RAG extra (offline)")
    print(f"LLM: {why_llm}")
    print(f"reranker: {describe_reranker(args.rerank_model)}", flush=True)
    asyncio.run(run_pipeline(args))
    print(f"\ndone in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
