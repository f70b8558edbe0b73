"""The RAG examples end to end: examples/rag_pipeline.py and examples/batch_rag.py, as subprocesses.

They join the session's Ray (``RAY_ADDRESS``), with ``OPENAI_BASE_URL`` pointing at the test server so they stay
fast; one more run of ``rag_pipeline.py`` uses the offline SmolLM2 (``-m slow``). The tutorial's own RAG program
runs in tests/tutorial/.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cross_encoders import save_cross_encoder
from openai_server import OpenAIServer, prompt_of, start_openai_server

from tests import examples_support
from tests.examples_support import EXAMPLES

QUERY = "Where are API rate limits set, and how is a change applied?"
RATE_LIMITS_TEXT = "API rate limits are configured in the `rate_limits` section of `gateway.yaml`"
SUBPROCESS_TIMEOUT_S = 240.0
_ENDPOINT_VARS = ("OPENAI_BASE_URL", "OPENAI_API_BASE", "OPENAI_API_KEY")


@pytest.fixture(scope="module")
def cross_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A CrossEncoder made of the shipped MiniLM body and a zeroed scoring head, saved to disk.

    No trained cross-encoder can be downloaded offline, and an untrained head would
    score at random. A zero head scores every pair the same, so the rerank (a stable sort) keeps the retriever's
    order: the model still runs in its pool for every pair, and what reaches the LLM is decided by the real
    MiniLM retrieval.
    """
    from sentence_transformers import CrossEncoder

    path = save_cross_encoder(tmp_path_factory.mktemp("cross-encoder"), zero_head=True)
    scores = CrossEncoder(path).predict([(QUERY, "rate limits in gateway.yaml"), (QUERY, "bananas are yellow")])
    assert scores[0] == scores[1], "a zeroed head should score every pair the same"
    return path


# -- the examples, as subprocesses ---------------------------------------------------------------------------


@pytest.fixture
def example_env(ray_cluster: None) -> dict[str, str]:
    """The session cluster's address, this checkout on the path, and no OpenAI endpoint unless a test adds one."""
    return examples_support.example_env(drop=_ENDPOINT_VARS)


def run_example(env: dict[str, str], script: str, *args: str) -> str:
    return examples_support.run_example(env, script, *args, timeout=SUBPROCESS_TIMEOUT_S)


def _sources(out: str) -> list[str]:
    """The file names under ``Sources:`` in rag_pipeline.py's output."""
    lines = out.splitlines()
    start = lines.index("Sources:") + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("  ")), len(lines))
    return [line.split()[1] for line in lines[start:end]]


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with start_openai_server() as s:  # the default reply echoes the context lines it received
        yield s


def test_rag_pipeline_example_streams_progress_and_tokens_then_prints_answer_and_sources(
    example_env: dict[str, str], ray_env: None, server: OpenAIServer
) -> None:
    out = run_example({**example_env, "OPENAI_BASE_URL": server.base_url}, "rag_pipeline.py")

    assert f"question: {QUERY}" in out
    assert "LLM: OpenAI(model='gpt-4o-mini'" in out and "(OPENAI_BASE_URL is set)" in out
    assert "reranker: CosineRerank(top_n=5): no trained cross-encoder ships offline" in out
    assert "indexed 19 nodes" in out
    lines = out.splitlines()
    progress = [line for line in lines if line.startswith("[") and line.endswith("]")]
    assert progress[:2] == ["[retrieved 15 nodes]", "[reranked to 5 with CosineRerank]"]
    (request,) = [r for r in server.requests if r["path"] == "/v1/chat/completions"]
    assert request["stream"] is True, "the answer was not streamed"
    assert RATE_LIMITS_TEXT in prompt_of(request)
    answer = lines[lines.index("Answer:") + 1]
    assert answer.startswith("Received ") and "rate_limits" in answer
    assert answer in out.split("\n\nAnswer:")[0], "the streamed tokens did not reach the console before the answer"
    sources = _sources(out)
    assert len(sources) == 5 and sources[0] == "rate_limits.md"
    assert lines[-1].startswith("done in ")


