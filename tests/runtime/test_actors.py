"""Ending actors (``rayflow.runtime.actors``): idle actors exit by themselves, one stuck in a blocking call is killed
after the grace period, the call returns in bounded time, and the names are free again; async and sync alike."""

from __future__ import annotations

import gc
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import ray
from ray.exceptions import RayActorError

from rayflow.config import settings
from rayflow.runtime.actors import stop_actors, stop_actors_sync
from tests.conftest import live_rayflow_actors

pytestmark = pytest.mark.usefixtures("ray_env")

# Ray workers cannot import this test module: its actor classes travel by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


class _Worker:
    """An actor that answers, blocks in a sync call, or reports to another actor before it is stopped."""

    def __init__(self, log: Any = None) -> None:
        self._log = log

    def ping(self) -> str:
        return "pong"

    def block(self) -> None:
        time.sleep(600)  # only a kill ends this

    def drain(self) -> None:
        if self._log is not None:
            ray.get(self._log.note.remote("drained"))


class _Log:
    def __init__(self) -> None:
        self._notes: list[str] = []

    def note(self, text: str) -> None:
        self._notes.append(text)

    def notes(self) -> list[str]:
        return self._notes


def _grace(monkeypatch: pytest.MonkeyPatch, seconds: float) -> Iterator[float]:
    monkeypatch.setenv("RAYFLOW_SHUTDOWN_GRACE_S", str(seconds))
    settings.cache_clear()
    assert settings().shutdown_grace_s == seconds
    yield seconds
    monkeypatch.undo()
    settings.cache_clear()


@pytest.fixture
def short_grace(monkeypatch: pytest.MonkeyPatch) -> Iterator[float]:
    """A grace period short enough to wait out in a test."""
    yield from _grace(monkeypatch, 2.0)


@pytest.fixture
def long_grace(monkeypatch: pytest.MonkeyPatch) -> Iterator[float]:
    """A grace period far longer than an idle actor needs to exit: a stop that waited it out shows."""
    yield from _grace(monkeypatch, 30.0)


def _start(count: int, *args: Any) -> tuple[list[str], list[Any]]:
    """``count`` running ``_Worker`` actors and their names."""
    prefix = f"rayflow.test-actors.{uuid.uuid4().hex[:8]}"
    names = [f"{prefix}.{i}" for i in range(count)]
    handles = [ray.remote(_Worker).options(name=name, num_cpus=0).remote(*args) for name in names]
    assert ray.get([h.ping.remote() for h in handles]) == ["pong"] * count
    return names, handles


def _death(handle: Any) -> str:
    """How Ray says the actor died (a call to a dead actor raises it)."""
    with pytest.raises(RayActorError) as info:
        ray.get(handle.ping.remote(), timeout=60)
    return str(info.value)


def _names_free(names: list[str]) -> None:
    """No actor of ``names`` is alive, and each name can be taken again.

    Call it once the test has dropped its handles: Ray keeps the name of an actor that exited by itself reserved
    while its owner holds a handle to it (a killed actor's name is free at once).
    """
    gc.collect()
    live = live_rayflow_actors()
    assert not [n for n in names if n in live]
    for name in names:
        with pytest.raises(ValueError):
            ray.get_actor(name)


async def _stop(variant: str, handles: list[Any], before: str | None = None) -> float:
    """Stop ``handles`` with ``stop_actors`` or ``stop_actors_sync``; the seconds it took."""
    began = time.monotonic()
    if variant == "async":
        await stop_actors(handles, before=before)
    else:
        stop_actors_sync(handles, before=before)
    return time.monotonic() - began


VARIANTS = pytest.mark.parametrize("variant", ["async", "sync"])


@VARIANTS
async def test_idle_actors_exit_by_themselves_after_before(variant: str, long_grace: float) -> None:
    """Each actor's ``before`` method runs first; then each exits by itself, without waiting out the grace."""
    log_name = f"rayflow.test-actors.log.{uuid.uuid4().hex[:8]}"
    log = ray.remote(_Log).options(name=log_name, num_cpus=0).remote()
    names, handles = _start(2, log)
    took = await _stop(variant, handles, before="drain")
    assert took < long_grace / 2
    assert ray.get(log.notes.remote()) == ["drained", "drained"]
    for handle in handles:
        cause = _death(handle)
        assert "exit_actor() is called" in cause  # ended by __ray_terminate__, not killed
        assert "ray.kill" not in cause
    await _stop(variant, [log])
    del handle, handles, log
    _names_free([*names, log_name])


@VARIANTS
async def test_an_actor_stuck_in_a_blocking_call_is_killed_after_the_grace(variant: str, short_grace: float) -> None:
    names, handles = _start(2)
    stuck = handles[0].block.remote()  # the stop queues behind it: the actor never gets to exit by itself
    took = await _stop(variant, handles)
    assert short_grace <= took < 3 * short_grace + 5  # bounded: grace, kill, at most one more grace
    with pytest.raises(RayActorError, match=r"ray\.kill"):
        ray.get(stuck, timeout=60)  # the kill interrupted the blocking call
    assert "ray.kill" in _death(handles[0])
    assert "ray.kill" not in _death(handles[1])  # only the stuck one was killed
    assert names[0] not in live_rayflow_actors()
    with pytest.raises(ValueError):
        ray.get_actor(names[0])  # killed: its name is free though the test still holds its handle
    del handles
    _names_free(names)


@VARIANTS
async def test_nothing_to_stop_returns_at_once(variant: str) -> None:
    assert await _stop(variant, []) < 0.1
