"""Cutting documents into nodes: the stage between the reader and the index (documents -> ``TextNode``s).

``SentenceSplitter`` keeps sentences whole where it can. Sizes are counted in **tokens, where a token is one
whitespace-separated word** (no tokenizer model is loaded; for English text a word is about 1.3 model tokens, so
``chunk_size=512`` words stays inside a 512-token embedder window only roughly, as with LlamaIndex's default).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rayflow.errors import RayflowError
from rayflow.rag.schema import Document, TextNode

__all__ = ["SentenceSplitter", "SplitterConfigError"]


class SplitterConfigError(RayflowError):
    """A splitter was configured with sizes that cannot work."""


_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True, slots=True)
class _Unit:
    """A sentence (or a piece of an overlong one) and the separator that came before it in the text."""

    text: str
    sep: str
    words: int


class SentenceSplitter:
    """Split text into chunks of at most ``chunk_size`` words, consecutive chunks sharing up to ``chunk_overlap``.

    Boundaries fall, in order of preference, between paragraphs (blank lines), lines, and sentences (``.``, ``!``,
    ``?`` followed by whitespace). A sentence longer than ``chunk_size`` is cut between words. The overlap is made of
    whole sentences from the end of the previous chunk, so it may be shorter than ``chunk_overlap``.
    """

    def __init__(self, chunk_size: int = 512, chunk_overlap: int = 64) -> None:
        if chunk_size <= 0:
            raise SplitterConfigError(f"SentenceSplitter: chunk_size must be > 0, got {chunk_size}")
        if not 0 <= chunk_overlap < chunk_size:
            raise SplitterConfigError(
                f"SentenceSplitter: chunk_overlap must be >= 0 and < chunk_size ({chunk_size}), got {chunk_overlap}"
            )
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap

    def split_text(self, text: str) -> list[str]:
        """The chunks of ``text``, in order; an empty or blank text gives no chunk."""
        units = self._units(text)
        chunks: list[list[_Unit]] = []
        current: list[_Unit] = []
        size = 0
        for unit in units:
            if current and size + unit.words > self.chunk_size:
                chunks.append(current)
                current = self._overlap(current, unit.words)
                size = sum(u.words for u in current)
            current.append(unit)
            size += unit.words
        if current:
            chunks.append(current)
        return [_join(chunk) for chunk in chunks]

    def get_nodes_from_documents(
        self, documents: Sequence[Document | TextNode], show_progress: bool = False
    ) -> list[TextNode]:
        """One ``TextNode`` per chunk; each keeps a copy of its document's metadata and ``ref_doc_id``."""
        items: Iterable[Document | TextNode] = documents
        if show_progress:
            from tqdm.auto import tqdm

            items = tqdm(documents, desc="Splitting documents")
        nodes: list[TextNode] = []
        for doc in items:
            ref = doc.ref_doc_id if isinstance(doc, TextNode) else doc.id_
            for chunk in self.split_text(doc.text):
                nodes.append(TextNode(text=chunk, metadata=dict(doc.metadata), ref_doc_id=ref))
        return nodes

    def __call__(self, documents: Sequence[Document | TextNode], **_: object) -> list[TextNode]:
        """Use as a LlamaIndex-style transformation: ``transformations=[SentenceSplitter()]``."""
        return self.get_nodes_from_documents(documents)

    def _units(self, text: str) -> list[_Unit]:
        units: list[_Unit] = []
        for p, paragraph in enumerate(_PARAGRAPH.split(text.strip())):
            for li, line in enumerate(paragraph.splitlines()):
                for si, sentence in enumerate(_SENTENCE_END.split(line.strip())):
                    words = sentence.split()
                    if not words:
                        continue
                    sep = " " if si else ("\n" if li else "\n\n")
                    if p == 0 and li == 0 and si == 0:
                        sep = ""
                    for start in range(0, len(words), self.chunk_size):
                        piece = words[start : start + self.chunk_size]
                        units.append(_Unit(" ".join(piece), sep if start == 0 else " ", len(piece)))
        return units

    def _overlap(self, previous: list[_Unit], incoming_words: int) -> list[_Unit]:
        """The trailing whole units of ``previous`` that fit the overlap and leave room for the incoming unit."""
        budget = min(self.chunk_overlap, self.chunk_size - incoming_words)
        kept: list[_Unit] = []
        used = 0
        for unit in reversed(previous):
            if used + unit.words > budget:
                break
            kept.append(unit)
            used += unit.words
        kept.reverse()
        return kept


def _join(units: list[_Unit]) -> str:
    parts = [units[0].text]
    for unit in units[1:]:
        parts.append(unit.sep or " ")
        parts.append(unit.text)
    return "".join(parts)
