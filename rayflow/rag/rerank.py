"""Rerankers: re-score retrieved nodes against the query and keep the best ``top_n``.

Where it sits: retrieve -> **rerank** -> synthesize. :class:`SentenceTransformerRerank` scores (query, node
text) pairs with a cross-encoder that runs in a shared, batched :class:`~rayflow.rag.model_pool.ModelPool`
replica (on a GPU when ``num_gpus > 0``): building the reranker is free, and building it again with the same
model, in any step actor or run, reuses the running replicas instead of loading the model again.
:class:`CosineRerank` re-scores by exact cosine similarity with the embedding model, which ships offline; no
trained cross-encoder does. Both return new ``NodeWithScore`` objects sorted by the new score (highest
first); the input is not modified.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import threading
from collections.abc import Sequence
from typing import Any

from rayflow.rag.llm_types import ModelNotAvailableError
from rayflow.rag.schema import NodeWithScore

__all__ = ["CosineRerank", "SentenceTransformerRerank", "resolve_cross_encoder"]

_HOW_TO = (
    "pass a local directory instead (one saved with sentence_transformers.CrossEncoder(...).save(dir)), "
    "download it into the Hugging Face cache on a machine with internet "
    "(`huggingface-cli download {model}`), "
    "or use rayflow.rag.CosineRerank(top_n=...), which re-scores with the embedding model that ships offline"
)
_resolved: dict[str, str] = {}
_resolved_lock = threading.Lock()


def resolve_cross_encoder(model: str) -> str:
    """What a replica should load for ``model``: an absolute path for a local directory, else the hub name.

    A hub name must be in the local Hugging Face cache, or reachable when not offline (``HF_HUB_OFFLINE``);
    otherwise :class:`ModelNotAvailableError` says how to provide one. Checked once per process and model.
    """
    with _resolved_lock:
        if model in _resolved:
            return _resolved[model]
    path = os.path.expanduser(model)
    if os.path.isdir(path):
        source = os.path.abspath(path)
    elif path.startswith(("/", ".", "~")) or os.path.exists(path):
        raise ModelNotAvailableError(
            f"cross-encoder model {model!r}: no such directory; " + _HOW_TO.format(model=model)
        )
    else:
        _check_hub_model(model)
        source = model
    with _resolved_lock:
        _resolved[model] = source
    return source


def _check_hub_model(model: str) -> None:
    from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(model, "config.json"), str):
        return
    where = f"not a local directory and not in the Hugging Face cache ({constants.HF_HUB_CACHE})"
    if constants.HF_HUB_OFFLINE:
        raise ModelNotAvailableError(
            f"cross-encoder model {model!r} is not available offline: {where}, and HF_HUB_OFFLINE is set; "
            + _HOW_TO.format(model=model)
        )
    try:
        hf_hub_download(model, "config.json")
    except Exception as err:
        raise ModelNotAvailableError(
            f"cross-encoder model {model!r} is not available: {where}, and fetching it failed ({err}); "
            + _HOW_TO.format(model=model)
        ) from err


class _CrossEncoderScorer:
    """Lives in a ModelPool replica: one CrossEncoder, scoring whole batches of (query, text) pairs."""

    def __init__(self, source: str, device: str, batch_size: int) -> None:
        import torch
        from sentence_transformers import CrossEncoder

        if device == "cuda" and not torch.cuda.is_available():
            device = "cpu"  # a GPU declared to Ray but not visible to torch (e.g. a logical resource)
        self.batch_size = batch_size
        self.model = CrossEncoder(source, device=device)
        self.device = self.model.device  # reported by the pool's replica_info()

    def score(self, pairs: list[tuple[str, str]]) -> list[float]:
        scores = self.model.predict(
            [tuple(p) for p in pairs],
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        return [float(s) for s in scores.reshape(len(pairs), -1)[:, 0]]


def _query_text(query_bundle: Any, query_str: str | None, who: str) -> str:
    if query_str is not None:
        return query_str
    if isinstance(query_bundle, str):
        return query_bundle
    text = getattr(query_bundle, "query_str", None)
    if text is None:
        raise ValueError(f"{who}.postprocess_nodes needs the query: pass query_str=... (or query_bundle=...)")
    return str(text)


def _ranked(
    nodes: Sequence[NodeWithScore], scores: Sequence[float], top_n: int, keep_retrieval_score: bool
) -> list[NodeWithScore]:
    out = []
    for n, s in zip(nodes, scores, strict=True):
        node = n.node
        if keep_retrieval_score:
            node = dataclasses.replace(node, metadata={**node.metadata, "retrieval_score": n.score})
        out.append(NodeWithScore(node=node, score=float(s)))
    out.sort(key=lambda n: n.get_score(), reverse=True)  # stable: equal scores keep retrieval order
    return out[:top_n]


class _Rerank:
    """The shared shape of a reranker; subclasses provide ``_score``/``_ascore`` over node texts."""

    top_n: int
    keep_retrieval_score: bool

    def postprocess_nodes(
        self, nodes: Sequence[NodeWithScore], query_bundle: Any = None, query_str: str | None = None
    ) -> list[NodeWithScore]:
        """The ``top_n`` nodes by new score, highest first (blocking)."""
        if not nodes:
            return []
        query = _query_text(query_bundle, query_str, type(self).__name__)
        scores = self._score(query, nodes)
        return _ranked(nodes, scores, self.top_n, self.keep_retrieval_score)

    async def apostprocess_nodes(
        self, nodes: Sequence[NodeWithScore], query_bundle: Any = None, query_str: str | None = None
    ) -> list[NodeWithScore]:
        """The ``top_n`` nodes by new score, highest first."""
        if not nodes:
            return []
        query = _query_text(query_bundle, query_str, type(self).__name__)
        scores = await self._ascore(query, nodes)
        return _ranked(nodes, scores, self.top_n, self.keep_retrieval_score)

    def _score(self, query: str, nodes: Sequence[NodeWithScore]) -> list[float]:
        raise NotImplementedError

    async def _ascore(self, query: str, nodes: Sequence[NodeWithScore]) -> list[float]:
        raise NotImplementedError


class SentenceTransformerRerank(_Rerank):
    """Cross-encoder reranking (LlamaIndex's ``SentenceTransformerRerank``), batched in a shared model pool.

    ``model`` is a Hugging Face name (must be cached locally when offline) or a local directory. Pairs from
    concurrent callers are batched together up to ``batch_size``. The pool's replicas are named actors shared
    by every process; ``rayflow.rag.model_pool.shutdown_model_pools()`` stops them.
    """

    def __init__(
        self,
        model: str = "cross-encoder/ms-marco-MiniLM-L-2-v2",
        top_n: int = 2,
        num_gpus: float = 0.0,
        num_replicas: int = 1,
        batch_size: int = 32,
        keep_retrieval_score: bool = False,
    ) -> None:
        if top_n < 1:
            raise ValueError(f"SentenceTransformerRerank(top_n=...) must be >= 1, got {top_n}")
        self.model = model
        self.top_n = top_n
        self.num_gpus = num_gpus
        self.num_replicas = num_replicas
        self.batch_size = batch_size
        self.keep_retrieval_score = keep_retrieval_score

    def __repr__(self) -> str:
        return f"SentenceTransformerRerank(model={self.model!r}, top_n={self.top_n})"

    def pool(self) -> Any:
        """The ModelPool of this model: a per-process client of replicas started by the first caller."""
        from rayflow.rag.model_pool import ModelPool

        source = resolve_cross_encoder(self.model)
        device = "cuda" if self.num_gpus > 0 else "cpu"
        return ModelPool.get_or_create(
            kind="rerank",
            model=source,
            loader=functools.partial(_CrossEncoderScorer, source, device, self.batch_size),
            method="score",
            num_gpus=self.num_gpus,
            num_replicas=self.num_replicas,
            max_batch=self.batch_size,
        )

    def _score(self, query: str, nodes: Sequence[NodeWithScore]) -> list[float]:
        return list(self.pool().call([(query, n.get_content()) for n in nodes]))

    async def _ascore(self, query: str, nodes: Sequence[NodeWithScore]) -> list[float]:
        return list(await self.pool().acall([(query, n.get_content()) for n in nodes]))


class CosineRerank(_Rerank):
    """Re-scores nodes by exact cosine similarity between the query and each node's vector.

    ``embed_model`` defaults to ``Settings.embed_model`` (the MiniLM model that ships offline). Use it where
    no cross-encoder is available; it corrects approximate index scores and scores nodes from other sources.
    A node retrieved from a ``VectorStoreIndex`` carries the index's vector for it; when that vector is in
    ``embed_model``'s space (``node.embedding_model == embed_model.space``) it is used as is, and only the other
    nodes' texts are embedded. The query is embedded through the model pool, which answers a text it embedded
    recently (the retriever's query) from its cache.
    """

    def __init__(self, embed_model: Any = None, top_n: int = 2, keep_retrieval_score: bool = False) -> None:
        if top_n < 1:
            raise ValueError(f"CosineRerank(top_n=...) must be >= 1, got {top_n}")
        self.embed_model = embed_model
        self.top_n = top_n
        self.keep_retrieval_score = keep_retrieval_score

    def __repr__(self) -> str:
        return f"CosineRerank(embed_model={self.embed_model!r}, top_n={self.top_n})"

    def _embedder(self) -> Any:
        if self.embed_model is not None:
            return self.embed_model
        from rayflow.rag.settings import Settings

        return Settings.embed_model

    def _score(self, query: str, nodes: Sequence[NodeWithScore]) -> list[float]:
        model = self._embedder()
        stored, missing = _stored_vectors(model, nodes)
        texts = [nodes[i].get_content() for i in missing]
        vectors = model.get_text_embedding_batch(texts) if texts else []
        return _cosine(model.get_query_embedding(query), _filled(stored, missing, vectors))

    async def _ascore(self, query: str, nodes: Sequence[NodeWithScore]) -> list[float]:
        model = self._embedder()
        stored, missing = _stored_vectors(model, nodes)
        texts = [nodes[i].get_content() for i in missing]
        if texts:  # both requests at once: the model pool runs them in one batch
            q, vectors = await asyncio.gather(model.aget_query_embedding(query), model.aget_text_embedding_batch(texts))
        else:
            q, vectors = await model.aget_query_embedding(query), []
        return _cosine(q, _filled(stored, missing, vectors))


def _stored_vectors(model: Any, nodes: Sequence[NodeWithScore]) -> tuple[list[Any], list[int]]:
    """Each node's stored vector when it is in ``model``'s space, else None; and the positions of the Nones."""
    space = getattr(model, "space", None)
    stored = [
        n.node.embedding if space is not None and n.node.embedding_model == space else None
        for n in nodes
    ]  # fmt: skip
    return stored, [i for i, v in enumerate(stored) if v is None]


def _filled(stored: list[Any], missing: list[int], vectors: Sequence[Any]) -> list[Any]:
    out = list(stored)
    for i, vector in zip(missing, vectors, strict=True):
        out[i] = vector
    return out


def _cosine(query: Sequence[float], vectors: Sequence[Any]) -> list[float]:
    import numpy as np

    q = np.asarray(query, dtype=np.float64)
    m = np.asarray(vectors, dtype=np.float64).reshape(len(vectors), -1)
    norms = np.linalg.norm(m, axis=1) * np.linalg.norm(q)
    sims = (m @ q) / np.where(norms == 0, 1.0, norms)
    return [float(s) for s in sims]
