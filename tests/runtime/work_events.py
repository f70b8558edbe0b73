"""The events of the fan-out test workflows (tests/runtime): a unit of work ``i`` of ``n``, and its result."""

from __future__ import annotations

from rayflow import Event


class Work(Event):
    i: int
    n: int


class Done(Event):
    i: int
    n: int
