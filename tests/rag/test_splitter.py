"""SentenceSplitter: sizes in words, sentence boundaries, overlap, metadata (no Ray)."""

from __future__ import annotations

import itertools

import pytest

from rayflow.rag import Document, SentenceSplitter, TextNode
from rayflow.rag.splitter import SplitterConfigError


def _words(text: str) -> int:
    return len(text.split())


def test_short_text_is_one_chunk_and_blank_text_none() -> None:
    splitter = SentenceSplitter(chunk_size=50, chunk_overlap=10)
    assert splitter.split_text("One sentence. Two sentences.") == ["One sentence. Two sentences."]
    assert splitter.split_text("   \n\n ") == []


def test_chunks_respect_size_and_keep_sentences_whole() -> None:
    sentences = [f"Sentence number {i} has exactly seven words." for i in range(20)]
    text = " ".join(sentences)
    chunks = SentenceSplitter(chunk_size=30, chunk_overlap=0).split_text(text)
    assert all(_words(c) <= 30 for c in chunks)
    assert " ".join(chunks) == text  # no overlap: the chunks partition the text
    for chunk in chunks:
        assert chunk.startswith("Sentence number") and chunk.endswith("words.")


def test_overlap_repeats_whole_trailing_sentences() -> None:
    sentences = [f"S{i} a b c d e f g h." for i in range(10)]  # ten words each
    chunks = SentenceSplitter(chunk_size=30, chunk_overlap=12).split_text(" ".join(sentences))
    assert all(_words(c) <= 30 for c in chunks)
    for prev, nxt in itertools.pairwise(chunks):
        last_sentence = prev.split(". ")[-1]
        assert nxt.startswith(last_sentence.rstrip("."))  # one ten-word sentence fits the 12-word overlap
    assert chunks[0].startswith("S0") and chunks[-1].endswith("S9 a b c d e f g h.")


def test_overlong_sentence_is_cut_between_words() -> None:
    text = " ".join(f"w{i}" for i in range(25))
    chunks = SentenceSplitter(chunk_size=10, chunk_overlap=0).split_text(text)
    assert [_words(c) for c in chunks] == [10, 10, 5]
    assert " ".join(chunks) == text


def test_paragraphs_and_lines_keep_their_separators() -> None:
    text = "# Title\n\nFirst paragraph line one.\nLine two.\n\nSecond paragraph."
    assert SentenceSplitter(chunk_size=100, chunk_overlap=0).split_text(text) == [text]


def test_nodes_keep_metadata_and_ref_doc_id() -> None:
    docs = [
        Document(text="Alpha one. Alpha two. Alpha three.", metadata={"file_name": "a.md"}, id_="doc-a"),
        Document(text="Bravo.", metadata={"file_name": "b.md"}, id_="doc-b"),
    ]
    nodes = SentenceSplitter(chunk_size=4, chunk_overlap=0).get_nodes_from_documents(docs)
    assert [n.text for n in nodes] == ["Alpha one. Alpha two.", "Alpha three.", "Bravo."]
    assert [n.ref_doc_id for n in nodes] == ["doc-a", "doc-a", "doc-b"]
    assert all(isinstance(n, TextNode) for n in nodes)
    assert nodes[0].metadata == {"file_name": "a.md"} and nodes[0].metadata is not docs[0].metadata
    assert len({n.node_id for n in nodes}) == 3
    assert SentenceSplitter(chunk_size=4, chunk_overlap=0)(docs)[2].text == "Bravo."


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (10, 10), (10, -1)])
def test_impossible_sizes_are_refused(size: int, overlap: int) -> None:
    with pytest.raises(SplitterConfigError, match="SentenceSplitter"):
        SentenceSplitter(chunk_size=size, chunk_overlap=overlap)
