"""Ending actors, one way for all of rayflow: each finishes what it is doing and exits; those still alive after
``RAYFLOW_SHUTDOWN_GRACE_S`` are killed; the call returns once every one is gone or, for one that Ray cannot
confirm, after one more grace period: stopping never waits unbounded. (Ray frees the name of an actor that exited
by itself once its creator drops its handle; a killed actor's name is free at once.)

Ending with ``__ray_terminate__`` rather than ``ray.kill`` first: a call that reaches an actor Ray is tearing down
can abort its process (seen as SIGABRT in ``InnerGcsClient.async_internal_kv_get``). ``before`` names a method to
call on each actor first (a model replica drains its queue, an index server stops its shards).

``first_line`` is how rayflow's own errors quote an actor's error (Ray's run to many lines).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError

from rayflow.config import settings

__all__ = ["first_line", "own_named_actors", "stop_actors", "stop_actors_sync"]


async def _settled(ref: Any) -> None:
    try:
        await ref
    except RayActorError:
        pass  # how an actor that exited (or was killed) answers
    except Exception:
        pass  # ``before`` failed: the actor is ended all the same


async def stop_actors(handles: Sequence[Any], *, before: str | None = None) -> None:
    """End ``handles`` (Ray actor handles) from async code; see the module docstring."""
    if not handles:
        return
    grace = settings().shutdown_grace_s
    if before is not None:
        await asyncio.wait(
            [asyncio.ensure_future(_settled(getattr(h, before).remote())) for h in handles], timeout=grace
        )
    waits = [asyncio.ensure_future(_settled(h.__ray_terminate__.remote())) for h in handles]
    _, late = await asyncio.wait(waits, timeout=grace)
    for handle, wait in zip(handles, waits, strict=True):
        if wait in late:
            ray.kill(handle, no_restart=True)
    if late:
        await asyncio.wait(late, timeout=grace)


def stop_actors_sync(handles: Sequence[Any], *, before: str | None = None) -> None:
    """``stop_actors`` for callers without an event loop (interpreter exit, garbage collection, sync APIs)."""
    if not handles:
        return
    grace = settings().shutdown_grace_s
    if before is not None:
        ray.wait([getattr(h, before).remote() for h in handles], num_returns=len(handles), timeout=grace)
    refs = [h.__ray_terminate__.remote() for h in handles]
    _, late = ray.wait(refs, num_returns=len(refs), timeout=grace)
    for handle, ref in zip(handles, refs, strict=True):
        if ref in late:
            ray.kill(handle, no_restart=True)
    for ref in refs:
        try:
            ray.get(ref, timeout=grace)
        except (RayActorError, GetTimeoutError):
            pass  # gone, or killed above and not yet marked dead


def own_named_actors(prefix: str) -> dict[str, Any]:
    """rayflow's live named actors whose name starts with ``prefix``, by name: those of rayflow's namespace
    (``RAYFLOW_NAMESPACE``) only. A shared cluster may hold same-named actors of other namespaces (another
    application, another rayflow configured apart); they are not ours to stop."""
    namespace = settings().namespace
    found: dict[str, Any] = {}
    # Listed across namespaces and filtered: the caller's own namespace need not be rayflow's.
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["namespace"] == namespace and entry["name"].startswith(prefix):
            try:
                found[entry["name"]] = ray.get_actor(entry["name"], namespace=namespace)
            except ValueError:  # gone since it was listed
                continue
    return found


def first_line(err: BaseException) -> str:
    """The first line of ``err``'s message (its type's name if it has none)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
