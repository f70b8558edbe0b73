"""The tutorial's programs (shared/seed/), read when the tests run, ported by their import lines alone, run on rayflow.

Nothing of the tutorial is stored here: tutorial_source.py finds its code blocks in the text, and every expected
value that comes from the tutorial (its questions, model names, messages) is read from the block under test.

What runs, and how:

- Complete programs (the first workflow, the RAG workflow) run as ``python program.py``, as the tutorial says, each
  in its own process with the environment a user sets (program_runs.py): ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``
  naming the local test server, a Hugging Face cache holding the reranker's cross-encoder, and an embedded Ray that
  the program starts and that must end with it.
- Blocks that need something an earlier block gave the reader (the branching block reads ``Settings``, the
  streaming program sleeps with ``asyncio``; neither imports it) fail as written: the tests show how, then run
  them in the session of a reader who ran the blocks before (their imports and settings), with those that define
  a workflow but never run it driven by session_drivers.py, all in one process and one Ray (reader_session.py).
- Fragments that are not programs: the FAQ's ``ctx.set``/``ctx.get`` pair is two methods shown without their
  class and with a placeholder event (``MyEvent(...)``): it runs once put in a class, with ``MyEvent`` supplied.
  The FastAPI endpoint and the error-handling step use names they never define (a request model, a workflow, the
  reader's own events and risky call): they are compiled and run as far as they go, to the first such name.
"""

from __future__ import annotations

import ast
import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hf_cache import install_in_cache
from program_runs import API_KEY, DATA, ROOT, Finished, run_program, user_environment, workdir
from session_drivers import LONG_QUESTION, PARALLEL_TIMEOUT_S, SHORT_QUESTION
from tutorial_source import (
    SEED_DIR_VARIABLE,
    Block,
    Tutorial,
    bound_names,
    call_keywords,
    kind_of,
    port,
    reader_prelude,
    string_constants,
    tutorial_path,
    undefined_names,
)

from rayflow.errors import WorkflowValidationError
from tests.rag.openai_server import OpenAIServer, prompt_of, start_openai_server

KINDS = ["imports", "first_workflow", "rag", "branching", "parallel", "streaming", "state_pair", "fastapi",
         "error_fallback"]  # fmt: skip
# What each block uses and never defines: as written, and in the session of a reader who ran the blocks before it.
NEEDS: dict[str, tuple[set[str], set[str]]] = {
    "imports": (set(), set()),
    "first_workflow": (set(), set()),
    "rag": (set(), set()),
    "branching": ({"Settings"}, set()),  # the RAG block imported it
    "parallel": (set(), set()),
    "streaming": ({"asyncio"}, set()),  # earlier programs imported it
    "state_pair": ({"step", "Context", "StartEvent", "StopEvent", "MyEvent"}, {"MyEvent"}),
    "fastapi": ({"QueryRequest", "workflow"}, {"QueryRequest", "workflow"}),
    "error_fallback": (
        {"step", "Context", "StartEvent", "Union", "SuccessEvent", "FallbackEvent", "do_risky_thing"},
        {"SuccessEvent", "FallbackEvent", "do_risky_thing"},
    ),
}


# The FAQ's ``MyEvent`` is the reader's own event, which the tutorial never shows; its ``MyEvent(...)`` leaves the
# fields to the reader (``...`` is Python's Ellipsis). This one has no fields and accepts the placeholder.
READERS_EVENT = """
class MyEvent(Event):
    def __init__(self, _fields=None, /, **data):
        super().__init__(**data)
"""


def canned_reply(prompt: str, body: dict[str, Any]) -> str:
    """The test LLM's answer: says how long the prompt was, so each answer can be told apart."""
    return f"canned answer to a {len(prompt)}-character prompt"


