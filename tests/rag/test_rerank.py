"""Rerankers against real models: a cross-encoder made from the shipped MiniLM weights (fresh scoring head,
saved to a temporary directory and loaded by path) and the shipped MiniLM embedding model for CosineRerank."""

from __future__ import annotations

import asyncio
import pickle

import pytest
from cross_encoders import save_cross_encoder
from passages import TEXTS

from rayflow.rag.llm_types import ModelNotAvailableError
from rayflow.rag.rerank import CosineRerank, SentenceTransformerRerank
from rayflow.rag.schema import NodeWithScore, TextNode

QUERY = "Where are API rate limits set, and how is a change applied?"


@pytest.fixture(scope="module")
def cross_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real CrossEncoder (MiniLM body, untrained scoring head) saved to disk, like a user's own model."""
    return save_cross_encoder(tmp_path_factory.mktemp("cross-encoder"))


def _nodes() -> list[NodeWithScore]:
    return [NodeWithScore(TextNode(text=t, metadata={"i": i}), score=1.0 - i / 10) for i, t in enumerate(TEXTS)]


def test_cross_encoder_scores_match_a_direct_predict(rag_env: None, cross_encoder_dir: str) -> None:
    from sentence_transformers import CrossEncoder

    nodes = _nodes()
    rerank = SentenceTransformerRerank(model=cross_encoder_dir, top_n=4)
    reranked = rerank.postprocess_nodes(nodes, query_str=QUERY)

    direct = CrossEncoder(cross_encoder_dir).predict([(QUERY, t) for t in TEXTS])
    expected = sorted(((float(s), t) for s, t in zip(direct, TEXTS, strict=True)), reverse=True)[:4]
    assert len(reranked) == 4
    assert [n.text for n in reranked] == [t for _, t in expected]
    assert [n.score for n in reranked] == pytest.approx([s for s, _ in expected], abs=1e-5)
    assert [n.get_score() for n in reranked] == sorted((n.get_score() for n in reranked), reverse=True)
    assert [n.score for n in nodes] == [1.0 - i / 10 for i in range(len(TEXTS))], "input nodes were modified"


def test_rebuilding_the_reranker_reuses_the_running_pool(rag_env: None, cross_encoder_dir: str) -> None:
    import ray

    first = SentenceTransformerRerank(model=cross_encoder_dir, top_n=2)
    first.postprocess_nodes(_nodes(), query_str=QUERY)
    loads = first.pool().replica_info()

    again = pickle.loads(pickle.dumps(SentenceTransformerRerank(model=cross_encoder_dir, top_n=2)))
    again.postprocess_nodes(_nodes(), query_str="bananas")
    info = again.pool().replica_info()
    assert [i["pid"] for i in info] == [i["pid"] for i in loads], "a second reranker started new replicas"
    assert info[0]["load_s"] == loads[0]["load_s"]
    assert info[0]["batches"] > loads[0]["batches"]
    rerank_actors = [n for n in ray.util.list_named_actors() if n.startswith("rayflow.model.rerank.")]
    assert len(rerank_actors) == 1


def test_concurrent_async_callers_agree_and_share_batches(rag_env: None, cross_encoder_dir: str) -> None:
    rerank = SentenceTransformerRerank(model=cross_encoder_dir, top_n=3, keep_retrieval_score=True)
    query = f"{QUERY} (asked by 8 callers at once)"  # pairs no other test has scored: not in the replica's cache

    async def many() -> list[list[NodeWithScore]]:
        return await asyncio.gather(*(rerank.apostprocess_nodes(_nodes(), query_str=query) for _ in range(8)))

    before = rerank.pool().replica_info()[0]
    results = asyncio.run(many())
    after = rerank.pool().replica_info()[0]
    sync = rerank.postprocess_nodes(_nodes(), query_str=query)
    for result in results:
        assert [n.text for n in result] == [n.text for n in sync]
        assert [n.score for n in result] == pytest.approx([n.score for n in sync], abs=1e-5)
    # Each pair was scored by the model, or answered from the cache once a batch holding it had run.
    assert (after["items"] - before["items"]) + (after["cache_hits"] - before["cache_hits"]) == 8 * len(TEXTS)
    assert after["batches"] - before["batches"] < 8, "concurrent calls were not batched together"
    assert all("retrieval_score" in n.metadata for n in sync)
    assert {n.metadata["retrieval_score"] for n in sync} <= {1.0 - i / 10 for i in range(len(TEXTS))}


def test_top_n_larger_than_the_list_and_empty_input(rag_env: None, cross_encoder_dir: str) -> None:
    rerank = SentenceTransformerRerank(model=cross_encoder_dir, top_n=50)
    assert len(rerank.postprocess_nodes(_nodes(), query_str=QUERY)) == len(TEXTS)
    assert rerank.postprocess_nodes([], query_str=QUERY) == []
    with pytest.raises(ValueError, match="query_str"):
        rerank.postprocess_nodes(_nodes())


def test_a_model_missing_offline_says_how_to_provide_one() -> None:
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache("cross-encoder/ms-marco-MiniLM-L-2-v2", "config.json"), str):
        pytest.skip("this machine has the hub model cached")
    with pytest.raises(ModelNotAvailableError, match="not available offline") as err:
        SentenceTransformerRerank(model="cross-encoder/ms-marco-MiniLM-L-2-v2").postprocess_nodes(
            _nodes(), query_str=QUERY
        )
    assert "CosineRerank" in str(err.value) and "local directory" in str(err.value)
    with pytest.raises(ModelNotAvailableError, match="no such directory"):
        SentenceTransformerRerank(model="/nonexistent/x").postprocess_nodes(_nodes(), query_str=QUERY)


def test_cosine_rerank_orders_by_exact_cosine(rag_env: None) -> None:
    import numpy as np

    from rayflow.rag.embeddings import HuggingFaceEmbedding

    embed = HuggingFaceEmbedding()
    nodes = _nodes()
    reranked = CosineRerank(embed_model=embed, top_n=3).postprocess_nodes(nodes, query_str=QUERY)

    q = np.asarray(embed.get_query_embedding(QUERY))
    vectors = np.asarray(embed.get_text_embedding_batch(TEXTS))
    cosine = vectors @ q / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(q))
    best = np.argsort(-cosine)[:3]
    assert [n.text for n in reranked] == [TEXTS[i] for i in best]
    assert [n.score for n in reranked] == pytest.approx([float(cosine[i]) for i in best], abs=1e-5)
    assert "rate" in reranked[0].text.lower()

    again = asyncio.run(CosineRerank(embed_model=embed, top_n=3).apostprocess_nodes(nodes, query_str=QUERY))
    assert [n.text for n in again] == [n.text for n in reranked]
    assert pickle.loads(pickle.dumps(CosineRerank(embed_model=embed))).top_n == 2
