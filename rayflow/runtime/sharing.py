"""Live actor sets shared by equal instances of one workflow class: a second instance starts no process.

A *set* (a dispatcher with its context actor and step actors, ``rayflow.runtime.dispatcher``) serves every run of
the instance that started it; runs are kept apart by run id and contexts by context id, so nothing in a set belongs
to one instance but its workflow object, pickled into each step actor (the *blob*). A new instance whose blob is
byte for byte the blob of a live set of the same class object (the same constructor arguments, the same
attributes) and which prints the same way (``verbose``) would load exactly what those step actors hold already: it
*joins* the set instead of taking a parked one or starting one. Its first run is then as fast as any later run of
the instance that started the set.

What the sharers have in common, beyond their equal workflow objects: the step actors, so a step that changes
``self`` changes it for every sharer (``self`` is already a per-actor copy, shared by every run the actor serves,
see the README's differences from LlamaIndex), and a pool's actors, grown by the runs of all of them (``num_workers``
caps each run's calls, as always). What stays each instance's own: its runs and contexts, ``num_concurrent_runs``,
its journal, and its statistics (``workflow.stats()`` counts the runs of that instance only: each run tells the
dispatcher whose it is).

A workflow whose steps take a cached ``Resource`` is never shared: LlamaIndex builds those once per instance, and a
step actor builds them once for the workflow it holds, so a sharer would get the resources another instance built.

A set lives while one sharer holds it. An instance that is closed, garbage-collected or idle-released lets go of
it; only the last one to let go parks or stops it (``rayflow.runtime.park``). A set that dies is forgotten here at
once, and every sharer's next run starts or joins a new one. ``RAYFLOW_SHARE_SETS=0`` turns sharing off: every
instance has a set of its own.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["SetKey", "SharedSets", "key_of", "shared"]


@dataclass(frozen=True)
class SetKey:
    """What two instances must have equal to share a set: their class object, their blob, their verbosity."""

    kind: type
    digest: bytes
    verbose: bool


def key_of(kind: type, blob: bytes, verbose: bool) -> SetKey:
    return SetKey(kind, hashlib.blake2b(blob, digest_size=20).digest(), verbose)


@dataclass
class _Shared:
    actors: Any
    holders: int


class SharedSets:
    """The driver's live sets that a new instance may join, with how many instances hold each."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sets: dict[SetKey, _Shared] = {}

    def join(self, key: SetKey) -> Any | None:
        """The live set of ``key``, now held once more; None if there is none."""
        with self._lock:
            entry = self._sets.get(key)
            if entry is None:
                return None
            entry.holders += 1
            return entry.actors

    def add(self, key: SetKey, actors: Any) -> None:
        """``actors`` were just started or bound for an instance of ``key``: others may join them."""
        with self._lock:
            self._sets.setdefault(key, _Shared(actors, 0)).holders += 1

    def leave(self, actors: Any) -> bool:
        """An instance lets go of ``actors``: True if it was the last holder (park or stop the set now)."""
        with self._lock:
            for key, entry in self._sets.items():
                if entry.actors is actors:
                    entry.holders -= 1
                    if entry.holders > 0:
                        return False
                    del self._sets[key]
                    return True
        return True  # never shared (sharing off, or forgotten as dead): the caller's alone

    def forget(self, actors: Any) -> None:
        """``actors`` died: no instance joins them any more (the holders find out at their next run)."""
        with self._lock:
            for key, entry in list(self._sets.items()):
                if entry.actors is actors:
                    del self._sets[key]

    def holders(self, actors: Any) -> int:
        """How many instances hold ``actors`` (0: not shared here)."""
        with self._lock:
            return next((e.holders for e in self._sets.values() if e.actors is actors), 0)


_shared = SharedSets()


def shared() -> SharedSets:
    """The driver's registry of shared sets."""
    return _shared