@pytest.fixture(scope="module")
def tutorial() -> Tutorial:
    path = tutorial_path()
    if not path.is_file():
        pytest.skip(
            f"the tutorial (shared/seed/) was not found at {path}: these tests read it at run time "
            f"(set {SEED_DIR_VARIABLE} to its folder when shared/ is not beside the repository)"
        )
    return Tutorial.read(path)


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with start_openai_server(reply=canned_reply) as s:
        yield s


def chats(server: OpenAIServer) -> list[dict[str, Any]]:
    return [r for r in server.requests if r["path"] == "/v1/chat/completions"]


def run_in(namespace: dict[str, Any], source: str) -> None:
    """Run tutorial code in ``namespace`` as Python runs a file: without this module's ``__future__`` imports
    (``exec`` would pass them on, postponing the code's annotations)."""
    exec(compile(source, "<tutorial>", "exec", dont_inherit=True), namespace)


def run_ported(block: Block, folder: Path, env: dict[str, str], name: str) -> Finished:
    """Save the block, ported, as ``<name>.py`` in ``folder`` and run it there with ``python``."""
    (folder / f"{name}.py").write_text(port(block.source), encoding="utf-8")
    return run_program([f"{name}.py"], folder, env)


# -- reading the tutorial ------------------------------------------------------------------------------------


def test_the_tutorials_code_is_nine_blocks_one_of_each_kind(tutorial: Tutorial) -> None:
    assert [kind_of(b) for b in tutorial.blocks] == KINDS
    lines = tutorial.path.read_text(encoding="utf-8").splitlines()
    inside = {n for b in tutorial.blocks for n in range(b.line, b.end_line + 1)}
    # Nothing that looks like the tutorial's code was left out of a block, and blocks do not overlap.
    code_like = [i + 1 for i, line in enumerate(lines) if "llama_index." in line or line.startswith("@step")]
    assert set(code_like) <= inside, [lines[n - 1] for n in set(code_like) - inside]
    assert sum(b.end_line - b.line + 1 for b in tutorial.blocks) == len(inside)
    for block in tutorial.blocks:
        compile(block.source, str(block), "exec")


def test_porting_changes_the_llama_index_import_lines_and_nothing_else(tutorial: Tutorial) -> None:
    for block in tutorial.blocks:
        ported = port(block.source)
        assert "llama_index" not in ported
        before, after = block.source.splitlines(), ported.splitlines()
        assert len(before) == len(after)
        changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
        assert all(a.startswith("from llama_index.") and b.startswith("from rayflow") for a, b in changed), changed
        assert len(changed) == block.source.count("from llama_index.")


def test_the_import_block_imports_rayflows_workflow_api(tutorial: Tutorial) -> None:
    import rayflow

    namespace: dict[str, Any] = {}
    run_in(namespace, port(tutorial["imports"].source))
    names = bound_names(tutorial["imports"].source)
    assert names and all(namespace[name] is getattr(rayflow, name) for name in names)


@pytest.mark.parametrize("kind", KINDS)
def test_what_each_block_needs_from_elsewhere(tutorial: Tutorial, kind: str) -> None:
    """As written, and in the session of a reader who ran the blocks before it (their imports and settings)."""
    source = tutorial[kind].source
    reader_has = bound_names(reader_prelude(tutorial.before(kind)))
    as_written, for_a_reader = NEEDS[kind]
    assert undefined_names(source) == as_written
    assert undefined_names(source) - reader_has == for_a_reader


def _reader_namespace(tutorial: Tutorial, kind: str) -> dict[str, Any]:
    """The imports a reader has when reaching ``kind``, in a fresh namespace of this process (their
    ``Settings.* = ...`` lines are left out: they would change this test process's Settings)."""
    namespace: dict[str, Any] = {"__name__": f"reader_{kind}"}
    run_in(namespace, reader_prelude(tutorial.before(kind), settings=False))
    return namespace


