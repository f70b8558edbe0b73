"""The vector index of the RAG half: documents -> nodes -> embeddings -> faiss, and queries -> scored nodes.

``VectorStoreIndex`` follows LlamaIndex's calls (``from_documents``, ``insert``, ``as_retriever``,
``storage_context.persist``, ``load_index_from_storage``). What is rayflow's own is how it travels:

* **Pickling an index hands over a reference, not a copy.** The first time an index is pickled (for example as an
  attribute of a Workflow shipped to every step actor), or when ``serve()`` is called, its vectors and nodes move
  into ONE index server actor ``rayflow.index.<id>`` (split over ``num_shards`` shard actors if asked). Every copy,
  the original included, then searches and inserts through that actor, so all of them see the same data and
  no step actor holds the vectors. Query embedding still happens in the caller, through the shared embedding pool.
* The server belongs to the process that served the index and ends with it; ``close()`` on the original brings the
  data back into the process and stops the server (``close()`` on a copy does nothing). An original that is garbage
  collected stops its server too. To keep an index across processes, ``persist()`` it.
* Storage is ``vectors.faiss`` (``faiss.write_index``), ``nodes.json`` and ``index.json``: never pickle.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
import warnings
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rayflow.rag.schema import Document, NodeWithScore, TextNode
from rayflow.rag.vector_store import (
    INDEX_ACTOR_PREFIX,
    IndexServerClient,
    VectorIndexError,
    VectorStore,
    stop_index_server,
)

__all__ = [
    "StorageContext",
    "VectorIndexError",
    "VectorIndexRetriever",
    "VectorStoreIndex",
    "load_index_from_storage",
]

_FORMAT_VERSION = 1
_VECTORS_FILE, _NODES_FILE, _META_FILE = "vectors.faiss", "nodes.json", "index.json"


def _default_embed_model() -> Any:
    """``Settings.embed_model`` (the bundled MiniLM when none is set)."""
    from rayflow.rag.embeddings import resolve_embed_model
    from rayflow.rag.settings import Settings

    return resolve_embed_model(getattr(Settings, "embed_model", None))


class VectorStoreIndex:
    """Nodes and their embeddings, searchable by cosine similarity (see the module docstring for sharing).

    ``embed_model``: an embedding object, a model name, ``"local"``, or None for ``Settings.embed_model`` (the
    bundled all-MiniLM-L6-v2 when nothing is set). ``index_type``: ``"flat"`` (exact) or ``"hnsw"`` (approximate).
    ``num_shards`` only matters once the index is served.
    """

    def __init__(
        self,
        nodes: Sequence[TextNode] | None = None,
        embed_model: Any = None,
        show_progress: bool = False,
        index_type: str = "flat",
        num_shards: int = 1,
        hnsw_m: int = 32,
        transformations: Sequence[Callable[..., Any]] | None = None,
    ) -> None:
        from rayflow.rag.embeddings import resolve_embed_model

        if num_shards < 1:
            raise VectorIndexError(f"num_shards must be >= 1, got {num_shards}")
        self._embed_model = _default_embed_model() if embed_model is None else resolve_embed_model(embed_model)
        self._store: VectorStore | None = VectorStore(index_type, hnsw_m)
        self.index_type = index_type
        self.num_shards = num_shards
        self.hnsw_m = hnsw_m
        self._transformations = list(transformations) if transformations is not None else None
        self.index_id = uuid.uuid4().hex[:12]
        self._server: IndexServerClient | None = None
        self._owner = True
        self._finalizer: weakref.finalize | None = None
        if nodes:
            self.insert_nodes(nodes, show_progress=show_progress)

    @classmethod
    def from_documents(
        cls,
        documents: Sequence[Document],
        embed_model: Any = None,
        transformations: Sequence[Callable[..., Any]] | None = None,
        splitter: Callable[..., Any] | None = None,
        show_progress: bool = False,
        index_type: str = "flat",
        num_shards: int = 1,
        hnsw_m: int = 32,
    ) -> VectorStoreIndex:
        """Split ``documents`` (``transformations`` in order, else ``splitter``, else ``SentenceSplitter()``: 512
        words, which the default MiniLM reads only up to its 256-wordpiece window), embed the nodes through the
        embedding pool (a tqdm bar when ``show_progress``) and index them."""
        steps = list(transformations) if transformations is not None else [splitter] if splitter else None
        index = cls(
            embed_model=embed_model, index_type=index_type, num_shards=num_shards, hnsw_m=hnsw_m,
            transformations=steps,
        )  # fmt: skip
        index.insert_nodes(index._split(documents, show_progress), show_progress=show_progress)
        return index

    # -- reading and writing rows -----------------------------------------------------------------------------

    @property
    def embed_model(self) -> Any:
        """The embedding model that made (and must query) this index's vectors."""
        return self._embed_model

    def _split(self, documents: Sequence[Document], show_progress: bool = False) -> list[TextNode]:
        from rayflow.rag.splitter import SentenceSplitter

        steps = self._transformations or [SentenceSplitter()]
        items: Any = list(documents)
        for i, step in enumerate(steps):
            if i == 0 and isinstance(step, SentenceSplitter):
                items = step.get_nodes_from_documents(items, show_progress=show_progress)
            else:
                items = step(items)
        return list(items)

    def insert(self, document: Document) -> None:
        """Split one document the way the index was built, embed and add its nodes."""
        self.insert_nodes(self._split([document]))

    def insert_nodes(self, nodes: Sequence[TextNode], show_progress: bool = False) -> None:
        """Embed and add nodes; visible to every copy of a served index."""
        nodes = list(nodes)
        if not nodes:
            return
        vectors = _embed_texts(self._embed_model, [n.text for n in nodes], show_progress)
        if self._server is not None:
            self._server.add(vectors, nodes)
        else:
            assert self._store is not None
            self._store.add(vectors, nodes)

    def __len__(self) -> int:
        if self._server is not None:
            return self._server.count()
        assert self._store is not None
        return len(self._store)

    def as_retriever(self, similarity_top_k: int = 2, **_: Any) -> VectorIndexRetriever:
        """A retriever returning the ``similarity_top_k`` closest nodes to a query."""
        return VectorIndexRetriever(self, similarity_top_k=similarity_top_k)

    def search(self, query_vector: Any, k: int) -> list[NodeWithScore]:
        """The ``k`` nodes closest to an already-embedded query, best first.

        The nodes are copies carrying the index's vector for each (``node.embedding``, in the space of the index's
        embedding model, ``node.embedding_model``): a reranker with the same model reuses them.
        """
        if self._server is not None:
            return self._stamped(self._server.search(query_vector, k))
        assert self._store is not None
        return self._stamped(self._store.search(query_vector, k))

    async def asearch(self, query_vector: Any, k: int) -> list[NodeWithScore]:
        """``search`` without blocking the event loop."""
        if self._server is not None:
            return self._stamped(await self._server.asearch(query_vector, k))
        assert self._store is not None
        return self._stamped(self._store.search(query_vector, k))

    def _stamped(self, hits: list[NodeWithScore]) -> list[NodeWithScore]:
        # The hits are fresh copies (made by the store's search, or unpickled from the server): safe to mark.
        space = _space(self._embed_model)
        for hit in hits:
            hit.node.embedding_model = space
        return hits

    # -- sharing ----------------------------------------------------------------------------------------------

    @property
    def server_name(self) -> str | None:
        """The Ray name of the index server once the index is served, else None."""
        return None if self._server is None else self._server.name

    def serve(self) -> VectorStoreIndex:
        """Move the rows into a shared index server now (pickling does it on first use); returns ``self``.

        Blocks until the server holds the rows.
        """
        if self._server is None:
            assert self._store is not None
            vectors, nodes = self._store.snapshot()
            name = f"{INDEX_ACTOR_PREFIX}{self.index_id}"
            server = IndexServerClient.start(name, self.index_type, self.hnsw_m, self.num_shards, vectors, nodes)
            server.count()  # returns once the server (and its shards) hold the rows; raises if it could not start
            self._server, self._store = server, None
            self._finalizer = weakref.finalize(self, stop_index_server, name)
            self._finalizer.atexit = False  # at exit the server ends with this process anyway
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        self.serve()
        assert self._server is not None
        state = (
            self._server, self._embed_model, self.index_type, self.num_shards, self.hnsw_m,
            self._transformations, self.index_id,
        )  # fmt: skip
        return (_index_from_server, state)

    def close(self) -> None:
        """Stop the index server (if any) after copying its rows back here; a copy's ``close()`` does nothing."""
        if self._server is None or not self._owner:
            return
        vectors, nodes = self._server.snapshot()
        store = VectorStore(self.index_type, self.hnsw_m)
        store.add(vectors, nodes)
        if self._finalizer is not None:
            self._finalizer.detach()
        self._server.stop()
        self._server, self._store = None, store

    def __enter__(self) -> VectorStoreIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- storage ----------------------------------------------------------------------------------------------

    @property
    def storage_context(self) -> StorageContext:
        """LlamaIndex's way to persist: ``index.storage_context.persist(persist_dir=...)``."""
        return StorageContext(index=self)

    def persist(self, persist_dir: str | os.PathLike[str] = "./storage") -> None:
        """Write the index to ``persist_dir`` (faiss file + JSON; never pickle)."""
        import faiss

        if self._server is not None:
            vectors, nodes = self._server.snapshot()
            store = VectorStore(self.index_type, self.hnsw_m)
            store.add(vectors, nodes)
        else:
            assert self._store is not None
            store = self._store
        os.makedirs(persist_dir, exist_ok=True)
        lines = []
        for node in store.nodes:
            try:
                lines.append(json.dumps(node.to_dict(), ensure_ascii=False))
            except TypeError as err:
                raise VectorIndexError(f"node {node.id_!r} cannot be saved as JSON: {err}") from err
        with open(os.path.join(persist_dir, _NODES_FILE), "w", encoding="utf-8") as f:
            f.write("[\n" + ",\n".join(lines) + "\n]\n")
        if store.faiss_index is not None:
            faiss.write_index(store.faiss_index, os.path.join(persist_dir, _VECTORS_FILE))
        meta = {
            "format_version": _FORMAT_VERSION,
            "index_type": self.index_type,
            "hnsw_m": self.hnsw_m,
            "num_shards": self.num_shards,
            "dim": store.dim,
            "count": len(store),
            "embed_model": _describe(self._embed_model),
        }
        with open(os.path.join(persist_dir, _META_FILE), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2)

    @classmethod
    def load(cls, persist_dir: str | os.PathLike[str] = "./storage", embed_model: Any = None) -> VectorStoreIndex:
        """The index ``persist`` wrote; queries must use the same embedding model (a warning says if not)."""
        import faiss

        meta_path = os.path.join(persist_dir, _META_FILE)
        try:
            with open(meta_path, encoding="utf-8") as f:
                meta = json.load(f)
            with open(os.path.join(persist_dir, _NODES_FILE), encoding="utf-8") as f:
                nodes = [TextNode.from_dict(d) for d in json.load(f)]
        except (OSError, ValueError, KeyError) as err:
            raise VectorIndexError(f"no readable rayflow index in {str(persist_dir)!r}: {err}") from err
        if meta.get("format_version") != _FORMAT_VERSION:
            raise VectorIndexError(f"index in {str(persist_dir)!r} has unknown format {meta.get('format_version')}")
        index = cls(
            embed_model=embed_model, index_type=meta["index_type"], num_shards=meta.get("num_shards", 1),
            hnsw_m=meta.get("hnsw_m", 32),
        )  # fmt: skip
        if nodes:
            assert index._store is not None
            index._store.faiss_index = faiss.read_index(os.path.join(persist_dir, _VECTORS_FILE))
            index._store.nodes = nodes
        saved, now = meta.get("embed_model"), _describe(index._embed_model)
        if saved and saved != now:
            warnings.warn(
                f"index in {str(persist_dir)!r} was built with {saved} but is loaded with {now}; "
                "pass embed_model= to query it with the model that made its vectors",
                stacklevel=2,
            )
        return index


