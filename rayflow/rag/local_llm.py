"""The offline LLM: SmolLM2-135M-Instruct (or any GGUF / transformers model) served by one shared Ray actor.

Where it sits: a step calls ``await llm.acomplete(prompt)`` on a :class:`LocalLLM`; the call goes to ONE
named, detached actor (``rayflow.llm.smollm2`` for the default model) that holds the model, so every step
actor and every run share one copy. The first start reads the GGUF file (about 18 s for SmolLM2 on 2 cores)
and writes the de-quantized weights under ``$RAYFLOW_CACHE_DIR`` (default ``~/.cache/rayflow``), so later
starts take a few seconds. Requests are served one at a time in arrival order; streaming yields text pieces
while the model generates (a Ray streaming generator). :func:`shutdown_llms` kills the actors.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

from rayflow.rag.llm_actor import HOW_TO_GET_A_MODEL, LocalLLMActor, default_gguf_path
from rayflow.rag.llm_types import (
    LLM,
    ChatMessage,
    ChatResponse,
    LLMError,
    MessageLike,
    ModelNotAvailableError,
    to_chat_messages,
)

__all__ = ["LocalLLM", "default_gguf_path", "shutdown_llms"]

#: Prefix of every local LLM actor's name; :func:`shutdown_llms` kills the actors named so.
ACTOR_PREFIX = "rayflow.llm."


class LocalLLM(LLM):
    """A chat model run by rayflow itself, offline: SmolLM2-135M-Instruct unless ``model_path`` says else.

    ``model_path`` is a ``.gguf`` file or a transformers model directory. The object holds only settings and
    pickles into step actors; the model lives in one detached actor found by name, created by the first call
    (``num_gpus`` and ``num_threads`` take effect then). The chat template of the model is applied to prompts.
    ``temperature=0`` decodes greedily. ``num_threads`` (torch threads of the actor): default half the cores.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        max_new_tokens: int = 128,
        num_gpus: float = 0,
        temperature: float = 0.0,
        cache_dir: str | None = None,
        num_threads: int | None = None,
    ) -> None:
        self.model_path = str(model_path) if model_path is not None else None
        self.max_new_tokens = max_new_tokens
        self.num_gpus = num_gpus
        self.temperature = temperature
        self.cache_dir = cache_dir
        self.num_threads = num_threads
        if self.model_path is None:
            self.model = "smollm2-135m-instruct"
            self.actor_name = ACTOR_PREFIX + "smollm2"
        else:
            stem = Path(self.model_path).name.removesuffix(".gguf")
            digest = hashlib.sha1(os.path.abspath(self.model_path).encode()).hexdigest()[:8]
            self.model = stem
            self.actor_name = f"{ACTOR_PREFIX}{stem}-{digest}"
        self._handle: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handle"] = None
        return state

    def __repr__(self) -> str:
        return f"LocalLLM(model={self.model!r}, actor={self.actor_name!r})"

    def _actor(self) -> Any:
        if self._handle is None:
            import ray

            from rayflow.config import settings
            from rayflow.runtime.cluster import ensure_ray

            source = self.model_path or str(default_gguf_path())
            if not os.path.exists(source):
                raise ModelNotAvailableError(f"LocalLLM: model_path {source!r} does not exist; {HOW_TO_GET_A_MODEL}")
            ensure_ray()
            self._handle = (
                ray.remote(LocalLLMActor)
                .options(
                    name=self.actor_name,
                    namespace=settings().namespace,
                    lifetime="detached",
                    get_if_exists=True,
                    num_cpus=0,
                    num_gpus=self.num_gpus,
                )
                .remote(source, self.cache_dir, "cuda" if self.num_gpus > 0 else "cpu", self.num_threads)
            )
        return self._handle

    def _params(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {
            "max_new_tokens": int(kwargs.pop("max_new_tokens", kwargs.pop("max_tokens", self.max_new_tokens))),
            "temperature": float(kwargs.pop("temperature", self.temperature)),
        }

    def _failed(self, err: Exception, attempt: int) -> LLMError | None:
        """None: the actor was gone (killed or exited), so retry once with a new one; else the error."""
        import ray

        if isinstance(err, ray.exceptions.RayActorError):
            self._handle = None
            if attempt == 0 and not getattr(err, "actor_init_failed", False):
                return None
            return LLMError(f"local LLM actor {self.actor_name!r} (model {self.model!r}) died: {err}")
        return LLMError(f"local LLM {self.model!r} (actor {self.actor_name!r}) failed: {err}")

    def info(self) -> dict[str, Any]:
        """Facts of the running model: ``load_s``, ``loaded_from`` (gguf/cache/directory), ``device``, and
        the last request's ``tokens`` and ``seconds``."""
        import ray

        return dict(ray.get(self._actor().info.remote()))

    # -- chat ----------------------------------------------------------------------------------------------

    def chat(self, messages: Sequence[MessageLike], **kwargs: Any) -> ChatResponse:
        """One chat reply, blocking (do not call it from an async step: use :meth:`achat`)."""
        import ray

        wire, params = [m.to_dict() for m in to_chat_messages(messages)], self._params(kwargs)
        for attempt in range(2):
            try:
                out = ray.get(self._actor().generate.remote(wire, **params))
                return ChatResponse(ChatMessage("assistant", out["text"]), raw=out)
            except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as err:
                if (failure := self._failed(err, attempt)) is not None:
                    raise failure from err
        raise AssertionError("unreachable")

    async def achat(self, messages: Sequence[MessageLike], **kwargs: Any) -> ChatResponse:
        """One chat reply."""
        import ray

        wire, params = [m.to_dict() for m in to_chat_messages(messages)], self._params(kwargs)
        for attempt in range(2):
            try:
                out = await self._actor().generate.remote(wire, **params)
                return ChatResponse(ChatMessage("assistant", out["text"]), raw=out)
            except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as err:
                if (failure := self._failed(err, attempt)) is not None:
                    raise failure from err
        raise AssertionError("unreachable")

    def stream_chat(self, messages: Sequence[MessageLike], **kwargs: Any) -> Iterator[ChatResponse]:
        """The reply piece by piece, blocking between pieces."""
        import ray

        wire, params = [m.to_dict() for m in to_chat_messages(messages)], self._params(kwargs)
        text = ""
        for attempt in range(2):
            gen = self._actor().stream.options(num_returns="streaming").remote(wire, **params)
            done = False
            try:
                for ref in gen:
                    delta = ray.get(ref)
                    text += delta
                    yield ChatResponse(ChatMessage("assistant", text), delta=delta)
                done = True
                return
            except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as err:
                done = True
                failure = self._failed(err, attempt if not text else 1)  # retry only before the first piece
                if failure is not None:
                    raise failure from err
            finally:
                if not done:  # the caller stopped reading: stop generating
                    ray.cancel(gen)

    async def _astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> AsyncIterator[ChatResponse]:
        import ray

        wire, params = [m.to_dict() for m in messages], self._params(kwargs)
        text = ""
        for attempt in range(2):
            gen = self._actor().stream.options(num_returns="streaming").remote(wire, **params)
            done = False
            try:
                async for ref in gen:
                    delta = await ref
                    text += delta
                    yield ChatResponse(ChatMessage("assistant", text), delta=delta)
                done = True
                return
            except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as err:
                done = True
                failure = self._failed(err, attempt if not text else 1)  # retry only before the first piece
                if failure is not None:
                    raise failure from err
            finally:
                if not done:  # the caller stopped reading: stop generating
                    ray.cancel(gen)


def shutdown_llms() -> list[str]:
    """End every local LLM actor of rayflow's namespace (``RAYFLOW_NAMESPACE``) and return their names; no Ray:
    nothing. Actors of other namespaces are left alone, whatever their names.

    Clients built before keep working: their next call starts a new actor.
    """
    import ray

    from rayflow.runtime.actors import own_named_actors, stop_actors_sync

    if not ray.is_initialized():
        return []
    found = own_named_actors(ACTOR_PREFIX)
    stop_actors_sync(list(found.values()))
    return sorted(found)
