"""VectorStoreIndex end to end on the sample documents: the tutorial's question, equality with a direct faiss search,
HNSW, inserts, persistence without pickle, and sharing through the index server (pickled into Ray workers)."""

from __future__ import annotations

import asyncio
import gc
import json
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray
from openai_server import OpenAIServer, hashed_embedding

from rayflow.rag import (
    Document,
    OpenAIEmbedding,
    SentenceSplitter,
    SimpleDirectoryReader,
    StorageContext,
    VectorStoreIndex,
    load_index_from_storage,
)
from rayflow.rag.embeddings import default_model_path
from rayflow.rag.vector_store import VectorIndexError

# Ray workers cannot import this test module: ship its functions and classes by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

DATA = Path(__file__).resolve().parents[2] / "examples" / "data"
QUESTION = "Where are API rate limits set, and how is a change applied?"
QUERIES = [QUESTION, "Which metrics does the gateway export?", "How much does the Team plan cost?", "HTTP 502"]


@pytest.fixture(scope="module")
def documents() -> list[Document]:
    return SimpleDirectoryReader(str(DATA)).load_data()


def _small_chunks() -> SentenceSplitter:
    return SentenceSplitter(chunk_size=40, chunk_overlap=8)


def _ids(hits: list[Any]) -> list[str]:
    return [h.node_id for h in hits]


@pytest.mark.slow  # ~6 s; the streaming RAG example's test retrieves the same document by default
def test_a_rate_limits_question_finds_the_rate_limits_document(rag_env: None, documents: list[Document]) -> None:
    index = VectorStoreIndex.from_documents(documents)
    hits = index.as_retriever(similarity_top_k=3).retrieve(QUESTION)
    assert hits[0].metadata["file_name"] == "rate_limits.md"
    assert hits[0].score is not None and hits[0].score > hits[1].get_score()
    assert "gateway.yaml" in hits[0].get_content()
    async_hits = asyncio.run(index.as_retriever(similarity_top_k=3).aretrieve(QUESTION))
    assert _ids(async_hits) == _ids(hits)
    assert len(index.as_retriever(similarity_top_k=100).retrieve(QUESTION)) == len(index)


def test_retrieval_equals_a_direct_faiss_search_with_the_same_model(rag_env: None, documents: list[Document]) -> None:
    import faiss
    from sentence_transformers import SentenceTransformer

    index = VectorStoreIndex.from_documents(documents, transformations=[_small_chunks()])
    nodes = _small_chunks().get_nodes_from_documents(documents)
    assert len(index) == len(nodes) > 20
    direct = SentenceTransformer(default_model_path(), device="cpu")
    flat = faiss.IndexFlatIP(384)
    flat.add(direct.encode([n.text for n in nodes], normalize_embeddings=True))
    for query in QUERIES:
        scores, rows = flat.search(direct.encode([query], normalize_embeddings=True), 5)
        hits = index.as_retriever(similarity_top_k=5).retrieve(query)
        assert [h.text for h in hits] == [nodes[r].text for r in rows[0]]
        np.testing.assert_allclose([h.score for h in hits], scores[0], atol=1e-4)


def test_hnsw_index_finds_the_same_neighbours_here(rag_env: None, documents: list[Document]) -> None:
    flat = VectorStoreIndex.from_documents(documents, transformations=[_small_chunks()])
    hnsw = VectorStoreIndex(list(flat._store.nodes), index_type="hnsw")  # type: ignore[union-attr]
    for query in QUERIES:
        assert _ids(hnsw.as_retriever(similarity_top_k=4).retrieve(query)) == _ids(
            flat.as_retriever(similarity_top_k=4).retrieve(query)
        )
    with pytest.raises(VectorIndexError, match="index_type must be one of"):
        VectorStoreIndex(index_type="ivf")


def test_documents_and_nodes_can_be_inserted_later(rag_env: None, documents: list[Document]) -> None:
    others = [d for d in documents if d.metadata["file_name"] != "rate_limits.md"]
    index = VectorStoreIndex.from_documents(others)
    assert index.as_retriever(similarity_top_k=1).retrieve(QUESTION)[0].metadata["file_name"] != "rate_limits.md"
    index.insert(next(d for d in documents if d.metadata["file_name"] == "rate_limits.md"))
    assert index.as_retriever(similarity_top_k=1).retrieve(QUESTION)[0].metadata["file_name"] == "rate_limits.md"
    empty = VectorStoreIndex([])
    assert empty.as_retriever().retrieve("anything") == []


