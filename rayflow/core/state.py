"""The dispatcher's state: step pools with their queues, and the runs going on. Plain data, no I/O."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Literal

from rayflow.core.commands import WorkItem
from rayflow.core.envelope import Envelope, Waiter
from rayflow.core.routing import RoutingTable, StepRoute
from rayflow.core.run_queue import RunQueue


@dataclass
class ActorSlot:
    """One actor of a pool: its calls in flight and the events bound to it (collect homes)."""

    id: int
    inflight: int = 0
    queue: RunQueue = field(default_factory=RunQueue)
    #: Calls in flight here, per run they carry items of: an actor runs the calls of one run one after the other,
    #: and those of different runs at the same time.
    runs: Counter[str] = field(default_factory=Counter)
    #: Lent to a call of another step, which may run this step on its own actor: takes no call until returned.
    lent: bool = False
    #: Runs the call of an event delivered again after its call was lost, by itself: an event that kills its actor
    #: then takes no other run's calls down with it, and its next loss names it alone.
    alone: bool = False
    #: Takes no new call until its calls are over, so that an event delivered again can run on it alone.
    draining: bool = False

    @property
    def idle(self) -> bool:
        return self.inflight == 0 and not self.lent


@dataclass
class Pool:
    """A step's actor pool: ready actors, actors starting, and the events waiting for any actor."""

    route: StepRoute
    actors: dict[int, ActorSlot] = field(default_factory=dict)
    starting: set[int] = field(default_factory=set)
    queue: RunQueue = field(default_factory=RunQueue)
    waiting: int = 0
    next_actor: int = 0
    #: Smoothed seconds one event takes in this step; None until a call came back.
    per_event: float | None = None
    #: Smoothed share of a call's time its actor spent computing (CPU seconds over seconds); None until known.
    #: Well under 1: the step mostly waits (I/O), so more calls of other runs on a busy actor cost nothing.
    busy: float | None = None
    #: Held to the cluster's cores while ``busy`` is unknown (``limit``), until GrowthDue: "armed" once the wait for
    #: it is on, "free" once its first calls took that long without coming back (they may wait on each other).
    growth: Literal["armed", "free"] | None = None
    #: A call was seen awaiting on its actor before any came back (``CallWaiting``): the step waits, until a call's
    #: own figures (``busy``) say otherwise.
    seen_waiting: bool = False

    @property
    def waits(self) -> bool:
        """The step mostly waits (on I/O) rather than computes."""
        if self.busy is None:
            return self.seen_waiting
        return self.busy < 0.5

    def limit(self, cores: int | None) -> int:
        """How many actors the pool grows to: ``num_workers``, and for a step not known to wait, no more than the
        cluster's cores (a step that computes gains nothing from more processes than cores, and each start costs
        about half a second of a core's time)."""
        workers = self.route.num_workers
        if cores is None or self.waits or self.growth == "free":
            return workers
        return max(1, min(workers, cores))

    def batch_size(self, max_batch: int, target_s: float, first: int, cores: int | None = None) -> int:
        """Events per call: about ``target_s`` of work, at most an even share of the waiting events.

        The share counts the pool at its full size, so a slow step's events spread over the actors the
        pool grows to instead of queueing behind the first one (not a collecting step's, which all go to their run's
        home actor).
        """
        # A collecting step's events of one run all go to the run's home actor: spreading them is no use.
        spread = 1 if self.route.collects else max(self.limit(cores), len(self.actors))
        share = max(1, -(-self.waiting // spread))
        if self.per_event is None:
            fitting = first
        else:
            fitting = max(1, int(target_s / self.per_event)) if self.per_event > 0 else max_batch
        return min(max_batch, share, fitting)

    @property
    def size(self) -> int:
        return len(self.actors) + len(self.starting)


@dataclass
class Stream:
    """One fan-out, in one run: where it was opened, the work still going on inside it, the joins' events."""

    stream_id: str
    #: The step that returned the list.
    source: str
    #: The scope of the event the source ran for: where the joins of this stream run.
    parent: tuple[str, ...]
    open: int = 0
    #: For each join, the events it got from this stream so far.
    buffers: dict[str, list[Envelope]] = field(default_factory=dict)
    #: Joins that ran for this stream already (``Take(n)`` reached).
    released: set[str] = field(default_factory=set)


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
    #: Ids of the events routed so far: an event emitted again (a step body run twice) is routed once.
    seen: set[bytes] = field(default_factory=set)
    #: For each collecting step: the items delivered to the run's home actor since its buffers were last empty,
    #: in order. Delivered again to a new home when the home dies, they rebuild its collect buffers.
    delivered: dict[str, deque[WorkItem]] = field(default_factory=dict)
    #: Failed items waiting for their retry, by number: (step, item).
    delayed: dict[int, tuple[str, WorkItem]] = field(default_factory=dict)
    next_delay: int = 0
    #: Step invocations paused in ``ctx.wait_for_event``, as (step, waiter, number), oldest first.
    waits: list[tuple[str, Waiter, int]] = field(default_factory=list)
    #: Events being checked against the requirements of waits (CheckRequirements in flight).
    checking: int = 0
    next_wait: int = 0
    #: Fan-out streams open in the run, by id (``rayflow.core.streams``), and the number of the next one.
    streams: dict[str, Stream] = field(default_factory=dict)
    next_stream: int = 0
    #: Streams whose count fell to zero this tick: they end at the end of it unless work came back.
    ending: set[str] = field(default_factory=set)
    #: The caller streams internal events (``rayflow.core.internal``); whether it was told the run is idle.
    internal: bool = False
    idle_told: bool = False
    #: For each step of several event parameters: the events waiting, one queue per parameter.
    slots: dict[str, list[deque[Envelope]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Pending:
    """A run's unfinished work, as a snapshot (``ctx.to_dict()``) takes it and a resumed run starts from it:
    the events queued or being run, by step (a running step runs again), the paused steps, a question out."""

    items: tuple[tuple[str, WorkItem], ...] = ()
    waits: tuple[tuple[str, Waiter], ...] = ()
    awaiting_input: bool = False


@dataclass
class Call:
    """A step call in flight."""

    step: str
    actor: int
    items: list[WorkItem]
    #: Slots of other steps lent to this call, as (step, actor): returned when it finishes.
    loans: tuple[tuple[str, int], ...] = ()
    #: Why rayflow stopped the call's actor, if it did: "timeout" (the step ran past it) or "ended" (it did not
    #: stop the invocations of a run that ended). Its items then come back lost through no fault of theirs.
    stopped: str | None = None


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
    #: Calls one actor may have in flight at once, of different runs (its step awaits in one, runs another).
    actor_calls: int = 100
    #: Seconds of work one step call should carry (batching small events, not slow ones).
    batch_target_s: float = 0.1
    #: Seconds per event under which a step counts as fast: its calls may borrow idle slots of the next steps.
    fast_s: float = 0.02
    #: Events in a step's first call, before its time per event is known.
    first_batch: int = 8
    #: What runs that ended without a StopEvent (cancelled, timed out, failed) left unfinished, newest last.
    ended: dict[str, Pending] = field(default_factory=dict)
    ended_memory: int = 1000
    #: Deliveries of one item whose calls may be lost with their actor before its run fails (a poison event).
    max_deliveries: int = 3
    #: Seconds an actor has to answer before rayflow stops it (grace after a step timeout).
    grace_s: float = 2.0
    #: CPU cores of the cluster: a pool of a step that computes grows no larger (None: no bound).
    cores: int | None = None
    #: Seconds the first calls of a step of unknown kind may take before its pool grows past the cores.
    grow_after_s: float = 0.5

    def pending(self, run_id: str) -> Pending | None:
        """The run's unfinished work (scans the queues: for snapshots, not for routing); None: unknown run."""
        run = self.runs.get(run_id)
        if run is None:
            return self.ended.get(run_id)
        collecting = run.delivered  # a collecting step's delivered items (running or done) rebuild its buffers
        items = [(name, item) for name, log in collecting.items() for item in log]
        items.extend(
            (call.step, item)
            for call in self.calls.values()
            if call.step not in collecting
            for item in call.items
            if item.run_id == run_id
        )
        items.extend((name, item) for name, item in run.delayed.values())
        # events waiting for a join, or for the other parameters of their step: delivered to it again on resume
        waiting = [(join, e) for stream in run.streams.values() for join, got in stream.buffers.items() for e in got]
        waiting.extend((name, e) for name, queues in run.slots.items() for queue in queues for e in queue)
        items.extend((name, WorkItem(run_id, run.ctx_id, envelope)) for name, envelope in waiting)
        for name, pool in self.pools.items():
            queues = [pool.queue, *(slot.queue for slot in pool.actors.values())]
            items.extend((name, item) for queue in queues for item in queue if item.run_id == run_id)
        waits = tuple((name, waiter) for name, waiter, _ in run.waits)
        return Pending(tuple(items), waits, run.awaiting_input)

    def queued(self, run_id: str | None = None) -> dict[str, int]:
        """The events waiting for each step now (not running), of one run or of all (scans the queues: for
        statistics, not for routing)."""
        counts = {}
        for name, pool in self.pools.items():
            queues = [pool.queue, *(slot.queue for slot in pool.actors.values())]
            if run_id is None:
                counts[name] = sum(len(queue) for queue in queues)
            else:
                counts[name] = sum(1 for queue in queues for item in queue if item.run_id == run_id)
        return counts

    def running(self, run_id: str) -> list[str]:
        """The steps that have an invocation of run ``run_id`` in a call to one of their actors now, in the order
        of the workflow's steps (scans the calls: for ``Context.running_steps()``, not for routing)."""
        steps = {call.step for call in self.calls.values() if any(item.run_id == run_id for item in call.items)}
        return [name for name in self.pools if name in steps]

    @classmethod
    def of(
        cls,
        routing: RoutingTable,
        max_batch: int = 256,
        pipeline: int = 1,
        *,
        batch_target_s: float = 0.1,
        first_batch: int = 8,
        ended_memory: int = 1000,
        max_deliveries: int = 3,
        grace_s: float = 2.0,
        actor_calls: int = 100,
        cores: int | None = None,
        grow_after_s: float = 0.5,
    ) -> DispatcherState:
        pools = {name: Pool(route) for name, route in routing.steps.items()}
        return cls(
            routing,
            pools,
            max_batch=max_batch,
            pipeline=pipeline,
            batch_target_s=batch_target_s,
            first_batch=first_batch,
            ended_memory=ended_memory,
            max_deliveries=max_deliveries,
            grace_s=grace_s,
            actor_calls=actor_calls,
            cores=cores,
            grow_after_s=grow_after_s,
        )
