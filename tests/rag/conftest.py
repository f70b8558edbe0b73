"""RAG test fixtures: model pools kept warm for a module, a leak check that allows them, a test OpenAI server."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from openai_server import OpenAIServer, start_openai_server


def _live_rayflow_actors() -> list[str]:
    import ray

    return sorted(a for a in ray.util.list_named_actors() if a.startswith("rayflow"))


@pytest.fixture(scope="module")
def model_pools(ray_cluster: None) -> Iterator[None]:
    """Model pool replicas live for the whole module (each model loads once); all are stopped at its end."""
    from rayflow.rag.model_pool import shutdown_model_pools

    yield
    gc.collect()
    shutdown_model_pools()
    left = _live_rayflow_actors()
    assert not left, f"module left rayflow actors alive: {left}"


@pytest.fixture
def rag_env(model_pools: None) -> Iterator[None]:
    """Like ``ray_env``, except that model pool replicas may outlive the test (``model_pools`` stops them)."""
    yield
    gc.collect()
    left = [name for name in _live_rayflow_actors() if not name.startswith("rayflow.model.")]
    assert not left, f"test left rayflow actors alive: {left}"


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    """A fresh OpenAI-compatible server on 127.0.0.1 (see openai_server.py), echoing the context it receives."""
    with start_openai_server() as server:
        yield server
