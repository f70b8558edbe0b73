"""A small OpenAI-compatible server for tests: real HTTP on 127.0.0.1, deterministic answers, no network.

Endpoints: ``POST /v1/embeddings`` (hashed bag-of-words vectors, ``float`` or ``base64`` encoding),
``POST /v1/chat/completions`` and ``POST /v1/completions`` (with ``"stream": true`` as server-sent events).
What the completions say is a pluggable function ``reply(prompt, body) -> str``; the default echoes the context lines
it received. Every request body is recorded in ``server.requests`` (with its ``"path"``), the bearer token it came
with in ``server.api_keys``, and ``server.fail_next`` makes the next N requests answer HTTP 500, to test retries.
``delay_s`` holds every answer back that long (concurrent requests wait together), to stand in for a model.

Use::

    with start_openai_server() as server:          # or the ``openai_server`` fixture of tests/rag/conftest.py
        OpenAIEmbedding(api_base=server.base_url)   # base_url ends in /v1

or as a process of its own (the RAG benchmark's LLM): ``python tests/rag/openai_server.py --delay-ms 50`` prints
its base URL on the first line of stdout and serves until it is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

Reply = Callable[[str, dict[str, Any]], str]

EMBED_DIM = 64


def hashed_embedding(text: str, dim: int = EMBED_DIM) -> list[float]:
    """The server's embedding of ``text``: signed hashed bag of lowercase words, L2-normalized."""
    vector = np.zeros(dim, dtype=np.float32)
    for word in re.findall(r"\w+", text.lower()):
        digest = int(hashlib.sha1(word.encode()).hexdigest()[:8], 16)
        vector[digest % dim] += 1.0 if digest & 1 << 31 else -1.0
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm else vector).tolist()  # type: ignore[no-any-return]


def context_lines(prompt: str) -> list[str]:
    """The non-empty lines between ``Context:`` and ``Question:`` (the tutorial's prompt), else all lines."""
    lines = prompt.splitlines()
    stripped = [ln.strip() for ln in lines]
    if "Context:" in stripped:
        start = stripped.index("Context:") + 1
        end = next((i for i in range(start, len(stripped)) if stripped[i].startswith("Question:")), len(lines))
        lines = lines[start:end]
    return [ln.strip() for ln in lines if ln.strip()]


def echo_context_reply(prompt: str, body: dict[str, Any]) -> str:
    """The default reply: which context lines the model received, so tests can check what a pipeline sent."""
    lines = context_lines(prompt)
    return f"Received {len(lines)} context lines: " + " | ".join(lines)


def prompt_of(body: dict[str, Any]) -> str:
    """The text a request asks about: ``prompt`` for completions, the messages' contents joined for chat."""
    if "messages" in body:
        return "\n".join(str(m.get("content") or "") for m in body["messages"])
    prompt = body.get("prompt", "")
    return "\n".join(prompt) if isinstance(prompt, list) else str(prompt)


@dataclass
class OpenAIServer:
    """A running server; ``base_url`` is ``http://127.0.0.1:<port>/v1``."""

    base_url: str
    reply: Reply
    requests: list[dict[str, Any]] = field(default_factory=list)
    api_keys: list[str] = field(default_factory=list)
    fail_next: int = 0
    delay_s: float = 0.0
    record: bool = True
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _take_failure(self) -> bool:
        with self._lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                return True
            return False

    def paths(self) -> list[str]:
        """The path of every request received, in order."""
        return [r["path"] for r in self.requests]


def _build_app(server: OpenAIServer) -> FastAPI:
    # FastAPI reads the handlers' annotations from this module's globals, hence the module-level imports.
    app = FastAPI()

    async def receive(request: Request, path: str) -> dict[str, Any] | None:
        body: dict[str, Any] = await request.json()
        if server.record:
            server.requests.append({"path": path, **body})
            server.api_keys.append(request.headers.get("authorization", "").removeprefix("Bearer "))
        if server.delay_s > 0:
            await asyncio.sleep(server.delay_s)
        return None if server._take_failure() else body

    def failure() -> JSONResponse:
        return JSONResponse({"error": {"message": "injected failure", "type": "server_error"}}, status_code=500)

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Any:
        body = await receive(request, "/v1/embeddings")
        if body is None:
            return failure()
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dim = int(body.get("dimensions") or EMBED_DIM)
        data = []
        for i, text in enumerate(inputs):
            vector = hashed_embedding(str(text), dim)
            if body.get("encoding_format") == "base64":
                encoded: Any = base64.b64encode(np.asarray(vector, dtype=np.float32).tobytes()).decode()
            else:
                encoded = vector
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        tokens = sum(len(str(t).split()) for t in inputs)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return {"object": "list", "model": body.get("model", "test"), "data": data, "usage": usage}

    def completion(body: dict[str, Any], chat: bool) -> Any:
        text = server.reply(prompt_of(body), body)
        created, model = int(time.time()), body.get("model", "test")
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{hashlib.sha1(text.encode()).hexdigest()[:12]}"
        kind = "chat.completion" if chat else "text_completion"
        if not body.get("stream"):
            choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
            else:
                choice["text"] = text
            n = len(text.split())
            usage = {"prompt_tokens": 1, "completion_tokens": n, "total_tokens": n + 1}
            return {"id": rid, "object": kind, "created": created, "model": model, "choices": [choice], "usage": usage}

        async def events() -> AsyncIterator[str]:
            pieces = re.findall(r"\S+\s*", text) or [""]
            for i, piece in enumerate(pieces):
                if chat:
                    delta: dict[str, Any] = {"content": piece}
                    if i == 0:
                        delta["role"] = "assistant"
                    choice = {"index": 0, "delta": delta, "finish_reason": None}
                else:
                    choice = {"index": 0, "text": piece, "finish_reason": None}
                chunk = {"id": rid, "object": f"{kind}.chunk" if chat else kind, "created": created,
                         "model": model, "choices": [choice]}  # fmt: skip
                yield f"data: {json.dumps(chunk)}\n\n"
            end = {"index": 0, "finish_reason": "stop", **({"delta": {}} if chat else {"text": ""})}
            last = {"id": rid, "object": f"{kind}.chunk" if chat else kind, "created": created, "model": model,
                    "choices": [end]}  # fmt: skip
            yield f"data: {json.dumps(last)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        body = await receive(request, "/v1/chat/completions")
        return failure() if body is None else completion(body, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        body = await receive(request, "/v1/completions")
        return failure() if body is None else completion(body, chat=False)

    return app


@contextmanager
def start_openai_server(reply: Reply = echo_context_reply, delay_s: float = 0.0) -> Iterator[OpenAIServer]:
    """Serve on a free port of 127.0.0.1 in a background thread; stopped (and the thread joined) on exit."""
    import uvicorn

    # The socket listens before the server thread starts: a request made at once waits in its backlog until
    # uvicorn accepts it, so there is nothing to wait for here.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = int(sock.getsockname()[1])
    server = OpenAIServer(base_url=f"http://127.0.0.1:{port}/v1", reply=reply, delay_s=delay_s)
    config = uvicorn.Config(_build_app(server), log_level="warning", lifespan="off")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, name=f"openai-server-{port}", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        uv.should_exit = True
        thread.join(timeout=10.0)
        sock.close()


def main() -> None:
    """Serve until killed; the first line of stdout is the base URL. Requests are not recorded (a long run)."""
    parser = argparse.ArgumentParser(description="an OpenAI-compatible test server on 127.0.0.1")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="answer every request after this long")
    args = parser.parse_args()
    with start_openai_server(delay_s=args.delay_ms / 1000.0) as server:
        server.record = False
        print(server.base_url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