def _index_from_server(
    server: IndexServerClient,
    embed_model: Any,
    index_type: str,
    num_shards: int,
    hnsw_m: int,
    transformations: list[Callable[..., Any]] | None,
    index_id: str,
) -> VectorStoreIndex:
    """Rebuild a copy of a served index in another process: no rows, only the way to its server."""
    index = VectorStoreIndex.__new__(VectorStoreIndex)
    index._embed_model = embed_model
    index._store = None
    index.index_type, index.num_shards, index.hnsw_m = index_type, num_shards, hnsw_m
    index._transformations = transformations
    index.index_id = index_id
    index._server = server
    index._owner = False
    index._finalizer = None
    return index


def _describe(embed_model: Any) -> dict[str, Any]:
    describe = getattr(embed_model, "describe", None)
    if callable(describe):
        return dict(describe())
    return {"class": type(embed_model).__name__, "model_name": getattr(embed_model, "model_name", None)}


def _space(embed_model: Any) -> str | None:
    """The vector space of ``embed_model`` (``BaseEmbedding.space``); None for a model that does not say."""
    space = getattr(embed_model, "space", None)
    return space if isinstance(space, str) else None


def _embed_texts(embed_model: Any, texts: list[str], show_progress: bool) -> Any:
    import numpy as np

    if hasattr(embed_model, "embed_array"):
        return embed_model.embed_array(texts, show_progress=show_progress)
    return np.asarray(embed_model.get_text_embedding_batch(texts, show_progress=show_progress), dtype=np.float32)


