"""Feeding a step pool: which waiting events go to which actor in one call, when the pool grows, and which
slots of the next steps a call may borrow. Part of the reducer (``rayflow.core.reducer``); plain data, no I/O.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from rayflow.core.commands import ArmGrowth, CallStep, Command, StartActor, WatchCall, WorkItem
from rayflow.core.internal import step_state
from rayflow.core.run_queue import RunQueue
from rayflow.core.state import ActorSlot, Call, DispatcherState, Pool

__all__ = ["feed", "start_actor"]


def start_actor(pool: Pool) -> StartActor:
    """Reserve the pool's next actor number; the command that starts it."""
    actor = pool.next_actor
    pool.next_actor += 1
    pool.starting.add(actor)
    return StartActor(pool.route.name, actor)


def feed(state: DispatcherState, pool: Pool) -> list[Command]:
    """Send waiting events to actors with a free slot, and grow the pool while events still wait.

    An actor runs the calls of one run one after the other, and calls of different runs at the same time (while
    one awaits, another runs): so a run has at most ``num_workers`` invocations of a step going at once, and waiting
    on I/O does not hold an actor for other runs. A step with ``max_in_flight`` gets calls of one run each, at most
    that many going at once over the whole pool.
    """
    commands: list[Command] = []
    route = pool.route
    limit = pool.limit(state.cores)
    growing = pool.size < limit or bool(pool.starting)
    # A call queued on an actor cannot move to an actor that frees up or starts later: while the pool grows, one
    # call per actor, unless the step mostly waits (then calls of other runs on the actor take nothing from each
    # other). Once it is at its full size, a second call of a run queued behind its running one hides the call
    # round trip, and other runs' calls run beside them. A step with a timeout gets one call per actor: the call's
    # deadline counts from when it is sent.
    timed = route.timeout is not None
    per_actor = 1 if (growing and not pool.waits) or timed else state.actor_calls
    per_run = 1 if growing or timed else 1 + state.pipeline
    single_run = route.max_in_flight is not None
    budget = None
    if route.max_in_flight is not None:
        budget = route.max_in_flight - sum(slot.inflight for slot in pool.actors.values())
    if pool.actors and pool.waiting:
        batch_size = pool.batch_size(state.max_batch, state.batch_target_s, state.first_batch, state.cores)
        progress = True
        while progress and pool.waiting and budget != 0:  # rounds: each actor's first call, then its second...
            progress = False
            for slot in sorted(pool.actors.values(), key=lambda s: s.inflight):
                if slot.lent or slot.alone or slot.inflight >= per_actor or not (slot.queue or pool.queue):
                    continue
                if budget == 0 or (slot.draining and slot.inflight):
                    continue
                items, diverted = _take(state, pool, slot, batch_size, per_run, single_run)
                progress = progress or diverted  # events moved to their collect home get another pass
                if items:
                    commands.extend(_call(state, pool, slot, items))
                    progress = True
                    if budget is not None:
                        budget -= 1
    _drain_for_again(pool)
    # Events queued at their run's collect home cannot use a new actor: only those waiting for any actor count.
    idle = sum(1 for s in pool.actors.values() if s.idle) + len(pool.starting)
    can_grow = pool.size < limit
    for _ in range(min(len(pool.queue) - idle, limit - pool.size) if can_grow else 0):
        commands.append(start_actor(pool))  # one new actor per waiting event, up to num_workers (or the cores)
    if pool.busy is None and pool.growth is None and len(pool.queue) > idle and limit < route.num_workers:
        pool.growth = "armed"  # held to the cores: past the wait, its first calls may be waiting on each other
        commands.append(ArmGrowth(route.name, state.grow_after_s))
    return commands


def _drain_for_again(pool: Pool) -> None:
    """An event delivered again runs alone on an actor with no other call: while one waits and no actor is free,
    the least busy actor takes no new call until it is (else a busy pool would never free one)."""
    slots = pool.actors.values()
    waiting = pool.queue.again or any(slot.queue.again for slot in slots)
    if not waiting:
        for slot in slots:
            slot.draining = False
        return
    if any(slot.draining or (slot.inflight == 0 and not slot.lent) for slot in slots) or not slots:
        return
    min(slots, key=lambda s: s.inflight).draining = True


def _call(state: DispatcherState, pool: Pool, slot: ActorSlot, items: list[WorkItem]) -> list[Command]:
    """The call of ``items`` on ``slot``; a step with a timeout also gets a deadline for it (one item a call), past
    which its actor is taken to be blocked where it cannot be told to stop."""
    call_id = state.next_call
    state.next_call += 1
    timeout = pool.route.timeout
    loans = _lend(state, pool) if timeout is None else ()
    state.calls[call_id] = Call(pool.route.name, slot.id, items, loans)
    slot.inflight += 1
    slot.runs.update({item.run_id for item in items})
    call: list[Command] = [CallStep(call_id, pool.route.name, slot.id, items, tuple(name for name, _ in loans))]
    for item in items:
        run = state.runs.get(item.run_id)
        if run is not None and run.internal:
            call.append(step_state(item.run_id, pool.route.name, "running", str(slot.id), item))
    if timeout is not None:
        call.append(WatchCall(call_id, timeout * len(items) + state.grace_s))
    return call


def _lend(state: DispatcherState, pool: Pool) -> tuple[tuple[str, int], ...]:
    """Idle slots of the steps ``pool``'s events go to next, for a call of ``pool``'s step.

    Only between fast steps (a call then holds the slots briefly), only from pools with no event waiting, and never
    a step whose speed is not known yet.
    """
    fast = state.fast_s
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


def _take(
    state: DispatcherState, pool: Pool, slot: ActorSlot, size: int, per_run: int, single_run: bool
) -> tuple[list[WorkItem], bool]:
    """Up to ``size`` events for ``slot``: its own first; a collecting step's events go to their run's home (and into
    the run's log of what the home was given). A run's events go together; a run that has ``per_run`` calls on the
    actor already (or, with ``single_run``, any run once the call has one) is passed over for the next run, so one
    run's waiting events never hold up another's. An event delivered again after its call was lost, and every event
    of a step with a timeout, goes alone: a call that fails again then names its event."""
    items: list[WorkItem] = []
    runs: set[str] = set()
    diverted = False
    name, collects = pool.route.name, pool.route.collects
    if pool.route.timeout is not None:
        size = 1

    def eligible_in(queue: RunQueue) -> Callable[[str], bool]:
        def eligible(run_id: str) -> bool:
            if queue.head(run_id).deliveries:  # delivered again: alone, on an actor with no other call
                return not items and slot.inflight == 0
            if run_id in runs:
                return True
            return not (slot.runs[run_id] >= per_run or (single_run and runs))

        return eligible

    while len(items) < size:
        own = bool(slot.queue)
        queue = slot.queue
        run_id = queue.first_run(eligible_in(queue)) if own else None
        if run_id is None:
            own, queue = False, pool.queue
            run_id = queue.first_run(eligible_in(queue))
            if run_id is None:
                break
        item = queue.pop(run_id)
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
        runs.add(item.run_id)
        if item.deliveries:
            slot.alone, slot.draining = True, False
            break
    return items, diverted
