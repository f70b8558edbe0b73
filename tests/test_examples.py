"""Smoke tests for examples/: each script runs in its own process and joins the session Ray (RAY_ADDRESS)."""

from __future__ import annotations

import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests import examples_support
from tests.examples_support import EXAMPLES, ROOT

TIMEOUT_S = 90.0


@pytest.fixture(scope="module")
def example_env(ray_cluster: None) -> dict[str, str]:
    """The environment an example runs in: the session cluster's address, and this checkout on the path."""
    return examples_support.example_env()


def run_example(env: dict[str, str], script: str, *args: str) -> str:
    return examples_support.run_example(env, script, *args, timeout=TIMEOUT_S)


def assert_lines_in_order(out: str, expected: list[str]) -> None:
    """Each expected line appears in ``out``, in this order (Ray may interleave worker log lines)."""
    lines = iter(out.splitlines())
    for want in expected:
        assert any(line == want for line in lines), f"missing or out of order: {want!r} in:\n{out}"


def test_first_workflow(example_env: dict[str, str], ray_env: None) -> None:
    out = run_example(example_env, "first_workflow.py", "--query", "What is a vector index?")
    expected = "[no LLM] would send: Please answer in one or two sentences: What is a vector index?"
    assert f"{expected} (context kept the question: True)" in out.splitlines(), out


def test_branching(example_env: dict[str, str], ray_env: None) -> None:
    out = run_example(example_env, "branching.py")
    assert "'What is RAG?' -> direct: one lookup for 'What is RAG?'" in out.splitlines(), out
    parts = "'Compare dense and sparse retrieval' + 'then explain reranking trade-offs'"
    assert f"-> in depth: 2 lookups for {parts}" in out, out


def test_parallel_fanout(example_env: dict[str, str], ray_env: None) -> None:
    out = run_example(example_env, "parallel_fanout.py", "--n", "7")
    lines = out.splitlines()
    # Results come in the order the lookups finished: the first five of seven, each one source.
    shown = [re.fullmatch(r"(wiki|tickets|manuals)-(\d): 2 pages about vector databases", line) for line in lines[:5]]
    assert all(shown) and len({m.group(2) for m in shown if m}) == 5, out
    assert "and 2 more" in lines
    assert "combined 7 lookups in" in out


def test_streaming(example_env: dict[str, str], ray_env: None) -> None:
    out = run_example(example_env, "streaming.py")
    assert_lines_in_order(
        out,
        [
            "stage 1/2: searching the index",
            "stage 2/2: drafting the reply",
            "result: reply to 'how do retries work?'",
        ],
    )


def test_shared_state(example_env: dict[str, str], ray_env: None) -> None:
    out = run_example(example_env, "shared_state.py")
    assert_lines_in_order(
        out,
        [
            "user: ada",
            "words: 102",
            "visits: 12",
            "missing: <none>",
            "owner_team: search",
            "missing_without_default: ValueError",
            "atomic updates: True",
        ],
    )


def test_error_fallback(example_env: dict[str, str], ray_env: None) -> None:
    out = run_example(example_env, "error_fallback.py")
    assert_lines_in_order(
        out,
        [
            "ok: fresh results for 'rayflow docs'",
            "fallback (cached answer) after: search backend unavailable for 'search during outage'",
            "validated: 3",
            "caught ValueError: amount must be >= 0, got -1",
        ],
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def fastapi_server(example_env: dict[str, str], ray_env: None) -> Iterator[str]:
    """The URL of ``python examples/fastapi_app.py --port N``, started up; stopped with Ctrl-C afterwards."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "fastapi_app.py"), "--port", str(port)],
        env=example_env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put("")  # end of output

    threading.Thread(target=pump, daemon=True).start()

    def read_until(marker: str) -> None:
        deadline = time.monotonic() + TIMEOUT_S
        while not any(marker in line for line in seen):
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            assert line, "fastapi_app.py exited early:\n" + "".join(seen)
            seen.append(line)

    try:
        read_until("Application startup complete")
        yield f"http://127.0.0.1:{port}"
        proc.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully: the lifespan closes the workflow
        read_until("Application shutdown complete")
        assert proc.wait(timeout=TIMEOUT_S) == 0, "".join(seen)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_fastapi_app(fastapi_server: str) -> None:
    with httpx.Client(base_url=fastapi_server, timeout=TIMEOUT_S) as client:
        for question in ("What is RAG?", "Which port serves the Prometheus metrics?"):
            response = client.post("/ask", json={"question": question})
            assert response.status_code == 200, response.text
            words = len(question.split())
            assert response.json() == {"reply": f"[no LLM] {words}-word question: {question}"}
        assert client.post("/ask", json={}).status_code == 422
