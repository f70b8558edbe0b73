"""Feeding a step pool: which waiting events go to which actor in one call, when the pool grows, and which
slots of the next steps a call may borrow. Part of the reducer (``rayflow.core.reducer``); plain data, no I/O.
"""

from __future__ import annotations

from collections import deque

from rayflow.core.commands import CallStep, Command, StartActor, WatchCall, WorkItem
from rayflow.core.state import ActorSlot, Call, DispatcherState, Pool

__all__ = ["feed", "start_actor"]


def start_actor(pool: Pool) -> StartActor:
    """Reserve the pool's next actor number; the command that starts it."""
    actor = pool.next_actor
    pool.next_actor += 1
    pool.starting.add(actor)
    return StartActor(pool.route.name, actor)


def feed(state: DispatcherState, pool: Pool) -> list[Command]:
    """Send waiting events to actors with a free slot, and grow the pool while events still wait."""
    commands: list[Command] = []
    can_grow = pool.size < pool.route.num_workers
    # A second call queued on a busy actor hides the call round trip, but an event queued there cannot
    # move to an actor that frees up or starts later: queue only once the pool is at its full size and
    # started, and only after every actor has a call (rounds: each actor's first call, then the second).
    # A step with a timeout gets no second call either: the call's deadline counts from when it is sent.
    limit = 1 if can_grow or pool.starting or pool.route.timeout is not None else 1 + state.pipeline
    if pool.actors and pool.waiting:
        batch_size = pool.batch_size(state.max_batch, state.batch_target_s, state.first_batch)
        moved = True
        while moved and pool.waiting:  # events moved to their collect home get a second pass
            moved = False
            for level in range(1, limit + 1):
                for slot in sorted(pool.actors.values(), key=lambda s: s.inflight):
                    while not slot.lent and slot.inflight < level and (slot.queue or pool.queue):
                        items, diverted = _take(state, pool, slot, batch_size)
                        moved = moved or diverted
                        if not items:
                            break
                        commands.extend(_call(state, pool, slot, items))
    idle = sum(1 for s in pool.actors.values() if s.idle) + len(pool.starting)
    for _ in range(min(pool.waiting - idle, pool.route.num_workers - pool.size) if can_grow else 0):
        commands.append(start_actor(pool))  # one new actor per waiting event, up to num_workers
    return commands


def _call(state: DispatcherState, pool: Pool, slot: ActorSlot, items: list[WorkItem]) -> list[Command]:
    """The call of ``items`` on ``slot``; a step with a timeout also gets a deadline for it (one item a call), past
    which its actor is taken to be blocked where it cannot be told to stop."""
    call_id = state.next_call
    state.next_call += 1
    timeout = pool.route.timeout
    loans = _lend(state, pool) if timeout is None else ()
    state.calls[call_id] = Call(pool.route.name, slot.id, items, loans)
    slot.inflight += 1
    call: list[Command] = [CallStep(call_id, pool.route.name, slot.id, items, tuple(name for name, _ in loans))]
    if timeout is not None:
        call.append(WatchCall(call_id, timeout * len(items) + state.grace_s))
    return call


def _lend(state: DispatcherState, pool: Pool) -> tuple[tuple[str, int], ...]:
    """Idle slots of the steps ``pool``'s events go to next, for a call of ``pool``'s step.

    Only between fast steps (a call then holds the slots briefly), only from pools with no event waiting, and never
    a step whose speed is not known yet.
    """
    fast = state.batch_target_s
    if pool.per_event is None or pool.per_event > fast:
        return ()
    loans = []
    for name in state.routing.successors(pool.route.name):
        other = state.pools[name]
        if other.waiting or other.per_event is None or other.per_event > fast:
            continue
        slot = next((s for s in other.actors.values() if s.idle), None)
        if slot is not None:
            slot.lent = True
            loans.append((name, slot.id))
    return tuple(loans)


def _take(state: DispatcherState, pool: Pool, slot: ActorSlot, size: int) -> tuple[list[WorkItem], bool]:
    """Up to ``size`` events for ``slot``: its own first; a collecting step's events go to their run's home (and into
    the run's log of what the home was given). An event delivered again after its call was lost, and every event of a
    step with a timeout, goes alone: a call that fails again then names its event."""
    items: list[WorkItem] = []
    diverted = False
    name, collects = pool.route.name, pool.route.collects
    if pool.route.timeout is not None:
        size = 1
    while len(items) < size and (slot.queue or pool.queue):
        own = bool(slot.queue)
        queue = slot.queue if own else pool.queue
        if queue[0].deliveries and items:
            break
        item = queue.popleft()
        pool.waiting -= 1
        run = state.runs.get(item.run_id)
        if run is None:
            continue  # the run ended while this event waited
        if collects and not own:
            home = run.homes.setdefault(name, slot.id)
            if home != slot.id and home in pool.actors:
                pool.actors[home].queue.append(item)
                pool.waiting += 1
                diverted = True
                continue
        if collects:
            run.delivered.setdefault(name, deque()).append(item)
        items.append(item)
        if item.deliveries:
            break
    return items, diverted