@pytest.mark.parametrize("kind", ["fastapi", "error_fallback"])
def test_fragments_that_are_not_programs_run_until_the_first_name_they_leave_to_the_reader(
    tutorial: Tutorial, kind: str
) -> None:
    namespace = _reader_namespace(tutorial, kind)
    with pytest.raises(NameError) as caught:
        run_in(namespace, port(tutorial[kind].source))
    assert caught.value.name in NEEDS[kind][1]


def test_the_faq_steps_outside_a_class_are_refused_at_decoration_as_on_llamaindex(tutorial: Tutorial) -> None:
    namespace = _reader_namespace(tutorial, "state_pair")
    run_in(namespace, READERS_EVENT)
    with pytest.raises(WorkflowValidationError, match="pass a workflow class to the @step decorator"):
        run_in(namespace, port(tutorial["state_pair"].source))


# -- the complete programs, as `python program.py` ---------------------------------------------------------


def test_first_workflow_program_asks_the_llm_at_the_env_endpoint_and_prints_its_answer(
    tutorial: Tutorial, server: OpenAIServer
) -> None:
    block = tutorial["first_workflow"]
    (query,) = [kw["query"] for kw in call_keywords(block, "run")]
    with workdir() as folder:
        finished = run_ported(block, folder, user_environment(server.base_url), "first_workflow")
    assert finished.returncode == 0, finished.explain()

    (chat,) = chats(server)
    assert server.api_keys == [API_KEY]
    assert chat["model"] == call_keywords(block, "OpenAI")[0]["model"]
    prompt = prompt_of(chat)
    assert prompt.endswith(query) and prompt.removesuffix(query) in string_constants(block)
    assert canned_reply(prompt, chat) in finished.lines, finished.explain()


