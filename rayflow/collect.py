"""How a join step takes the events of a fan-out: ``Collect`` with ``All`` (the default) or ``Take(n)``.

A step that returns ``list[E]`` fans out: each event of the list goes on as its own event, over the actor pools,
and the list opens a *stream*. A step with one ``list[E]`` parameter joins it: it runs once per stream, with the
events of type ``E`` that the stream's work produced, in the order they arrived::

    @step
    async def split(self, ev: StartEvent) -> list[Chunk]: ...

    @step(num_workers=8)
    async def embed(self, ev: Chunk) -> Embedded: ...

    @step
    async def store(self, done: list[Embedded]) -> StopEvent: ...            # every Embedded of the stream

    @step
    async def first(self, done: Annotated[list[Embedded], Collect(Take(1))]) -> StopEvent: ...  # the first one

``All`` runs the join once the stream's work is over (every event of the list handled, and everything that work
led to); an empty list, or work that produced no ``E``, runs it with ``[]``. ``Take(n)`` runs it as soon as the
``n``-th event arrives, with the first ``n``; the rest of the stream's work goes on, and its ``E`` events reach
no join (the stream ending with fewer than ``n`` runs it with those there are).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["All", "Cardinality", "Collect", "Take"]


@dataclass(frozen=True)
class Cardinality:
    """When a join runs and with which events: ``All()`` or ``Take(n)``."""


@dataclass(frozen=True)
class All(Cardinality):
    """Run once the stream's work is over, with every event it produced."""


@dataclass(frozen=True)
class Take(Cardinality):
    """Run when the ``n``-th event arrives, with the first ``n`` (or at the stream's end with fewer)."""

    n: int

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"Take(n) needs an integer n of at least 1, got {self.n!r}")


@dataclass(frozen=True)
class Collect:
    """Marks a join parameter, ``Annotated[list[E], Collect(Take(2))]``; a bare ``list[E]`` is ``Collect()``."""

    cardinality: Cardinality = field(default_factory=All)

    @property
    def take(self) -> int | None:
        """The ``n`` of ``Take(n)``; None for ``All``."""
        return self.cardinality.n if isinstance(self.cardinality, Take) else None
