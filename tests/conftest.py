"""One Ray cluster for the whole test session, and a check that each test leaves no rayflow actor behind."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# No parked actor sets or spares by default: each test's actors stop when it closes its workflows (the ``ray_env``
# check below), and spares would start processes the 2-core test machine cannot spare. Tests of the park install
# one of their own (``rayflow.runtime.park.install``) and drain it.
os.environ.setdefault("RAYFLOW_PARK_SETS", "0")


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """A local Ray started once per session (6-9 s here), shut down at the end."""
    import ray

    import rayflow

    # num_gpus: logical GPUs (none need exist) so placement of fractional-GPU model replicas is tested on CPU.
    # "local": a Ray of its own, even where another one runs on this machine (ray.init would join that one).
    rayflow.init(address="local", num_cpus=4, num_gpus=2, include_dashboard=False)
    yield
    ray.shutdown()


def live_rayflow_actors() -> list[str]:
    """Names of the rayflow actors still alive in the cluster (named actors are listed by the GCS, no dashboard)."""
    import ray

    return sorted(a for a in ray.util.list_named_actors() if a.startswith("rayflow"))


@pytest.fixture
def ray_env(ray_cluster: None) -> Iterator[None]:
    """A test that uses Ray: it must close everything it started."""
    yield
    import gc

    from rayflow.runtime.park import current

    gc.collect()
    current().drain_sync()  # sets parked when the park is on (RAYFLOW_PARK_SETS): bounded, not left behind
    left = live_rayflow_actors()
    assert not left, f"test left rayflow actors alive: {left}"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--engine",
        choices=("both", "rayflow", "llamaindex"),
        default="both",
        help="engines the conformance suite (tests/conformance) runs each test on: both (default), or one",
    )