@pytest.fixture(scope="module")
def hf_home(tutorial: Tutorial, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Hugging Face cache holding the RAG program's cross-encoder under its hub name, as after a download.

    The named model cannot be downloaded here: tests/rag/cross_encoders.py makes one of the shipped MiniLM body and
    a zeroed scoring head, so every pair scores the same and the rerank (a stable sort) keeps the retriever's order.
    """
    from huggingface_hub import try_to_load_from_cache
    from sentence_transformers import CrossEncoder

    from tests.rag.cross_encoders import save_cross_encoder

    (settings,) = call_keywords(tutorial["rag"], "SentenceTransformerRerank")
    name = str(settings["model"])
    model_dir = save_cross_encoder(tmp_path_factory.mktemp("cross-encoder"), zero_head=True)
    home = tmp_path_factory.mktemp("hf-home")
    install_in_cache(Path(model_dir), home, name)

    # How rayflow's reranker finds a hub model in the cache, then how sentence-transformers loads it.
    assert str(try_to_load_from_cache(name, "config.json", cache_dir=home / "hub")).startswith(str(home))
    model = CrossEncoder(name, cache_folder=str(home / "hub"), local_files_only=True)
    scores = model.predict([("rate limits", "rate limits live in gateway.yaml"), ("rate limits", "bananas")])
    assert scores[0] == scores[1], "a zeroed head scores every pair the same"
    return home


def test_rag_program_sends_the_reranked_documents_with_the_rate_limits_one_to_the_llm(
    tutorial: Tutorial, server: OpenAIServer, hf_home: Path
) -> None:
    from rayflow.rag import SentenceSplitter, SimpleDirectoryReader

    block = tutorial["rag"]
    (query,) = [kw["query"] for kw in call_keywords(block, "run")]
    (rerank,) = call_keywords(block, "SentenceTransformerRerank")
    with workdir() as folder:
        finished = run_ported(block, folder, user_environment(server.base_url, hf_home), "rag")
    assert finished.returncode == 0, finished.explain()

    embedded = [r for r in server.requests if r["path"] == "/v1/embeddings"]
    assert {r["model"] for r in embedded} == {call_keywords(block, "OpenAIEmbedding")[0]["model"]}
    assert any(r["input"] == [query] for r in embedded), "the question was not embedded for retrieval"
    (chat,) = chats(server)
    assert set(server.api_keys) == {API_KEY}
    assert chat["model"] == call_keywords(block, "OpenAI")[0]["model"]
    prompt = prompt_of(chat)
    assert query in prompt
    # What the index holds: the documents split by its default splitter (each sample document stays whole).
    nodes = SentenceSplitter().get_nodes_from_documents(SimpleDirectoryReader(str(DATA)).load_data())
    sent = [n for n in nodes if n.text in prompt]
    # Every node is retrieved (fewer than similarity_top_k); the reranker passes top_n of them on.
    assert len(sent) == rerank["top_n"] < len(nodes), [n.metadata["file_name"] for n in sent]
    assert "rate_limits.md" in [n.metadata["file_name"] for n in sent], prompt
    assert canned_reply(prompt, chat) in finished.lines, finished.explain()


def test_streaming_program_as_written_stops_at_its_missing_asyncio_import(
    tutorial: Tutorial, server: OpenAIServer
) -> None:
    with workdir() as folder:
        finished = run_ported(tutorial["streaming"], folder, user_environment(server.base_url), "streaming")
    assert finished.returncode == 1
    assert "NameError: name 'asyncio' is not defined" in finished.stderr, finished.explain()
    assert finished.lines == [] and server.requests == []


# -- the blocks in a reader's session: one process, one Ray ----------------------------------------------------


@dataclass
class Session:
    lines: list[str]
    outcome: dict[str, Any]


@dataclass
class ReaderRun:
    finished: Finished
    sessions: dict[str, Session]
    server: OpenAIServer


def _split_sessions(lines: list[str]) -> dict[str, Session]:
    sessions: dict[str, Session] = {}
    current: list[str] = []
    for line in lines:
        if line.startswith("@@ begin "):
            current = []
        elif line.startswith("@@ end "):
            name, outcome = line.removeprefix("@@ end ").split(" ", 1)
            sessions[name] = Session(current, json.loads(outcome))
        else:
            current.append(line)
    return sessions


@pytest.fixture(scope="module")
def reader_run(tutorial: Tutorial) -> Iterator[ReaderRun]:
    """One ``python reader_session.py`` running, in order: the streaming program and the branching block after
    the blocks before them; the branching block alone, as written; the parallel block; the FAQ pair in a class."""
    with workdir() as folder, start_openai_server(reply=canned_reply) as server:

        def save(name: str, text: str) -> str:
            (folder / name).write_text(text, encoding="utf-8")
            return name

        def program(kind: str, text: str | None = None) -> str:
            return save(f"{kind}.py", port(tutorial[kind].source) if text is None else text)

        def after_earlier_blocks(kind: str, *files: str) -> list[str]:
            return [save(f"before_{kind}.py", reader_prelude(tutorial.before(kind))), *files]

        def session(name: str, files: list[str], drive: str | None = None) -> dict[str, Any]:
            return {"name": name, "files": files, "drive": drive}

        # The FAQ shows two methods without their class: the one line added is the class they belong to; the
        # event they pass is the reader's own, written before them.
        methods = textwrap.indent(port(tutorial["state_pair"].source), "    ")
        faq = program("state_pair", "class SharedDataWorkflow(Workflow):\n" + methods)
        readers_event = save("readers_event.py", READERS_EVENT)
        spec = [
            session("streaming", after_earlier_blocks("streaming", program("streaming"))),
            session("branching_as_written", [program("branching")], drive="branching"),
            session("branching", after_earlier_blocks("branching", program("branching")), drive="branching"),
            session("parallel", after_earlier_blocks("parallel", program("parallel")), drive="parallel"),
            session("state_pair", after_earlier_blocks("state_pair", readers_event, faq), drive="state_pair"),
        ]
        save("spec.json", json.dumps(spec))
        script = str(ROOT / "tests" / "tutorial" / "reader_session.py")
        finished = run_program([script, "spec.json"], folder, user_environment(server.base_url))
        assert finished.returncode == 0, finished.explain()
        yield ReaderRun(finished, _split_sessions(finished.lines), server)


def _session(run: ReaderRun, name: str) -> Session:
    assert name in run.sessions, run.finished.explain()
    return run.sessions[name]


def test_streaming_program_in_a_readers_session_prints_both_progress_messages_then_the_result(
    tutorial: Tutorial, reader_run: ReaderRun
) -> None:
    block = tutorial["streaming"]
    session = _session(reader_run, "streaming")
    assert session.outcome == {"result": None}, reader_run.finished.explain()
    messages = [kw["message"] for kw in call_keywords(block, "ProgressEvent")]
    (final,) = [kw["result"] for kw in call_keywords(block, "StopEvent")]
    assert len(session.lines) == 3 and len(messages) == 2, session.lines
    for line, expected in zip(session.lines, [*messages, final], strict=True):
        assert line.endswith(str(expected)) and line.removesuffix(str(expected)) in string_constants(block), line


def test_branching_block_as_written_fails_where_it_reads_settings(reader_run: ReaderRun) -> None:
    outcome = _session(reader_run, "branching_as_written").outcome
    # The step's own exception reaches the caller, not a Ray wrapper.
    assert outcome == {"error": "NameError", "message": "name 'Settings' is not defined"}


def test_branching_block_in_a_readers_session_routes_by_the_questions_length(
    tutorial: Tutorial, reader_run: ReaderRun
) -> None:
    block = tutorial["branching"]
    results = _session(reader_run, "branching").outcome["result"]
    prompts = [prompt_of(r) for r in chats(reader_run.server)]
    # The short question goes to the LLM as it is; the long one inside an instruction of the tutorial's.
    assert prompts[0] == SHORT_QUESTION
    assert prompts[1].endswith(LONG_QUESTION) and prompts[1].removesuffix(LONG_QUESTION) in string_constants(block)
    assert len(prompts) == 2 and set(reader_run.server.api_keys) == {API_KEY}
    labels = []
    for question, prompt in zip((SHORT_QUESTION, LONG_QUESTION), prompts, strict=True):
        answer = canned_reply(prompt, {})
        assert results[question].endswith(answer)
        labels.append(results[question].removesuffix(answer))
    assert labels[0] != labels[1] and set(labels) <= string_constants(block), labels


def test_parallel_block_that_waits_for_three_results_of_one_event_fails_at_once_instead_of_timing_out(
    reader_run: ReaderRun,
) -> None:
    """``num_workers=3`` on the StartEvent step, yet one StartEvent makes one result while the merge step waits
    for three. LlamaIndex waits out the timeout; rayflow sees the run can no longer progress and says so at once,
    with an error ``except WorkflowTimeoutError`` catches."""
    outcome = _session(reader_run, "parallel").outcome["result"]
    assert "WorkflowTimeoutError" in outcome.get("error_mro", []), outcome  # what LlamaIndex code catches
    assert "idle" in outcome["message"] and "no StopEvent" in outcome["message"], outcome
    assert outcome["elapsed_s"] < PARALLEL_TIMEOUT_S / 2, outcome


def test_faq_state_pair_in_a_class_passes_the_stored_value_from_one_step_to_the_next(
    tutorial: Tutorial, reader_run: ReaderRun
) -> None:
    outcome = _session(reader_run, "state_pair").outcome
    assert "result" in outcome, outcome
    assert [outcome["result"]] == _stored_values(tutorial["state_pair"])


def _stored_values(block: Block) -> list[object]:
    """The values of the dict literal the block stores with ``ctx.set(key, {...})``."""
    for node in ast.walk(block.tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "set":
            return list(ast.literal_eval(node.args[1]).values())
    raise AssertionError(f"{block} stores nothing with ctx.set")
