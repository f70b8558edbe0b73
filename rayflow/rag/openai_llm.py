"""The OpenAI-compatible LLM client: any server with ``/v1/chat/completions`` (OpenAI, vLLM, llama.cpp...).

It sits at the end of a RAG flow: a step builds a prompt from retrieved nodes and awaits ``llm.acomplete``.
The object holds only settings, so it pickles into step actors; the ``openai`` clients are built lazily, one
async client and one concurrency semaphore per event loop (an asyncio object is bound to the loop that made
it), and are never pickled. Retries (429, 5xx, connection errors, with backoff) are the ``openai`` client's.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rayflow.rag.llm_types import (
    LLM,
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    LLMError,
    LLMTimeoutError,
    MessageLike,
    to_chat_messages,
)

__all__ = ["OpenAI", "resolve_api_base", "resolve_api_key"]

#: Key sent when none is configured, so local servers that ignore keys work without setup.
NO_KEY = "not-needed"


def resolve_api_base(api_base: str | None = None) -> str | None:
    """``api_base``, else ``OPENAI_BASE_URL``, else ``OPENAI_API_BASE``, else None (OpenAI's own endpoint)."""
    return api_base or os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_BASE") or None


def resolve_api_key(api_key: str | None = None) -> str:
    """``api_key``, else ``OPENAI_API_KEY``, else ``"not-needed"``."""
    return api_key or os.environ.get("OPENAI_API_KEY") or NO_KEY


class OpenAI(LLM):
    """A chat model behind an OpenAI-compatible HTTP API.

    ``api_base``/``api_key`` are read from the arguments or the environment when the object is built (so a
    copy shipped to an actor talks to the same server). At most ``max_concurrency`` requests of this object
    are in flight per event loop (and per process for the sync methods); more wait their turn. A request
    that times out is retried ``max_retries`` times, then raises :class:`LLMTimeoutError`; other failures
    raise :class:`LLMError` naming the model and server. ``is_chat_model=False`` sends completions to
    ``/v1/completions`` instead of wrapping the prompt in a chat message.
    """

    def __init__(
        self,
        model: str = "gpt-4o-mini",
        api_base: str | None = None,
        api_key: str | None = None,
        temperature: float = 0.1,
        max_tokens: int | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        max_concurrency: int = 16,
        is_chat_model: bool = True,
        additional_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"OpenAI(max_concurrency=...) must be >= 1, got {max_concurrency}")
        self.model = model
        self.api_base = resolve_api_base(api_base)
        self.api_key = resolve_api_key(api_key)
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_concurrency = max_concurrency
        self.is_chat_model = is_chat_model
        self.additional_kwargs = dict(additional_kwargs or {})
        self._init_clients()

    def _init_clients(self) -> None:
        self._lock = threading.Lock()
        self._sync_client: Any = None
        self._sync_slots = threading.BoundedSemaphore(self.max_concurrency)
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Any, asyncio.Semaphore]] = (
            weakref.WeakKeyDictionary()
        )

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("_lock", "_sync_client", "_sync_slots", "_per_loop"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_clients()

    def __repr__(self) -> str:
        return f"OpenAI(model={self.model!r}, api_base={self.api_base!r})"

    # -- clients ------------------------------------------------------------------------------------------

    def _client_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "api_key": self.api_key,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
        }
        if self.api_base:
            kw["base_url"] = self.api_base
        return kw

    def _sync(self) -> Any:
        with self._lock:
            if self._sync_client is None:
                import openai

                self._sync_client = openai.OpenAI(**self._client_kwargs())
            return self._sync_client

    def _async(self) -> tuple[Any, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._per_loop.get(loop)
            if entry is None:
                import openai

                entry = (openai.AsyncOpenAI(**self._client_kwargs()), asyncio.Semaphore(self.max_concurrency))
                self._per_loop[loop] = entry
            return entry

    def _params(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        params: dict[str, Any] = {"model": self.model, "temperature": self.temperature}
        if self.max_tokens is not None:
            params["max_tokens"] = self.max_tokens
        params.update(self.additional_kwargs)
        params.update(kwargs)
        return params

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn the ``openai`` client's errors into rayflow's, naming the model and the server."""
        import openai

        where = f"model {self.model!r} at {self.api_base or 'api.openai.com'}"
        try:
            yield
        except openai.APITimeoutError as err:
            raise LLMTimeoutError(
                f"LLM request to {where} timed out after {self.timeout} s "
                f"(tried {self.max_retries + 1} times); raise OpenAI(timeout=...) or check the server"
            ) from err
        except openai.APIStatusError as err:
            raise LLMError(f"LLM request to {where} failed with HTTP {err.status_code}: {err.message}") from err
        except openai.APIConnectionError as err:
            raise LLMError(
                f"cannot reach LLM {where} (tried {self.max_retries + 1} times): {err}; "
                "set OPENAI_BASE_URL / OpenAI(api_base=...) or use rayflow.rag.LocalLLM()"
            ) from err

    # -- chat -----------------------------------------------------------------------------------------------

    def chat(self, messages: Sequence[MessageLike], **kwargs: Any) -> ChatResponse:
        """One chat reply, blocking (at most ``max_concurrency`` concurrent sync calls per process)."""
        wire = [m.to_dict() for m in to_chat_messages(messages)]
        with self._sync_slots, self._errors():
            resp = self._sync().chat.completions.create(messages=wire, **self._params(kwargs))
        return _chat_response(resp)

    async def achat(self, messages: Sequence[MessageLike], **kwargs: Any) -> ChatResponse:
        """One chat reply."""
        wire = [m.to_dict() for m in to_chat_messages(messages)]
        client, slots = self._async()
        async with slots:
            with self._errors():
                resp = await client.chat.completions.create(messages=wire, **self._params(kwargs))
        return _chat_response(resp)

    def stream_chat(self, messages: Sequence[MessageLike], **kwargs: Any) -> Iterator[ChatResponse]:
        """The reply chunk by chunk, blocking between chunks."""
        wire = [m.to_dict() for m in to_chat_messages(messages)]
        text = ""
        with self._sync_slots, self._errors():
            stream = self._sync().chat.completions.create(messages=wire, stream=True, **self._params(kwargs))
            with stream:
                for chunk in stream:
                    delta = _chunk_delta(chunk)
                    if delta:
                        text += delta
                        yield ChatResponse(ChatMessage("assistant", text), delta=delta, raw=chunk)

    async def _astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> AsyncIterator[ChatResponse]:
        wire = [m.to_dict() for m in messages]
        client, slots = self._async()
        text = ""
        async with slots:
            with self._errors():
                stream = await client.chat.completions.create(messages=wire, stream=True, **self._params(kwargs))
                async with stream:
                    async for chunk in stream:
                        delta = _chunk_delta(chunk)
                        if delta:
                            text += delta
                            yield ChatResponse(ChatMessage("assistant", text), delta=delta, raw=chunk)

    # -- completion (``is_chat_model=False`` uses /v1/completions) ----------------------------------------

    def complete(self, prompt: str, **kwargs: Any) -> CompletionResponse:
        """Complete ``prompt``, blocking."""
        if self.is_chat_model:
            return super().complete(prompt, **kwargs)
        with self._sync_slots, self._errors():
            resp = self._sync().completions.create(prompt=prompt, **self._params(kwargs))
        return CompletionResponse(text=resp.choices[0].text or "", raw=resp)

    async def acomplete(self, prompt: str, **kwargs: Any) -> CompletionResponse:
        """Complete ``prompt``."""
        if self.is_chat_model:
            return await super().acomplete(prompt, **kwargs)
        client, slots = self._async()
        async with slots:
            with self._errors():
                resp = await client.completions.create(prompt=prompt, **self._params(kwargs))
        return CompletionResponse(text=resp.choices[0].text or "", raw=resp)

    def stream_complete(self, prompt: str, **kwargs: Any) -> Iterator[CompletionResponse]:
        """Complete ``prompt`` chunk by chunk, blocking between chunks."""
        if self.is_chat_model:
            yield from super().stream_complete(prompt, **kwargs)
            return
        text = ""
        with self._sync_slots, self._errors():
            stream = self._sync().completions.create(prompt=prompt, stream=True, **self._params(kwargs))
            with stream:
                for chunk in stream:
                    delta = chunk.choices[0].text if chunk.choices else ""
                    if delta:
                        text += delta
                        yield CompletionResponse(text=text, delta=delta, raw=chunk)

    async def _astream_complete(self, prompt: str, **kwargs: Any) -> AsyncIterator[CompletionResponse]:
        if self.is_chat_model:
            async for chunk in super()._astream_complete(prompt, **kwargs):
                yield chunk
            return
        client, slots = self._async()
        text = ""
        async with slots:
            with self._errors():
                stream = await client.completions.create(prompt=prompt, stream=True, **self._params(kwargs))
                async with stream:
                    async for chunk in stream:
                        delta = chunk.choices[0].text if chunk.choices else ""
                        if delta:
                            text += delta
                            yield CompletionResponse(text=text, delta=delta, raw=chunk)


def _chat_response(resp: Any) -> ChatResponse:
    msg = resp.choices[0].message
    return ChatResponse(ChatMessage(msg.role or "assistant", msg.content or ""), raw=resp)


def _chunk_delta(chunk: Any) -> str:
    if not chunk.choices:
        return ""
    return chunk.choices[0].delta.content or ""
