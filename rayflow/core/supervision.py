"""Supervision, in the reducer: what happens when a step call comes back lost (its actor died, or rayflow stopped it),
runs past its step's timeout, or fails and waits for its retry. Modelled on a one-for-one supervisor: a dead actor
leaves its pool and is replaced, its work is handed out again, and a bound on deliveries turns a crash loop into a
clear failure of the one run whose event causes it.

Exactly once: every event carries an id derived from its cause (``rayflow.core.envelope.derive_id``) and a run routes
an id once, so a step body run again after its actor died emits nothing twice. A collecting step's buffers live in its
run's home actor; the items delivered there since its buffers were last empty are logged, and delivered again, in
order, to a new home when the old one dies: the buffers are rebuilt by running the step again.
"""

from __future__ import annotations

from dataclasses import replace

from rayflow.core.commands import (
    ArmRetry,
    Outcome,
    StopActor,
    WorkItem,
)
from rayflow.core.effects import Effects, end_run, enqueue_item, uncount
from rayflow.core.feeding import start_actor
from rayflow.core.state import Call, Pool, Run
from rayflow.core.ticks import (
    CallOverdue,
)


def requeue_front(fx: Effects, name: str, items: list[WorkItem]) -> None:
    """Queue ``items`` again ahead of everything waiting for ``name``, in their order (they were taken first)."""
    for item in reversed(items):
        run = fx.state.runs.get(item.run_id)
        if run is None:
            continue
        enqueue_item(fx, run, name, item, front=True)


def delay(fx: Effects, run: Run, name: str, item: WorkItem, after: float) -> None:
    """A failed item waits ``after`` seconds for its retry, counted as the run's work but on no actor."""
    number = run.next_delay
    run.next_delay += 1
    run.delayed[number] = (name, item)
    run.inflight += 1
    run.active[name] += 1
    fx.commands.append(ArmRetry(run.run_id, number, after))


def buffers_empty(run: Run, name: str, item: WorkItem) -> None:
    """The run's collect buffers at ``name`` were empty after ``item``: the items up to it need no replay."""
    log = run.delivered.get(name)
    while log:
        if log.popleft() is item:
            break


def forget_delivery(run: Run, name: str, item: WorkItem) -> None:
    """``item`` was taken for a call but did not run: it is logged again when it is taken again."""
    log = run.delivered.get(name)
    if log is not None and item in log:
        log.remove(item)


def call_lost(fx: Effects, call: Call, reason: str) -> None:
    """A call came back lost (its actor died, or rayflow stopped it): the actor leaves its pool, and the call's items
    are delivered again to a live actor; other runs' items in the call are not failed. An item lost with its actor
    ``max_deliveries`` times fails its run (a poison event); a call rayflow stopped counts against none of its items
    except the one that ran past its step's timeout, which fails as that step's attempt (retries, ``@catch_error``)."""
    state = fx.state
    pool = state.pools[call.step]
    route = pool.route
    if route.collects and call.stopped is None:  # the lost items are replayed from their runs' logs: count them there
        for item in call.items:
            run = state.runs.get(item.run_id)
            log = run.delivered.get(call.step) if run is not None else None
            if log is not None and item in log:
                log[log.index(item)] = replace(item, deliveries=item.deliveries + 1)
    if call.actor in pool.actors:
        retire(fx, pool, call.actor, reason)
    again: list[WorkItem] = []
    for item in call.items:
        run = state.runs.get(item.run_id)
        if run is None:
            continue
        uncount(fx, run, call.step)
        if route.collects:
            continue  # delivered again with the rest of the run's log when its home was retired
        if call.stopped == "timeout":
            again.append(replace(item, timed_out=route.timeout))
        elif call.stopped is not None:
            again.append(item)
        elif item.deliveries + 1 >= state.max_deliveries:
            message = (
                f"Step {call.step!r} lost its actor {item.deliveries + 1} times while handling a "
                f"{item.envelope.class_name} event (does this event crash the process?). Last: {reason}"
            )
            end_run(fx, run, Outcome.FAILED, message=message, step_name=call.step)
        else:
            again.append(replace(item, deliveries=item.deliveries + 1))
    requeue_front(fx, call.step, again)


def retire(fx: Effects, pool: Pool, actor: int, reason: str, *, stopped: str | None = None) -> None:
    """Take ``actor`` out of its pool and end it; its events go back to the pool. A run whose collect buffers it held
    gets a new home, and the events delivered to the old one since its buffers were last empty are delivered again
    (their step bodies run again; the events they emit again are routed once). ``stopped``: rayflow stops it, and its
    other calls in flight come back lost through no fault of their items."""
    state, name = fx.state, pool.route.name
    slot = pool.actors.pop(actor)
    fx.commands.append(StopActor(name, actor, reason))
    fx.dirty[name] = pool
    if stopped is not None:
        for call in state.calls.values():
            if call.step == name and call.actor == actor and call.stopped is None:
                call.stopped = stopped
    front: list[WorkItem] = []
    for run in state.runs.values():
        if run.homes.get(name) != actor:
            continue
        del run.homes[name]
        log = run.delivered.get(name)
        if log:
            run.inflight += len(log)
            run.active[name] += len(log)
            front.extend(log)
            log.clear()
        fx.touched[run.run_id] = run
    front.extend(slot.queue)
    pool.waiting += len(front) - len(slot.queue)
    pool.queue.push_front(front)
    if pool.size == 0:
        fx.commands.append(start_actor(pool))  # a replacement at once: the pool's next event finds it started


def call_overdue(fx: Effects, tick: CallOverdue) -> None:
    """A call of a step with a timeout is not back: its actor is blocked (a sync step, or an async one blocking its
    loop). Stop the actor; the call comes back lost and its item fails as a timed-out attempt."""
    call = fx.state.calls.get(tick.call_id)
    if call is None:
        return
    pool = fx.state.pools[call.step]
    call.stopped = "timeout"
    if call.actor in pool.actors:
        timeout = pool.route.timeout
        retire(fx, pool, call.actor, f"step {call.step!r} ran past its timeout of {timeout} s", stopped="ended")
