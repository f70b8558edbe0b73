"""The values every LLM client speaks: chat messages, completion and chat responses, and the client interface.

A step hands a prompt (or a list of :class:`ChatMessage`) to an LLM and gets a :class:`CompletionResponse`
(or :class:`ChatResponse`) back; streaming calls yield one response per chunk whose ``.delta`` is the new text
and whose ``.text`` (or ``.message.content``) is everything so far, as in LlamaIndex. These are plain
dataclasses, so they pickle and travel inside events between step actors.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

from rayflow.errors import RayflowError

__all__ = [
    "LLM",
    "AStream",
    "ChatMessage",
    "ChatResponse",
    "CompletionResponse",
    "LLMError",
    "LLMTimeoutError",
    "MessageLike",
    "MessageRole",
    "ModelNotAvailableError",
    "to_chat_messages",
]


_T = TypeVar("_T")


class LLMError(RayflowError):
    """An LLM request failed (server error after retries, timeout, or a dead model actor); names the model."""


class LLMTimeoutError(LLMError, TimeoutError):
    """An LLM request timed out after its retries; names the model, the server and the timeout."""


class ModelNotAvailableError(RayflowError):
    """A model could not be found locally (offline) and could not be fetched; says how to provide one."""


class MessageRole(str, Enum):
    """Who wrote a chat message."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


@dataclass
class ChatMessage:
    """One chat turn: ``ChatMessage("user", "hi")`` or ``ChatMessage(role=MessageRole.USER, content=...)``."""

    role: str = MessageRole.USER.value
    content: str | None = ""
    additional_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.role, MessageRole):
            self.role = self.role.value

    def to_dict(self) -> dict[str, str]:
        """The OpenAI wire form (and the form chat templates take)."""
        return {"role": str(self.role), "content": self.content or ""}

    def __str__(self) -> str:
        return f"{self.role}: {self.content}"


@dataclass
class CompletionResponse:
    """A completion; in a stream, ``text`` is the text so far and ``delta`` the piece this chunk added."""

    text: str
    delta: str | None = None
    raw: Any = None
    additional_kwargs: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.text


@dataclass
class ChatResponse:
    """A chat reply; in a stream, ``message.content`` is the reply so far and ``delta`` this chunk's piece."""

    message: ChatMessage
    delta: str | None = None
    raw: Any = None
    additional_kwargs: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return str(self.message)


#: A chat message, or its ``{"role": ..., "content": ...}`` dict form.
MessageLike = ChatMessage | dict[str, Any]


def to_chat_messages(messages: Sequence[MessageLike]) -> list[ChatMessage]:
    """ChatMessages or ``{"role": ..., "content": ...}`` dicts; anything else is a TypeError naming it."""
    out: list[ChatMessage] = []
    for i, m in enumerate(messages):
        if isinstance(m, ChatMessage):
            out.append(m)
        elif isinstance(m, dict) and "role" in m:
            out.append(ChatMessage(role=m["role"], content=m.get("content", "")))
        else:
            raise TypeError(f"chat message {i} must be a ChatMessage or a dict with 'role', got {type(m).__name__}")
    return out


class LLM(ABC):
    """What every rayflow LLM offers; the sync methods block, the ``a*`` ones are for async steps.

    Subclasses implement chat and chat streaming; completion is a chat with one user message unless a
    subclass overrides it. Instances must pickle (they sit on ``Settings`` and on workflows shipped to
    actors): clients and handles are built lazily and left out of the pickled state.
    """

    model: str

    @abstractmethod
    def chat(self, messages: Sequence[MessageLike], **kwargs: Any) -> ChatResponse:
        """One chat reply, blocking."""

    @abstractmethod
    async def achat(self, messages: Sequence[MessageLike], **kwargs: Any) -> ChatResponse:
        """One chat reply."""

    @abstractmethod
    def stream_chat(self, messages: Sequence[MessageLike], **kwargs: Any) -> Iterator[ChatResponse]:
        """The reply chunk by chunk, blocking between chunks."""

    @abstractmethod
    def _astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> AsyncIterator[ChatResponse]:
        """The reply chunk by chunk as the model produces it (an async generator)."""

    def astream_chat(self, messages: Sequence[MessageLike], **kwargs: Any) -> AStream[ChatResponse]:
        """The reply chunk by chunk: ``async for r in llm.astream_chat(msgs)`` (``await`` first works too)."""
        return AStream(self._astream_chat(to_chat_messages(messages), **kwargs))

    def complete(self, prompt: str, **kwargs: Any) -> CompletionResponse:
        """Complete ``prompt``, blocking."""
        return _as_completion(self.chat([ChatMessage("user", prompt)], **kwargs))

    async def acomplete(self, prompt: str, **kwargs: Any) -> CompletionResponse:
        """Complete ``prompt``."""
        return _as_completion(await self.achat([ChatMessage("user", prompt)], **kwargs))

    def stream_complete(self, prompt: str, **kwargs: Any) -> Iterator[CompletionResponse]:
        """Complete ``prompt`` chunk by chunk, blocking between chunks."""
        for chunk in self.stream_chat([ChatMessage("user", prompt)], **kwargs):
            yield _as_completion(chunk)

    def astream_complete(self, prompt: str, **kwargs: Any) -> AStream[CompletionResponse]:
        """Complete ``prompt`` chunk by chunk: ``async for r in llm.astream_complete(p): print(r.delta)``.

        LlamaIndex's spelling ``async for r in await llm.astream_complete(p)`` works too.
        """
        return AStream(self._astream_complete(prompt, **kwargs))

    async def _astream_complete(self, prompt: str, **kwargs: Any) -> AsyncIterator[CompletionResponse]:
        async for chunk in self._astream_chat([ChatMessage("user", prompt)], **kwargs):
            yield _as_completion(chunk)


class AStream(AsyncIterator[_T]):
    """An async generator that can also be awaited (giving itself), so both LlamaIndex spellings work.

    Breaking out of the loop early closes the generator, which stops the request (and the generation).
    """

    def __init__(self, gen: AsyncIterator[_T]) -> None:
        self._gen = gen

    def __aiter__(self) -> AStream[_T]:
        return self

    async def __anext__(self) -> _T:
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        """Stop the stream and release what it holds (connection, concurrency slot, model actor work)."""
        aclose = getattr(self._gen, "aclose", None)
        if aclose is not None:
            await aclose()

    def __await__(self) -> Generator[Any, None, AStream[_T]]:
        return self._self().__await__()

    async def _self(self) -> AStream[_T]:
        return self


def _as_completion(resp: ChatResponse) -> CompletionResponse:
    return CompletionResponse(
        text=resp.message.content or "",
        delta=resp.delta,
        raw=resp.raw,
        additional_kwargs=resp.additional_kwargs,
    )
