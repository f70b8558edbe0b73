"""Collect buffers: ``ctx.collect_events(ev, [A, B, B])`` at O(1) amortized cost per event.

LlamaIndex recounts the expected list on every call, so collecting N events costs O(N^2). Here a
buffer keeps its events by type with running counts, and the expected list's shape (how many of each
type) is computed once and cached by a cheap fingerprint. The exact count is taken again whenever a
buffer may complete and before an event is dropped, so a fingerprint shared by two different lists
can cost time but never changes what is buffered or released.

Semantics (LlamaIndex's): an event whose type the expected list still needs is buffered, any other is
dropped; the call returns None until the buffer holds every expected type with its multiplicity, then
the events in the expected order, and empties the buffer.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Hashable, Sequence
from typing import Any

_Shape = dict[Hashable, int]


def _fingerprint(expected: Sequence[Hashable]) -> tuple[Hashable, ...]:
    n = len(expected)
    return (n, expected[0], expected[n // 2], expected[-1])


def _owner(key: Hashable) -> Hashable:
    return key[:2] if isinstance(key, tuple) else key


class CollectBuffers:
    """Every collect buffer of one holder (a step actor), keyed by (run, step, buffer id)."""

    def __init__(self) -> None:
        self._buffers: dict[Hashable, dict[Hashable, deque[Any]]] = {}
        self._sizes: dict[Hashable, int] = {}
        self._shapes: dict[tuple[Hashable, ...], _Shape] = {}
        #: The expected list of each buffer's last call (a reference, to say what a buffer waits for).
        self._expected: dict[Hashable, Sequence[Hashable]] = {}
        #: Buffers per (run, step), for keys of that shape: whether a step holds anything of a run.
        self._owners: dict[Hashable, int] = {}

    def collect(self, key: Hashable, event: Any, kind: Hashable, expected: Sequence[Hashable]) -> list[Any] | None:
        """Add ``event`` (of type ``kind``) to buffer ``key``; the expected events once all are there."""
        if not expected:
            return []
        shape = self._shape(expected)
        self._expected[key] = expected
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = {}
            owner = _owner(key)
            self._owners[owner] = self._owners.get(owner, 0) + 1
        held = buffer.get(kind)
        if shape.get(kind, 0) <= (len(held) if held else 0):
            shape = self._exact_shape(expected)  # drops are rare: confirm with an exact count
            if shape.get(kind, 0) <= (len(held) if held else 0):
                return None  # not a type the list still needs: dropped, as in LlamaIndex
        buffer.setdefault(kind, deque()).append(event)
        size = self._sizes[key] = self._sizes.get(key, 0) + 1
        if size < len(expected):
            return None
        exact = self._exact_shape(expected)
        if any(len(buffer.get(k, ())) < n for k, n in exact.items()):
            return None
        released = [buffer[k].popleft() for k in expected]
        self.drop(key)
        return released

    def drop(self, key: Hashable) -> None:
        """Forget buffer ``key`` (its run ended, or it was released)."""
        if self._buffers.pop(key, None) is not None:
            owner = _owner(key)
            self._owners[owner] -= 1
            if not self._owners[owner]:
                del self._owners[owner]
        self._sizes.pop(key, None)
        self._expected.pop(key, None)

    def holds(self, run_id: str, step: str) -> bool:
        """Whether any buffer of ``step`` in ``run_id`` (keys ``(run, step, buffer id)``) holds events."""
        return (run_id, step) in self._owners

    def missing(self, run_id: str) -> list[tuple[tuple[Any, ...], list[tuple[Hashable, int, int]]]]:
        """What each buffer of ``run_id`` still lacks: (key, [(kind, held, expected), ...] for each short kind)."""
        found: list[tuple[tuple[Any, ...], list[tuple[Hashable, int, int]]]] = []
        for key, buffer in self._buffers.items():
            if not (isinstance(key, tuple) and key and key[0] == run_id) or key not in self._expected:
                continue
            shape = Counter(self._expected[key])
            short = [(kind, len(buffer.get(kind, ())), n) for kind, n in shape.items() if len(buffer.get(kind, ())) < n]
            if short:
                found.append((key, short))
        return found

    def drop_run(self, run_id: str) -> None:
        """Forget every buffer of ``run_id`` (keys are tuples starting with the run id)."""
        for key in [k for k in self._buffers if isinstance(k, tuple) and k and k[0] == run_id]:
            self.drop(key)

    def _exact_shape(self, expected: Sequence[Hashable]) -> _Shape:
        shape = self._shapes[_fingerprint(expected)] = dict(Counter(expected))
        return shape

    def _shape(self, expected: Sequence[Hashable]) -> _Shape:
        fingerprint = _fingerprint(expected)
        shape = self._shapes.get(fingerprint)
        if shape is None:
            shape = self._shapes[fingerprint] = dict(Counter(expected))
        return shape
