"""The data records of the RAG half: documents, the text nodes cut from them, and scored retrieval results.

Data flow: a reader makes ``Document``s, a splitter cuts them into ``TextNode``s, the index stores nodes and returns
``NodeWithScore``s. They are plain slotted dataclasses: they pickle cheaply into Ray (no pydantic validation on the way
back) and round-trip through JSON with ``to_dict`` / ``from_dict`` for persistence (never pickle on disk).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Document", "NodeWithScore", "TextNode"]


def _new_id() -> str:
    return str(uuid.uuid4())


@dataclass(slots=True)
class Document:
    """A whole source text (a file, or one page of a PDF) with its metadata."""

    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    id_: str = field(default_factory=_new_id)

    @property
    def doc_id(self) -> str:
        """The document's id (LlamaIndex's name for ``id_``)."""
        return self.id_

    def get_content(self) -> str:
        """The text, as LlamaIndex's ``get_content()`` gives it."""
        return self.text


@dataclass(slots=True)
class TextNode:
    """A chunk of a document: the unit that is embedded, indexed and retrieved.

    ``ref_doc_id`` is the ``id_`` of the document it was cut from; ``metadata`` is a copy of the document's metadata.
    ``embedding`` is set on the nodes a vector index search returns: the (L2-normalized, float32) vector the index
    holds for the node, and ``embedding_model`` names the vector space it belongs to (``BaseEmbedding.space``), so
    a reranker using the same model can score the node without embedding its text again. Neither is persisted by
    ``to_dict`` (the index keeps its vectors in faiss).
    """

    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    id_: str = field(default_factory=_new_id)
    ref_doc_id: str | None = None
    embedding: Any = field(default=None, repr=False, compare=False)
    embedding_model: str | None = field(default=None, repr=False, compare=False)

    @property
    def node_id(self) -> str:
        """The node's id (LlamaIndex's name for ``id_``)."""
        return self.id_

    def get_content(self) -> str:
        """The text, as LlamaIndex's ``get_content()`` gives it."""
        return self.text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the persisted form)."""
        return {"id_": self.id_, "text": self.text, "metadata": self.metadata, "ref_doc_id": self.ref_doc_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TextNode:
        """The node ``to_dict`` wrote."""
        return cls(
            text=str(data["text"]),
            metadata=dict(data.get("metadata") or {}),
            id_=str(data["id_"]),
            ref_doc_id=data.get("ref_doc_id"),
        )


@dataclass(slots=True)
class NodeWithScore:
    """A retrieved node and its similarity to the query (higher is closer; cosine for the default index)."""

    node: TextNode
    score: float | None = None

    @property
    def text(self) -> str:
        """The node's text."""
        return self.node.text

    @property
    def metadata(self) -> dict[str, Any]:
        """The node's metadata."""
        return self.node.metadata

    @property
    def node_id(self) -> str:
        """The node's id."""
        return self.node.id_

    def get_content(self) -> str:
        """The node's text."""
        return self.node.text

    def get_score(self) -> float:
        """The score, 0.0 when none was set."""
        return 0.0 if self.score is None else self.score
