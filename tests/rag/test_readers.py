"""SimpleDirectoryReader over the shipped sample documents and over files made here (no Ray)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pdf_util import write_text_pdf

from rayflow.rag import Document, SimpleDirectoryReader
from rayflow.rag.readers import DocumentReadError

DATA = Path(__file__).resolve().parents[2] / "examples" / "data"


def test_sample_directory_reads_every_format_with_metadata() -> None:
    docs = SimpleDirectoryReader(str(DATA)).load_data()
    by_name: dict[str, list[Document]] = {}
    for doc in docs:
        by_name.setdefault(doc.metadata["file_name"], []).append(doc)
    assert {"rate_limits.md", "deployment.txt", "monitoring.html", "pricing.json", "support_faq.pdf"} <= set(by_name)
    rate = by_name["rate_limits.md"][0]
    assert "rate_limits" in rate.text and "429" in rate.text
    assert rate.metadata["file_type"] == "text/markdown"
    assert rate.metadata["file_size"] == (DATA / "rate_limits.md").stat().st_size
    assert rate.metadata["file_path"] == str((DATA / "rate_limits.md").resolve())
    assert len({d.id_ for d in docs}) == len(docs)


def test_html_keeps_visible_text_only() -> None:
    (doc,) = SimpleDirectoryReader(input_files=[DATA / "monitoring.html"]).load_data()
    assert "acme_request_duration_seconds" in doc.text
    assert "console.log" not in doc.text and "font-family" not in doc.text
    assert doc.metadata["file_type"] == "text/html"


def test_json_is_flattened_to_key_value_lines() -> None:
    (doc,) = SimpleDirectoryReader(input_files=[DATA / "pricing.json"]).load_data()
    assert "plans[1].name: Team" in doc.text.splitlines()
    assert "overage.per_million_requests: 15" in doc.text.splitlines()


def test_pdf_gives_one_document_per_page_with_page_label(tmp_path: Path) -> None:
    path = tmp_path / "two.pdf"
    write_text_pdf(path, [["First page (about keys)."], ["Second page: rate limits."]])
    docs = SimpleDirectoryReader(input_files=[path], filename_as_id=True).load_data()
    assert [d.metadata["page_label"] for d in docs] == ["1", "2"]
    assert docs[0].text.strip() == "First page (about keys)."
    assert "rate limits" in docs[1].text
    assert docs[1].id_ == f"{path.resolve()}#page=2"
    assert all(d.metadata["file_type"] == "application/pdf" for d in docs)


def test_required_exts_recursive_and_hidden_files(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("alpha")
    (tmp_path / "b.txt").write_text("bravo")
    (tmp_path / ".hidden.md").write_text("secret")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.md").write_text("charlie")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "d.md").write_text("delta")

    def texts(**kw: object) -> list[str]:
        return [d.text for d in SimpleDirectoryReader(str(tmp_path), **kw).load_data()]  # type: ignore[arg-type]

    assert texts() == ["alpha", "bravo"]
    assert texts(recursive=True, required_exts=["md"]) == ["alpha", "charlie"]
    assert texts(recursive=True, exclude_hidden=False, required_exts=[".md"]) == ["delta", "secret", "alpha", "charlie"]


def test_missing_directory_and_empty_directory_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(DocumentReadError, match=r"input directory .*nope.* does not exist"):
        SimpleDirectoryReader(str(missing))
    with pytest.raises(DocumentReadError, match=r"no files found in directory .*"):
        SimpleDirectoryReader(str(tmp_path))
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(DocumentReadError, match=r"with extensions \['\.pdf'\]"):
        SimpleDirectoryReader(str(tmp_path), required_exts=[".pdf"])
    with pytest.raises(DocumentReadError, match=r"input files not found: .*ghost\.md"):
        SimpleDirectoryReader(input_files=[tmp_path / "ghost.md"])


def test_unreadable_files_are_refused_with_their_path(tmp_path: Path) -> None:
    (tmp_path / "blob.bin").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(DocumentReadError, match=r"blob\.bin.* is not utf-8 text"):
        SimpleDirectoryReader(str(tmp_path)).load_data()
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DocumentReadError, match=r"could not read .*bad\.json.*JSONDecodeError"):
        SimpleDirectoryReader(input_files=[tmp_path / "bad.json"]).load_data()


def test_documents_pickle_and_unknown_text_types_read_as_text(tmp_path: Path) -> None:
    import pickle

    (tmp_path / "notes.rst").write_text("Title\n=====\n\nBody.")
    (doc,) = SimpleDirectoryReader(str(tmp_path)).load_data()
    assert doc.text.startswith("Title") and doc.metadata["file_type"].startswith("text/")
    copy = pickle.loads(pickle.dumps(doc))
    assert copy == doc and json.dumps(copy.metadata)