@pytest.mark.slow  # ~15 s; tests/rag/test_rerank.py checks the cross-encoder itself by default
def test_rag_pipeline_example_takes_a_query_a_data_directory_and_a_cross_encoder(
    example_env: dict[str, str], ray_env: None, server: OpenAIServer, tmp_path: Path, cross_encoder_dir: str
) -> None:
    (tmp_path / "notes.txt").write_text("The staging cluster is called heron and lives in eu-west-3.\n")
    (tmp_path / "other.md").write_text("# Lunch\n\nThe cafeteria opens at noon.\n")
    out = run_example(
        {**example_env, "OPENAI_BASE_URL": server.base_url},
        "rag_pipeline.py",
        *("--data", str(tmp_path), "--query", "Where does the staging cluster live?", "--llm", "none"),
        *("--rerank-model", cross_encoder_dir),
    )
    assert "LLM: none" in out and "[retrieved 2 nodes]" in out, out
    assert f"reranker: SentenceTransformerRerank(model={cross_encoder_dir!r}, top_n=5)" in out, out
    assert "[reranked to 2 with SentenceTransformerRerank]" in out, out
    assert _sources(out)[0] == "notes.txt", out
    assert "heron" in out.split("Answer:")[1], out
    assert server.requests == [], "--llm none still called the LLM"


def test_a_rerank_model_that_cannot_load_fails_before_any_work(example_env: dict[str, str], tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-model")
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "rag_pipeline.py"), "--rerank-model", missing],
        env=example_env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
    )
    assert proc.returncode == 1
    assert f"--rerank-model: cross-encoder model {missing!r}: no such directory" in proc.stderr
    assert "CosineRerank" in proc.stderr
    assert "Ray:" not in proc.stdout


@pytest.mark.slow  # ~13 s; the streaming example above runs the same pipeline by default
def test_batch_rag_example_runs_many_queries_through_one_workflow(
    example_env: dict[str, str], ray_env: None, server: OpenAIServer, tmp_path: Path
) -> None:
    questions = [
        "What is the default rate limit per API key?",
        "How do I create an API key?",
        "On which port are the Prometheus metrics exposed?",
        "How much does the Team plan cost per month?",
        "How do I open a support ticket?",
        "Why does memory keep growing?",
    ]
    queries = tmp_path / "queries.txt"
    queries.write_text("# one question per line\n" + "\n".join(questions) + "\n")
    out = run_example(
        {**example_env, "OPENAI_BASE_URL": server.base_url},
        "batch_rag.py",
        *("--queries", str(queries), "--concurrency", "3"),
    )
    lines = out.splitlines()
    done = [line for line in lines if line.startswith("[") and "/6]" in line]
    assert len(done) == 6
    assert {q for q in questions if any(repr(q) in line for line in done)} == set(questions)
    assert all("Received " in line for line in done), "an answer did not come from the LLM"
    chats = [r for r in server.requests if r["path"] == "/v1/chat/completions"]
    assert len(chats) == 7  # the warm-up query, then the six
    assert any(line.startswith("6 queries in ") and "queries/s (concurrency 3)" in line for line in lines)


@pytest.mark.slow
def test_rag_pipeline_example_answers_offline_with_the_local_llm(example_env: dict[str, str], ray_env: None) -> None:
    out = run_example(example_env, "rag_pipeline.py", "--max-new-tokens", "32")
    assert "LLM: LocalLLM SmolLM2-135M-Instruct" in out and "so offline" in out
    answer_block = out.split("\nAnswer:\n")[1].split("\n\nSources:")[0]
    assert answer_block.strip(), "the local LLM gave an empty answer"
    assert _sources(out)[0] == "rate_limits.md"
