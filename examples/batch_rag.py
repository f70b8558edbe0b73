"""Many questions through ONE warm RAG workflow, concurrently: per-query latency and queries per second.

python examples/batch_rag.py [--queries FILE] [--concurrency 8] [--llm auto|openai|local|none]
rayflow batch examples/batch_rag.py:workflow questions.jsonl -o answers.jsonl   # each line {"query": "..."}

The workflow, index and model choices are examples/rag_pipeline.py's. One ``AnswerFromDocs`` instance serves every
query: its step actors, the index actor and the model actors start once (a warm-up query), then the batch runs
as ``asyncio.gather`` of ``workflow.run(...)`` with at most ``--concurrency`` runs in flight. ``--llm none`` skips
generation, to time retrieval and reranking alone. The offline LLM serves one request at a time, so with it the
batch is as fast as SmolLM2's tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path
from typing import Any

from rag_pipeline import (
    CHUNK_WORDS,
    DATA_DIR,
    MAX_NEW_TOKENS,
    AnswerFromDocs,
    build_index,
    check_rerank_model,
    choose_llm,
    connect,
    describe_reranker,
    shut_down,
)

from rayflow.rag import Settings, VectorStoreIndex

# Questions about examples/data/, each with the file that answers it.
QUESTIONS: list[tuple[str, str]] = [
    ("In which file are the API rate limits defined?", "rate_limits.md"),
    ("What is the default rate limit per API key?", "rate_limits.md"),
    ("What HTTP status does a client get when it is over its rate limit?", "rate_limits.md"),
    ("How do I apply new rate limits without a restart?", "rate_limits.md"),
    ("How do I raise the limit for a single partner's key?", "rate_limits.md"),
    ("How do I create an API key?", "authentication.md"),
    ("How long does an old key keep working after rotation?", "authentication.md"),
    ("How do I enable mutual TLS client certificates?", "authentication.md"),
    ("Which settings configure the OAuth issuer and audience?", "authentication.md"),
    ("How do I install the gateway on Kubernetes with Helm?", "deployment.txt"),
    ("How many replicas are needed for high availability?", "deployment.txt"),
    ("How much CPU and memory does one replica need?", "deployment.txt"),
    ("On which port are the Prometheus metrics exposed?", "monitoring.html"),
    ("Which metric counts requests rejected with HTTP 429?", "monitoring.html"),
    ("What should I check when clients get 502 Bad Gateway?", "troubleshooting.txt"),
    ("Why does memory keep growing?", "troubleshooting.txt"),
    ("How much does the Team plan cost per month?", "pricing.json"),
    ("How are requests beyond the included amount billed?", "pricing.json"),
    ("How do I open a support ticket?", "support_faq.pdf"),
    ("When did WebSocket proxying become generally available?", "changelog.md"),
]


def workflow() -> AnswerFromDocs:
    """The workflow ``rayflow run`` / ``rayflow batch`` take as ``examples/batch_rag.py:workflow``: the sample
    documents indexed, the LLM chosen as ``--llm auto`` does (``RAYFLOW_EXAMPLE_LLM`` picks another), the cosine
    reranker, 600 s per run. Each run's keyword argument is ``query``."""
    Settings.llm, why_llm = choose_llm(
        os.environ.get("RAYFLOW_EXAMPLE_LLM", "auto"), os.environ.get("OPENAI_MODEL", "gpt-4o-mini"), MAX_NEW_TOKENS
    )
    print(f"LLM: {why_llm}", flush=True)
    return AnswerFromDocs(index=build_index(DATA_DIR, CHUNK_WORDS), timeout=600.0)


def load_queries(path: Path | None) -> list[tuple[str, str | None]]:
    """The built-in questions, or one question per non-empty line of ``path`` (no expected source)."""
    if path is None:
        return [(q, f) for q, f in QUESTIONS]
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [(line, None) for line in lines if line and not line.startswith("#")]


async def run_batch(workflow: AnswerFromDocs, queries: list[tuple[str, str | None]], concurrency: int) -> float:
    """Run every query (at most ``concurrency`` at once), printing each as it finishes; returns the wall time."""
    slots = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    hits = 0

    async def one(i: int, query: str, expected: str | None) -> None:
        nonlocal hits
        async with slots:
            started = time.perf_counter()
            result: dict[str, Any] = await workflow.run(query=query)
            latency = time.perf_counter() - started
        latencies.append(latency)
        top = result["sources"][0][0] if result["sources"] else "-"
        mark = ""
        if expected is not None:
            hits += top == expected
            mark = " ok" if top == expected else f" (expected {expected})"
        answer = " ".join(result["answer"].split())[:70]
        print(f"[{len(latencies):>3}/{len(queries)}] {latency:6.2f} s  q{i:02d} {query!r} -> {top}{mark}  {answer!r}")

    started = time.perf_counter()
    await asyncio.gather(*(one(i, q, e) for i, (q, e) in enumerate(queries)))
    wall = time.perf_counter() - started
    checked = sum(e is not None for _, e in queries)
    print(
        f"latency: p50 {statistics.median(latencies):.2f} s, max {max(latencies):.2f} s"
        + (f"; top source as expected for {hits}/{checked}" if checked else "")
    )
    return wall


async def run_all(args: argparse.Namespace, queries: list[tuple[str, str | None]]) -> None:
    connect()
    workflow: AnswerFromDocs | None = None
    index: VectorStoreIndex | None = None
    try:
        index = build_index(args.data, args.chunk_words)
        workflow = AnswerFromDocs(index=index, rerank_model=args.rerank_model, timeout=args.timeout)
        started = time.perf_counter()
        await workflow.run(query=queries[0][0])  # starts the step actors and loads the models once
        print(f"warm-up query: {time.perf_counter() - started:.2f} s (actors started, models loaded)", flush=True)
        wall = await run_batch(workflow, queries, args.concurrency)
        rate = len(queries) / wall
        print(f"{len(queries)} queries in {wall:.2f} s: {rate:.2f} queries/s (concurrency {args.concurrency})")
    finally:
        await shut_down(workflow, index, args.keep_models)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=Path, default=None, help="file with one question per line")
    parser.add_argument("--concurrency", type=int, default=8, help="most runs in flight (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    parser.add_argument("--rerank-model", default=None, help="cross-encoder directory or Hugging Face name")
    parser.add_argument("--llm", choices=["auto", "openai", "local", "none"], default="auto")
    parser.add_argument("--llm-model", default=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"), help="for OpenAI")
    parser.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS, help="for the local LLM")
    parser.add_argument("--chunk-words", type=int, default=CHUNK_WORDS)
    parser.add_argument("--timeout", type=float, default=600.0, help="per run, in seconds")
    parser.add_argument("--keep-models", action="store_true", help="leave the model and LLM actors running")
    args = parser.parse_args(argv)
    if args.concurrency < 1:
        parser.error("--concurrency must be >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    queries = load_queries(args.queries)
    if not queries:
        raise SystemExit(f"no questions in {args.queries}")
    args.rerank_model = check_rerank_model(args.rerank_model)
    Settings.llm, why_llm = choose_llm(args.llm, args.llm_model, args.max_new_tokens)
    print(f"{len(queries)} questions, concurrency {args.concurrency}")
    print(f"LLM: {why_llm}")
    print(f"reranker: {describe_reranker(args.rerank_model)}", flush=True)
    asyncio.run(run_all(args, queries))


if __name__ == "__main__":
    main()
