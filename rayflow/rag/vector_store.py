"""Where an index's vectors and nodes live: in-process (``VectorStore``) or in a shared ``IndexServer`` actor.

Data flow: ``VectorStoreIndex`` -> ``VectorStore`` (local) or ``IndexServerClient`` -> ``rayflow.index.<id>`` actor
-> one ``VectorStore`` in the actor, or ``num_shards`` shard actors ``rayflow.index.<id>.shard.<i>`` each holding
every ``num_shards``-th node. A search asks every shard for its top k and merges them by score, so the result is the
same top k as one unsharded search. Vectors are L2-normalized on the way in, so inner product is cosine similarity.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING, Any

import ray

from rayflow.config import settings
from rayflow.errors import RayflowError
from rayflow.rag.schema import NodeWithScore, TextNode
from rayflow.runtime.actors import stop_actors, stop_actors_sync
from rayflow.runtime.cluster import ensure_ray

if TYPE_CHECKING:
    import numpy as np

__all__ = ["INDEX_ACTOR_PREFIX", "IndexServerClient", "VectorIndexError", "VectorStore"]

INDEX_ACTOR_PREFIX = "rayflow.index."
INDEX_TYPES = ("flat", "hnsw")


class VectorIndexError(RayflowError):
    """A vector index was misused: wrong dimension, unknown index type, unreadable storage, stopped server."""


class VectorStore:
    """A faiss index and the nodes of its rows (row i of faiss is ``nodes[i]``).

    ``index_type="flat"`` is exact search (``IndexFlatIP``); ``"hnsw"`` is approximate (``IndexHNSWFlat`` with the
    inner-product metric, ``hnsw_m`` links per vector). The faiss index is made on the first ``add``, when the
    dimension is known.
    """

    def __init__(self, index_type: str = "flat", hnsw_m: int = 32, faiss_index: Any = None) -> None:
        if index_type not in INDEX_TYPES:
            raise VectorIndexError(f"index_type must be one of {INDEX_TYPES}, got {index_type!r}")
        self.index_type = index_type
        self.hnsw_m = hnsw_m
        self.faiss_index = faiss_index
        self.nodes: list[TextNode] = []

    @property
    def dim(self) -> int | None:
        return None if self.faiss_index is None else int(self.faiss_index.d)

    def __len__(self) -> int:
        return len(self.nodes)

    def _make(self, dim: int) -> Any:
        import faiss

        if self.index_type == "hnsw":
            return faiss.IndexHNSWFlat(dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        return faiss.IndexFlatIP(dim)

    def add(self, vectors: np.ndarray, nodes: list[TextNode]) -> None:
        """Append rows; ``vectors`` is ``(len(nodes), dim)``."""
        if len(nodes) == 0:
            return
        matrix = _normalized(vectors)
        if matrix.shape[0] != len(nodes):
            raise VectorIndexError(f"got {matrix.shape[0]} vectors for {len(nodes)} nodes")
        if self.faiss_index is None:
            self.faiss_index = self._make(matrix.shape[1])
        self._check_dim(matrix.shape[1], "inserted vectors")
        self.faiss_index.add(matrix)
        self.nodes.extend(nodes)

    def search(self, query: np.ndarray, k: int) -> list[NodeWithScore]:
        """The ``k`` nodes closest to ``query`` (a ``(dim,)`` vector), best first; each a copy of the stored node
        carrying its stored vector in ``embedding``."""
        import numpy as np

        if self.faiss_index is None or not self.nodes or k <= 0:
            return []
        vector = _normalized(query.reshape(1, -1))
        self._check_dim(vector.shape[1], "the query vector")
        k = min(k, len(self.nodes))
        if self.index_type == "hnsw":
            self.faiss_index.hnsw.efSearch = max(64, 2 * k)
        scores, rows = self.faiss_index.search(vector, k)
        found = [(float(s), int(r)) for s, r in zip(scores[0], rows[0], strict=True) if r >= 0]
        if not found:
            return []
        vectors = self.faiss_index.reconstruct_batch(np.asarray([r for _, r in found], dtype=np.int64))
        return [
            NodeWithScore(node=dataclasses.replace(self.nodes[r], embedding=vectors[i]), score=s)
            for i, (s, r) in enumerate(found)
        ]

    def vectors(self) -> np.ndarray:
        """Every stored (normalized) vector, in row order."""
        import numpy as np

        if self.faiss_index is None:
            return np.zeros((0, 0), dtype=np.float32)
        return self.faiss_index.reconstruct_n(0, self.faiss_index.ntotal)

    def snapshot(self) -> tuple[np.ndarray, list[TextNode]]:
        return self.vectors(), list(self.nodes)

    def _check_dim(self, dim: int, what: str) -> None:
        if self.dim is not None and dim != self.dim:
            raise VectorIndexError(
                f"{what} have dimension {dim} but the index holds {self.dim}-dimensional vectors; "
                "query and insert with the embedding model that built the index"
            )


def _normalized(vectors: Any) -> np.ndarray:
    import faiss
    import numpy as np

    matrix = np.array(vectors, dtype=np.float32, copy=True, ndmin=2)
    faiss.normalize_L2(matrix)
    return matrix


def merge_top_k(results: list[list[NodeWithScore]], k: int) -> list[NodeWithScore]:
    """The best ``k`` of several best-first result lists (shards), best first; stable for equal scores."""
    merged = [hit for hits in results for hit in hits]
    merged.sort(key=lambda hit: -hit.get_score())
    return merged[:k]


class _IndexServer:
    """The shared index actor: owns one ``VectorStore`` or the shard actors that split it."""

    def __init__(
        self, name: str, index_type: str, hnsw_m: int, num_shards: int, vectors: Any, nodes: list[TextNode]
    ) -> None:
        self._name = name
        self._local: VectorStore | None = None
        self._shards: list[Any] = []
        if num_shards == 1:
            self._local = VectorStore(index_type, hnsw_m)
        else:
            # Shards are owned by this actor, so they end with it even if nobody stops them.
            self._shards = [
                _ShardActor.options(name=f"{name}.shard.{i}", namespace=settings().namespace, num_cpus=0).remote(
                    index_type, hnsw_m
                )
                for i in range(num_shards)
            ]
        self._count = 0
        if self._shards:
            ray.get(self._add_refs(vectors, nodes))
        else:
            self._add_local(vectors, nodes)

    def _add_local(self, vectors: Any, nodes: list[TextNode]) -> None:
        assert self._local is not None
        self._local.add(vectors, nodes)
        self._count += len(nodes)

    def _add_refs(self, vectors: Any, nodes: list[TextNode]) -> list[Any]:
        n = len(self._shards)
        refs = []
        for i, shard in enumerate(self._shards):
            rows = [j for j in range(len(nodes)) if (self._count + j) % n == i]
            if rows:
                refs.append(shard.add.remote(vectors[rows], [nodes[j] for j in rows]))
        self._count += len(nodes)
        return refs

    async def add(self, vectors: Any, nodes: list[TextNode]) -> int:
        if self._local is not None:
            self._add_local(vectors, nodes)
        else:
            await asyncio.gather(*self._add_refs(vectors, nodes))
        return self._count

    async def search(self, query: Any, k: int) -> list[NodeWithScore]:
        if self._local is not None:
            return self._local.search(query, k)
        results = await asyncio.gather(*(shard.search.remote(query, k) for shard in self._shards))
        return merge_top_k(list(results), k)

    async def snapshot(self) -> tuple[Any, list[TextNode]]:
        import numpy as np

        if self._local is not None:
            return self._local.snapshot()
        parts = await asyncio.gather(*(shard.snapshot.remote() for shard in self._shards))
        parts = [p for p in parts if len(p[1])]
        if not parts:
            return np.zeros((0, 0), dtype=np.float32), []
        return np.concatenate([p[0] for p in parts]), [node for p in parts for node in p[1]]

    async def count(self) -> int:
        return self._count

    async def stop_shards(self) -> None:
        shards, self._shards = self._shards, []
        await stop_actors(shards)


_ShardActor = ray.remote(VectorStore)
_IndexServerActor = ray.remote(_IndexServer)


class IndexServerClient:
    """A typed client for one index server; pickles as the server's name and finds it again by name."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._handle: Any = None

    def __reduce__(self) -> tuple[Any, ...]:
        return (IndexServerClient, (self.name,))

    @classmethod
    def start(
        cls, name: str, index_type: str, hnsw_m: int, num_shards: int, vectors: Any, nodes: list[TextNode]
    ) -> IndexServerClient:
        """Start the server (owned by this process, so it ends with it) holding a copy of the given rows."""
        ensure_ray()
        client = cls(name)
        client._handle = _IndexServerActor.options(
            name=name, namespace=settings().namespace, num_cpus=0, max_concurrency=100
        ).remote(name, index_type, hnsw_m, num_shards, vectors, nodes)
        return client

    @property
    def handle(self) -> Any:
        if self._handle is None:
            ensure_ray()
            try:
                self._handle = ray.get_actor(self.name, namespace=settings().namespace)
            except ValueError as err:
                raise VectorIndexError(
                    f"index server {self.name!r} is not running (closed, or the process that served it ended)"
                ) from err
        return self._handle

    def add(self, vectors: Any, nodes: list[TextNode]) -> int:
        return int(ray.get(self.handle.add.remote(vectors, nodes)))

    async def aadd(self, vectors: Any, nodes: list[TextNode]) -> int:
        return int(await self.handle.add.remote(vectors, nodes))

    def search(self, query: Any, k: int) -> list[NodeWithScore]:
        return list(ray.get(self.handle.search.remote(query, k)))

    async def asearch(self, query: Any, k: int) -> list[NodeWithScore]:
        return list(await self.handle.search.remote(query, k))

    def snapshot(self) -> tuple[Any, list[TextNode]]:
        vectors, nodes = ray.get(self.handle.snapshot.remote())
        return vectors, nodes

    def count(self) -> int:
        return int(ray.get(self.handle.count.remote()))

    def stop(self) -> None:
        """Stop the shards, then the server; returns once the names are free."""
        stop_index_server(self.name)
        self._handle = None


def stop_index_server(name: str) -> None:
    """Stop the index server ``name`` and its shards if it is running."""
    if not ray.is_initialized():
        return
    try:
        handle = ray.get_actor(name, namespace=settings().namespace)
    except ValueError:
        return
    stop_actors_sync([handle], before="stop_shards")