async def _aembed_query(embed_model: Any, query: str) -> Any:
    import numpy as np

    if hasattr(embed_model, "aget_query_embedding"):
        return np.asarray(await embed_model.aget_query_embedding(query), dtype=np.float32)
    return np.asarray(await asyncio.to_thread(embed_model.get_query_embedding, query), dtype=np.float32)


def _query_str(query: Any) -> str:
    text = getattr(query, "query_str", query)
    if not isinstance(text, str):
        raise TypeError(f"retrieve() needs a query string, got {type(query).__name__}")
    return text


class VectorIndexRetriever:
    """Finds the ``similarity_top_k`` nodes of an index closest to a query (cosine similarity, best first)."""

    def __init__(self, index: VectorStoreIndex, similarity_top_k: int = 2) -> None:
        self.index = index
        self.similarity_top_k = similarity_top_k

    def retrieve(self, query: Any) -> list[NodeWithScore]:
        """Embed the query (through the embedding pool) and search; blocks."""
        import numpy as np

        vector = np.asarray(self.index.embed_model.get_query_embedding(_query_str(query)), dtype=np.float32)
        return self.index.search(vector, self.similarity_top_k)

    async def aretrieve(self, query: Any) -> list[NodeWithScore]:
        """Embed the query and search without blocking the event loop."""
        vector = await _aembed_query(self.index.embed_model, _query_str(query))
        return await self.index.asearch(vector, self.similarity_top_k)


@dataclass
class StorageContext:
    """Where an index is persisted (LlamaIndex's ``StorageContext``, reduced to a directory)."""

    persist_dir: str | None = None
    index: VectorStoreIndex | None = field(default=None, repr=False)

    @classmethod
    def from_defaults(cls, persist_dir: str | os.PathLike[str] | None = None, **_: Any) -> StorageContext:
        """A context reading from (or writing to) ``persist_dir``."""
        return cls(persist_dir=None if persist_dir is None else os.fspath(persist_dir))

    def persist(self, persist_dir: str | os.PathLike[str] | None = None) -> None:
        """Write the bound index to ``persist_dir`` (default: the context's, else ``./storage``)."""
        if self.index is None:
            raise VectorIndexError("this StorageContext has no index to persist; use index.storage_context")
        self.index.persist(persist_dir or self.persist_dir or "./storage")


def load_index_from_storage(storage_context: StorageContext, embed_model: Any = None, **_: Any) -> VectorStoreIndex:
    """The index persisted in ``storage_context.persist_dir`` (default ``./storage``)."""
    return VectorStoreIndex.load(storage_context.persist_dir or "./storage", embed_model=embed_model)
