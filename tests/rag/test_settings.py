"""Settings: lazy defaults chosen from the environment, setters, and how values travel to other processes."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Iterator

import pytest

from rayflow import StartEvent, StopEvent, Workflow, step
from rayflow.rag.embeddings import HuggingFaceEmbedding
from rayflow.rag.llms import LocalLLM, OpenAI
from rayflow.rag.settings import Settings

_ENDPOINT_VARS = ("OPENAI_BASE_URL", "OPENAI_API_BASE", "OPENAI_API_KEY")


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in _ENDPOINT_VARS:
        monkeypatch.delenv(var, raising=False)
    Settings.llm = None
    Settings.embed_model = None
    yield
    Settings.llm = None
    Settings.embed_model = None


def test_default_llm_is_the_offline_local_model_without_an_endpoint() -> None:
    llm = Settings.llm
    assert isinstance(llm, LocalLLM)
    assert llm.actor_name == "rayflow.llm.smollm2"
    assert Settings.llm is llm, "the default is built once"


@pytest.mark.parametrize("var", _ENDPOINT_VARS)
def test_default_llm_is_openai_when_an_endpoint_is_set(monkeypatch: pytest.MonkeyPatch, var: str) -> None:
    monkeypatch.setenv(var, "http://127.0.0.1:9/v1" if var != "OPENAI_API_KEY" else "sk-test")
    llm = Settings.llm
    assert isinstance(llm, OpenAI)
    if var == "OPENAI_API_KEY":
        assert llm.api_key == "sk-test"
    else:
        assert llm.api_base == "http://127.0.0.1:9/v1" and llm.api_key == "not-needed"


def test_default_embed_model_is_the_shipped_minilm() -> None:
    embed = Settings.embed_model
    assert isinstance(embed, HuggingFaceEmbedding)
    assert embed.model_name == HuggingFaceEmbedding().model_name
    assert Settings.embed_model is embed


def test_setters_take_objects_and_names_and_none_restores_the_default() -> None:
    llm = OpenAI(model="m", api_base="http://127.0.0.1:9/v1")
    Settings.llm = llm
    assert Settings.llm is llm
    Settings.llm = "local"
    assert isinstance(Settings.llm, LocalLLM)
    Settings.llm = None
    assert isinstance(Settings.llm, LocalLLM)

    embed = HuggingFaceEmbedding(embed_batch_size=8)
    Settings.embed_model = embed
    assert Settings.embed_model is embed
    Settings.embed_model = "local"
    assert isinstance(Settings.embed_model, HuggingFaceEmbedding) and Settings.embed_model is not embed


def test_setters_reject_what_is_not_a_model() -> None:
    with pytest.raises(TypeError, match=r"Settings\.llm: int has no acomplete"):
        Settings.llm = 42
    with pytest.raises(ValueError, match="unknown name 'gpt'"):
        Settings.llm = "gpt"
    with pytest.raises(TypeError, match="embed_model"):
        Settings.embed_model = 42


def test_settings_pickle_into_another_process_as_that_process_singleton() -> None:
    Settings.llm = OpenAI(model="served-model", api_base="http://127.0.0.1:9/v1", api_key="k")
    data = pickle.dumps(Settings)
    assert pickle.loads(data) is Settings
    code = (
        "import pickle, sys\n"
        "from rayflow.rag.settings import Settings\n"
        "got = pickle.loads(sys.stdin.buffer.read())\n"
        "print(got is Settings, Settings.llm.model, Settings.llm.api_base, Settings.llm.api_key)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input=data, capture_output=True, check=True, timeout=120
    ).stdout.decode()
    assert out.split() == ["True", "served-model", "http://127.0.0.1:9/v1", "k"]


class _ReadSettings(Workflow):
    @step
    async def read(self, ev: StartEvent) -> StopEvent:
        return StopEvent(result=(os.getpid(), Settings.llm.model, Settings.llm.api_base))


async def test_a_step_actor_sees_the_llm_the_driver_set_before_the_run(ray_env: None) -> None:
    Settings.llm = OpenAI(model="driver-choice", api_base="http://127.0.0.1:9/v1")
    workflow = _ReadSettings(timeout=60)
    try:
        pid, model, api_base = await workflow.run()
    finally:
        await workflow.close()
    assert pid != os.getpid(), "the step ran in the driver, not in an actor"
    assert (model, api_base) == ("driver-choice", "http://127.0.0.1:9/v1")
