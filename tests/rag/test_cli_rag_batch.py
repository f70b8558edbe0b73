"""``rayflow batch`` over the RAG example (``examples/batch_rag.py:workflow``): many questions through one warm
workflow on a Ray of the command's own, the LLM the test OpenAI server. Slow: it starts Ray, the index and the
embedding model in the subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from openai_server import OpenAIServer

ROOT = Path(__file__).resolve().parents[2]
QUESTIONS = [
    ("On which port are the Prometheus metrics exposed?", "9090"),
    ("How much does the Team plan cost per month?", "Team"),
    ("How do I create an API key?", "key"),
    ("What is the default rate limit per API key?", "rate"),
]


@pytest.mark.slow
def test_rayflow_batch_answers_every_question_of_the_rag_example(openai_server: OpenAIServer, tmp_path: Path) -> None:
    total = 100
    inputs = tmp_path / "questions.jsonl"
    inputs.write_text("".join(json.dumps({"query": f"{QUESTIONS[i % 4][0]} (#{i})"}) + "\n" for i in range(total)))
    out = tmp_path / "answers.jsonl"
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_BASE", "OPENAI_API_KEY")}
    env.update(
        RAY_ADDRESS="local",  # a Ray of its own: the model replicas it starts are detached, and end with it
        OPENAI_BASE_URL=openai_server.base_url,
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p),
    )
    args = ["batch", "examples/batch_rag.py:workflow", str(inputs), "-o", str(out), "--concurrency", "8"]
    done = subprocess.run(
        [sys.executable, "-m", "rayflow.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    records = sorted((json.loads(line) for line in out.read_text().splitlines()), key=lambda r: r["index"])
    assert [r["index"] for r in records] == list(range(total))
    assert [r["error"] for r in records] == [None] * total
    for record in records:
        question, expected = QUESTIONS[record["index"] % 4]
        assert record["input"] == {"query": f"{question} (#{record['index']})"}
        assert record["result"]["answer"].startswith("Received "), record  # the LLM's (the server's echo) answer
        assert expected in record["result"]["answer"], record
        assert len(record["result"]["sources"]) == 5
    chats = [r for r in openai_server.requests if r["path"] == "/v1/chat/completions"]
    assert len(chats) == total
