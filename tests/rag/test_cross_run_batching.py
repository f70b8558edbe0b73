"""Batch RAG's savings, on the shipped MiniLM model: requests of concurrent callers share one model call, a replica
answers inputs it has just computed from its cache, and reranking by cosine reuses the index's stored vectors."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import numpy as np
from passages import TEXTS

from rayflow.rag.batching import MISS, ResultCache
from rayflow.rag.embeddings import DEFAULT_EMBED_MODEL, HuggingFaceEmbedding, load_sentence_transformer
from rayflow.rag.index import VectorStoreIndex
from rayflow.rag.model_pool import ModelPool
from rayflow.rag.rerank import CosineRerank
from rayflow.rag.schema import NodeWithScore, TextNode

CALLERS = [
    ["How do I rotate an API key?", "Keys are rotated from the admin console."],
    ["Where are rate limits configured?"],
    ["What does a 429 status mean?", "Too many requests: slow down.", "Retry after the Retry-After header."],
    ["Which port serves Prometheus metrics?"],
]
ENCODE = {"batch_size": 64, "normalize_embeddings": True, "convert_to_numpy": True, "show_progress_bar": False}


def _counters(pool: ModelPool) -> dict[str, Any]:
    (info,) = pool.replica_info()
    return info


def test_result_cache_keeps_the_latest_rows_per_key_and_skips_unhashable_inputs() -> None:
    cache = ResultCache(capacity=2)
    cache.store("k", ["a", "b"], [1, 2])
    assert cache.lookup("k", ["a", "b", "c"]) == [1, 2, MISS]
    assert cache.lookup("other", ["a"]) == [MISS]  # another method or kwargs: another result
    cache.store("k", ["c"], [3])  # the lookup used "a" before "b": "a" is the least recently used
    assert cache.lookup("k", ["a", "b", "c"]) == [MISS, 2, 3]
    cache.store("k", [["a list"]], [4])
    assert cache.lookup("k", [["a list"]]) == [MISS] and len(cache) == 2
    assert ResultCache(capacity=0).lookup("k", ["a"]) == [MISS]


async def test_concurrent_callers_share_one_model_call_and_get_their_own_rows_in_order(rag_env: None) -> None:
    # max_batch is exactly everything the callers send and the wait is huge: the batch runs because it is full,
    # so one model call is exact, not a timing; no cache, so every text reaches the model.
    total = sum(len(texts) for texts in CALLERS)
    loader = partial(load_sentence_transformer, DEFAULT_EMBED_MODEL)
    pool = ModelPool.get_or_create(
        kind="embed-merge-test", model=DEFAULT_EMBED_MODEL, loader=loader, method="encode", max_batch=total,
        max_wait_ms=60_000.0, cache_items=0,
    )  # fmt: skip
    before = _counters(pool)
    merged = await asyncio.gather(*(pool.acall(texts, **ENCODE) for texts in CALLERS))
    after = _counters(pool)
    assert after["batches"] - before["batches"] == 1
    assert after["queued"] - before["queued"] == len(CALLERS)
    assert after["items"] - before["items"] == total

    # Each caller's rows are its own texts' vectors, in its order: those of the same texts in one call.
    flat = await pool.acall([t for texts in CALLERS for t in texts], **ENCODE)
    offset = 0
    for texts, rows in zip(CALLERS, merged, strict=True):
        np.testing.assert_allclose(rows, flat[offset : offset + len(texts)], atol=1e-5)
        offset += len(texts)
    pool.shutdown()


async def test_cosine_rerank_embeds_only_what_the_index_does_not_hold(rag_env: None) -> None:
    embed = HuggingFaceEmbedding()
    index = VectorStoreIndex([TextNode(text=t) for t in TEXTS], embed_model=embed)
    query = "Where are API rate limits set?"
    hits = await index.as_retriever(similarity_top_k=4).aretrieve(query)
    assert all(h.node.embedding is not None and h.node.embedding_model == embed.space for h in hits)

    reranker = CosineRerank(embed_model=embed, top_n=3)
    before = _counters(embed.pool)
    kept = await reranker.apostprocess_nodes(hits, query_str=query)
    after = _counters(embed.pool)
    # No text reaches the model: node vectors come from the index, the query's from the replica's cache.
    assert after["items"] - before["items"] == 0
    assert after["cache_hits"] - before["cache_hits"] == 1

    # Nodes without a stored vector go to the pool, which has embedded these texts (for the index) and answers
    # them from its cache; the scores are the same.
    bare = [NodeWithScore(TextNode(text=h.node.text), h.score) for h in hits]
    again = await reranker.apostprocess_nodes(bare, query_str=query)
    now = _counters(embed.pool)
    assert now["items"] - after["items"] == 0
    assert now["cache_hits"] - after["cache_hits"] == len(hits) + 1
    assert [n.text for n in again] == [n.text for n in kept]
    np.testing.assert_allclose([n.score for n in again], [n.score for n in kept], atol=1e-5)

    # A reranker with another embedding space never takes the index's vectors for its own: it embeds the texts.
    other = HuggingFaceEmbedding(text_instruction="passage: ")
    assert other.space != embed.space
    before = _counters(embed.pool)  # the same model: the same pool
    await CosineRerank(embed_model=other, top_n=3).apostprocess_nodes(hits, query_str=query)
    # (+ 1: the query, which this model embeds with its text instruction too.)
    assert _counters(embed.pool)["items"] - before["items"] == len(hits) + 1
    index.close()
