"""The public surface of rayflow.rag: ``__all__`` names exactly what loads, and importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import rayflow.rag


def test_all_matches_the_lazy_exports_and_every_name_loads() -> None:
    assert rayflow.rag.__all__ == sorted(rayflow.rag._EXPORTS)
    for name in rayflow.rag.__all__:
        assert getattr(rayflow.rag, name) is not None, name


def test_importing_rayflow_rag_imports_neither_torch_nor_faiss() -> None:
    heavy = "('torch', 'faiss', 'sentence_transformers')"
    code = f"import sys, rayflow.rag; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
