"""rayflow's RAG toolkit: readers, splitters, embeddings, vector index, rerankers, LLM clients and ``Settings``.

``from rayflow.rag import VectorStoreIndex, SimpleDirectoryReader, Settings, OpenAI, OpenAIEmbedding,
SentenceTransformerRerank`` replaces the tutorial's imports from ``llama_index.core``, ``llama_index.llms.openai``,
``llama_index.embeddings.openai`` and ``llama_index.core.postprocessor``. Names are loaded on first use (PEP 562),
so ``import rayflow.rag`` imports neither torch nor faiss.

Data flow: ``SimpleDirectoryReader`` -> ``Document`` -> ``SentenceSplitter`` -> ``TextNode`` -> embedding model
(``ModelPool`` actors) -> ``VectorStoreIndex`` (faiss, shared through an index server actor) -> retriever ->
``NodeWithScore`` -> reranker -> LLM.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rayflow.rag.embeddings import (
        BaseEmbedding,
        HuggingFaceEmbedding,
        OpenAIEmbedding,
        SentenceTransformerEmbedding,
        resolve_embed_model,
    )
    from rayflow.rag.index import (
        StorageContext,
        VectorIndexRetriever,
        VectorStoreIndex,
        load_index_from_storage,
    )
    from rayflow.rag.llms import (
        ChatMessage,
        ChatResponse,
        CompletionResponse,
        LLMError,
        LLMTimeoutError,
        LocalLLM,
        MessageRole,
        ModelNotAvailableError,
        OpenAI,
        shutdown_llms,
    )
    from rayflow.rag.model_pool import ModelPool, shutdown_model_pools
    from rayflow.rag.readers import SimpleDirectoryReader
    from rayflow.rag.rerank import CosineRerank, SentenceTransformerRerank
    from rayflow.rag.schema import Document, NodeWithScore, TextNode
    from rayflow.rag.settings import Settings
    from rayflow.rag.splitter import SentenceSplitter

_EXPORTS: dict[str, str] = {
    "BaseEmbedding": "rayflow.rag.embeddings",
    "ChatMessage": "rayflow.rag.llms",
    "ChatResponse": "rayflow.rag.llms",
    "CompletionResponse": "rayflow.rag.llms",
    "CosineRerank": "rayflow.rag.rerank",
    "Document": "rayflow.rag.schema",
    "HuggingFaceEmbedding": "rayflow.rag.embeddings",
    "LLMError": "rayflow.rag.llms",
    "LLMTimeoutError": "rayflow.rag.llms",
    "LocalLLM": "rayflow.rag.llms",
    "MessageRole": "rayflow.rag.llms",
    "ModelNotAvailableError": "rayflow.rag.llms",
    "ModelPool": "rayflow.rag.model_pool",
    "NodeWithScore": "rayflow.rag.schema",
    "OpenAI": "rayflow.rag.llms",
    "OpenAIEmbedding": "rayflow.rag.embeddings",
    "SentenceSplitter": "rayflow.rag.splitter",
    "SentenceTransformerEmbedding": "rayflow.rag.embeddings",
    "SentenceTransformerRerank": "rayflow.rag.rerank",
    "Settings": "rayflow.rag.settings",
    "SimpleDirectoryReader": "rayflow.rag.readers",
    "StorageContext": "rayflow.rag.index",
    "TextNode": "rayflow.rag.schema",
    "VectorIndexRetriever": "rayflow.rag.index",
    "VectorStoreIndex": "rayflow.rag.index",
    "load_index_from_storage": "rayflow.rag.index",
    "resolve_embed_model": "rayflow.rag.embeddings",
    "shutdown_llms": "rayflow.rag.llms",
    "shutdown_model_pools": "rayflow.rag.model_pool",
}

# A literal list, so linters and type checkers see the names; tests/rag/test_public_api.py keeps it equal to
# _EXPORTS.
__all__ = [
    "BaseEmbedding",
    "ChatMessage",
    "ChatResponse",
    "CompletionResponse",
    "CosineRerank",
    "Document",
    "HuggingFaceEmbedding",
    "LLMError",
    "LLMTimeoutError",
    "LocalLLM",
    "MessageRole",
    "ModelNotAvailableError",
    "ModelPool",
    "NodeWithScore",
    "OpenAI",
    "OpenAIEmbedding",
    "SentenceSplitter",
    "SentenceTransformerEmbedding",
    "SentenceTransformerRerank",
    "Settings",
    "SimpleDirectoryReader",
    "StorageContext",
    "TextNode",
    "VectorIndexRetriever",
    "VectorStoreIndex",
    "load_index_from_storage",
    "resolve_embed_model",
    "shutdown_llms",
    "shutdown_model_pools",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rayflow.rag' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
