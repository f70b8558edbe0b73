"""Reading files into ``Document``s: the first stage of the RAG data flow (files -> documents -> nodes -> index).

``SimpleDirectoryReader`` mirrors LlamaIndex's reader of the same name for the formats rayflow supports: plain text
and Markdown as they are, HTML as the text BeautifulSoup extracts, PDF one document per page (pypdf), JSON flattened
to ``path.to.key: value`` lines. Any other extension is read as UTF-8 text and refused if it is not text.
"""

from __future__ import annotations

import json
import mimetypes
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from rayflow.errors import RayflowError
from rayflow.rag.schema import Document

__all__ = ["DocumentReadError", "SimpleDirectoryReader"]


class DocumentReadError(RayflowError):
    """A directory or file could not be read into documents."""


_MIME_TYPES = {
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
    ".json": "application/json",
}


class SimpleDirectoryReader:
    """Load every file of a directory (or a list of files) as ``Document``s.

    ``input_dir`` or ``input_files`` must be given. ``required_exts`` (e.g. ``[".md", ".txt"]``) keeps only those
    extensions; ``exclude_hidden`` skips files and directories whose name starts with a dot. Files are read in sorted
    path order, so the same directory always gives the same documents in the same order. ``filename_as_id=True``
    makes the document id the file path (``path#page=N`` for PDF pages) instead of a random UUID.

    Each document's metadata holds ``file_name``, ``file_path``, ``file_type`` (a MIME type), ``file_size`` (bytes),
    and ``page_label`` for PDF pages.
    """

    def __init__(
        self,
        input_dir: str | os.PathLike[str] | None = None,
        input_files: Iterable[str | os.PathLike[str]] | None = None,
        recursive: bool = False,
        required_exts: Iterable[str] | None = None,
        exclude_hidden: bool = True,
        filename_as_id: bool = False,
        encoding: str = "utf-8",
    ) -> None:
        if input_dir is None and input_files is None:
            raise DocumentReadError("SimpleDirectoryReader needs input_dir or input_files")
        self.recursive = recursive
        self.required_exts = None if required_exts is None else {_normalize_ext(ext) for ext in required_exts}
        self.exclude_hidden = exclude_hidden
        self.filename_as_id = filename_as_id
        self.encoding = encoding
        self.input_dir = None if input_dir is None else Path(input_dir)
        if input_files is not None:
            self.input_files = [Path(p) for p in input_files]
            missing = [str(p) for p in self.input_files if not p.is_file()]
            if missing:
                raise DocumentReadError(f"input files not found: {', '.join(missing)}")
        else:
            assert self.input_dir is not None
            self.input_files = self._list_dir(self.input_dir)

    def _list_dir(self, root: Path) -> list[Path]:
        if not root.is_dir():
            raise DocumentReadError(f"input directory {str(root)!r} does not exist or is not a directory")
        pattern = "**/*" if self.recursive else "*"
        files = []
        for path in sorted(root.glob(pattern)):
            rel_parts = path.relative_to(root).parts
            if self.exclude_hidden and any(part.startswith(".") for part in rel_parts):
                continue
            if not path.is_file():
                continue
            if self.required_exts is not None and path.suffix.lower() not in self.required_exts:
                continue
            files.append(path)
        if not files:
            wanted = "" if self.required_exts is None else f" with extensions {sorted(self.required_exts)}"
            raise DocumentReadError(f"no files found in directory {str(root)!r}{wanted}")
        return files

    def load_data(self, show_progress: bool = False) -> list[Document]:
        """Read every file; one ``Document`` per file (per page for PDF), in path order."""
        files: Iterable[Path] = self.input_files
        if show_progress:
            from tqdm.auto import tqdm

            files = tqdm(self.input_files, desc="Loading files")
        documents: list[Document] = []
        for path in files:
            documents.extend(self.load_file(path))
        return documents

    def iter_data(self) -> Iterable[list[Document]]:
        """The documents of one file at a time (LlamaIndex's ``iter_data``)."""
        for path in self.input_files:
            yield self.load_file(path)

    def load_file(self, path: str | os.PathLike[str]) -> list[Document]:
        """The documents of one file; errors name the file."""
        path = Path(path)
        ext = path.suffix.lower()
        stat = path.stat()
        base_meta: dict[str, Any] = {
            "file_name": path.name,
            "file_path": str(path.resolve()),
            "file_type": _MIME_TYPES.get(ext) or mimetypes.guess_type(path.name)[0] or "text/plain",
            "file_size": stat.st_size,
        }
        reader = _READERS.get(ext, _read_text)
        try:
            pages = reader(path, self.encoding)
        except DocumentReadError:
            raise
        except Exception as err:
            raise DocumentReadError(f"could not read {str(path)!r}: {type(err).__name__}: {err}") from err
        documents = []
        for label, text in pages:
            metadata = dict(base_meta)
            if label is not None:
                metadata["page_label"] = label
            doc_id = base_meta["file_path"] if label is None else f"{base_meta['file_path']}#page={label}"
            if self.filename_as_id:
                documents.append(Document(text=text, metadata=metadata, id_=doc_id))
            else:
                documents.append(Document(text=text, metadata=metadata))
        return documents


def _normalize_ext(ext: str) -> str:
    ext = ext.lower()
    return ext if ext.startswith(".") else f".{ext}"


# A reader returns (page_label, text) pairs; page_label is None for formats without pages.
_Pages = list[tuple[str | None, str]]


def _read_text(path: Path, encoding: str) -> _Pages:
    raw = path.read_bytes()
    try:
        return [(None, raw.decode(encoding))]
    except UnicodeDecodeError as err:
        raise DocumentReadError(
            f"{str(path)!r} is not {encoding} text and its type ({path.suffix or 'no extension'}) is not "
            "supported; use required_exts to skip it"
        ) from err


def _read_html(path: Path, encoding: str) -> _Pages:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(path.read_bytes().decode(encoding, errors="replace"), "html.parser")
    for tag in soup(["script", "style", "noscript"]):
        tag.decompose()
    lines = (line.strip() for line in soup.get_text("\n").splitlines())
    return [(None, "\n".join(line for line in lines if line))]


def _read_pdf(path: Path, encoding: str) -> _Pages:
    try:
        import pypdf
    except ImportError as err:
        raise DocumentReadError(
            f"reading the PDF {str(path)!r} needs pypdf: pip install pypdf (or rayflow[rag])"
        ) from err
    reader = pypdf.PdfReader(str(path))
    pages: _Pages = []
    for number, page in enumerate(reader.pages, start=1):
        pages.append((str(number), page.extract_text() or ""))
    return pages


def _read_json(path: Path, encoding: str) -> _Pages:
    data = json.loads(path.read_text(encoding=encoding))
    lines: list[str] = []
    _flatten_json(data, "", lines)
    return [(None, "\n".join(lines))]


def _flatten_json(value: Any, prefix: str, out: list[str]) -> None:
    """``{"a": {"b": 1}}`` -> ``a.b: 1``: one line per leaf, keeping keys next to their values for embedding."""
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten_json(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _flatten_json(item, f"{prefix}[{i}]", out)
    else:
        out.append(f"{prefix}: {value}" if prefix else str(value))


_READERS: dict[str, Callable[[Path, str], _Pages]] = {
    ".html": _read_html,
    ".htm": _read_html,
    ".pdf": _read_pdf,
    ".json": _read_json,
}
