"""The dispatcher's state: step pools with their queues, and the runs going on. Plain data, no I/O."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

from rayflow.core.commands import WorkItem
from rayflow.core.routing import RoutingTable, StepRoute


@dataclass
class ActorSlot:
    """One actor of a pool: its calls in flight and the events bound to it (collect homes)."""

    id: int
    inflight: int = 0
    queue: deque[WorkItem] = field(default_factory=deque)


@dataclass
class Pool:
    """A step's actor pool: ready actors, actors starting, and the events waiting for any actor."""

    route: StepRoute
    actors: dict[int, ActorSlot] = field(default_factory=dict)
    starting: set[int] = field(default_factory=set)
    queue: deque[WorkItem] = field(default_factory=deque)
    waiting: int = 0
    next_actor: int = 0

    @property
    def size(self) -> int:
        return len(self.actors) + len(self.starting)


@dataclass
class Run:
    """One run: how much of its work is queued or running, per step, and where its collect buffers live."""

    run_id: str
    ctx_id: str
    timeout: float | None
    inflight: int = 0
    active: Counter[str] = field(default_factory=Counter)
    homes: dict[str, int] = field(default_factory=dict)
    recoveries: Counter[str] = field(default_factory=Counter)
    awaiting_input: bool = False
    last_step: str | None = None


@dataclass
class Call:
    """A step call in flight."""

    step: str
    actor: int
    items: list[WorkItem]


@dataclass
class DispatcherState:
    """Everything the reducer decides from. Mutated in place by the reducer, one tick at a time."""

    routing: RoutingTable
    pools: dict[str, Pool]
    runs: dict[str, Run] = field(default_factory=dict)
    calls: dict[int, Call] = field(default_factory=dict)
    next_call: int = 0
    max_batch: int = 256
    pipeline: int = 1

    @classmethod
    def of(cls, routing: RoutingTable, max_batch: int = 256, pipeline: int = 1) -> DispatcherState:
        pools = {name: Pool(route) for name, route in routing.steps.items()}
        return cls(routing, pools, max_batch=max_batch, pipeline=pipeline)