def test_persist_and_load_round_trip_without_pickle(rag_env: None, documents: list[Document], tmp_path: Path) -> None:
    index = VectorStoreIndex.from_documents(documents)
    index.storage_context.persist(persist_dir=str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.json", "nodes.json", "vectors.faiss"]
    saved = json.loads((tmp_path / "nodes.json").read_text())
    assert len(saved) == len(index) and saved[0]["metadata"]["file_name"]
    loaded = load_index_from_storage(StorageContext.from_defaults(persist_dir=str(tmp_path)))
    for query in QUERIES:
        expected = index.as_retriever(similarity_top_k=3).retrieve(query)
        got = loaded.as_retriever(similarity_top_k=3).retrieve(query)
        assert _ids(got) == _ids(expected) and got[0].metadata == expected[0].metadata
    with pytest.raises(VectorIndexError, match="no readable rayflow index"):
        VectorStoreIndex.load(str(tmp_path / "missing"))


@ray.remote
def _retrieve_in_worker(index: VectorStoreIndex, query: str) -> tuple[list[str], str | None]:
    return _ids(index.as_retriever(similarity_top_k=3).retrieve(query)), index.server_name


@ray.remote
class _StepLike:
    """Stands for a step actor holding the workflow's ``self.index``."""

    def __init__(self, index: VectorStoreIndex) -> None:
        self.index = index

    async def retrieve(self, query: str) -> list[str]:
        return _ids(await self.index.as_retriever(similarity_top_k=3).aretrieve(query))

    def insert(self, text: str) -> int:
        self.index.insert(Document(text=text, metadata={"file_name": "added-in-actor"}))
        return len(self.index)


def test_pickling_an_index_hands_over_a_shared_server(rag_env: None, documents: list[Document]) -> None:
    index = VectorStoreIndex.from_documents(documents)
    expected = {q: _ids(index.as_retriever(similarity_top_k=3).retrieve(q)) for q in QUERIES}
    assert len(pickle.dumps(index)) < 20_000  # a reference, not the vectors and texts
    name = index.server_name
    assert name is not None and name in ray.util.list_named_actors()
    ids, seen_name = ray.get(_retrieve_in_worker.remote(index, QUESTION))
    assert ids == expected[QUESTION] and seen_name == name
    step = _StepLike.remote(index)
    for query in QUERIES:
        assert ray.get(step.retrieve.remote(query)) == expected[query]
        assert _ids(index.as_retriever(similarity_top_k=3).retrieve(query)) == expected[query]
    count = len(index)
    assert ray.get(step.insert.remote("Zebra crossings are painted white.")) == count + 1
    assert index.as_retriever(similarity_top_k=1).retrieve("zebra crossing")[0].text.startswith("Zebra")
    ray.kill(step)
    index.close()  # brings the rows (with the actor's insert) back, stops the server
    assert index.server_name is None and name not in ray.util.list_named_actors()
    assert len(index) == count + 1
    assert _ids(index.as_retriever(similarity_top_k=3).retrieve(QUESTION)) == expected[QUESTION]


def test_a_sharded_server_returns_the_unsharded_top_k(rag_env: None, documents: list[Document]) -> None:
    index = VectorStoreIndex.from_documents(documents, transformations=[_small_chunks()])
    expected = {q: _ids(index.as_retriever(similarity_top_k=5).retrieve(q)) for q in QUERIES}
    sharded = VectorStoreIndex(list(index._store.nodes), num_shards=2).serve()  # type: ignore[union-attr]
    shards = [n for n in ray.util.list_named_actors() if n.startswith(f"{sharded.server_name}.shard.")]
    assert len(shards) == 2
    for query in QUERIES:
        assert _ids(sharded.as_retriever(similarity_top_k=5).retrieve(query)) == expected[query]
        assert ray.get(_retrieve_in_worker.remote(sharded, query))[0] == expected[query][:3]
    sharded.close()
    assert not [n for n in ray.util.list_named_actors() if n.startswith("rayflow.index.")]
    assert _ids(sharded.as_retriever(similarity_top_k=5).retrieve(QUERIES[1])) == expected[QUERIES[1]]


def test_a_served_index_that_is_garbage_collected_stops_its_server(rag_env: None) -> None:
    index = VectorStoreIndex([], embed_model=None).serve()
    name = index.server_name
    assert name in ray.util.list_named_actors()
    del index
    gc.collect()
    assert name not in ray.util.list_named_actors()


def test_settings_embed_model_is_used_and_a_wrong_model_is_refused(
    rag_env: None, openai_server: OpenAIServer, documents: list[Document]
) -> None:
    from rayflow.rag.settings import Settings

    Settings.embed_model = OpenAIEmbedding(api_base=openai_server.base_url)
    try:
        index = VectorStoreIndex.from_documents(documents)
    finally:
        Settings.embed_model = None
    assert openai_server.paths() and set(openai_server.paths()) == {"/v1/embeddings"}
    query = hashed_embedding(QUESTION)
    best = max(index._store.nodes, key=lambda n: float(np.dot(hashed_embedding(n.text), query)))  # type: ignore[union-attr]
    assert _ids(index.as_retriever(similarity_top_k=1).retrieve(QUESTION)) == [best.node_id]
    minilm = VectorStoreIndex.from_documents(documents[:2])
    with pytest.raises(VectorIndexError, match=r"dimension 64 but the index holds 384-dimensional"):
        minilm.search(np.ones(64, dtype=np.float32), 2)
