"""Effects of one tick: the commands it produces and what it touched, and the moves every rule makes: queueing an
event for a step (counted as its run's work), uncounting it, ending a run. Part of the reducer; plain data, no I/O."""

from __future__ import annotations

from rayflow.core.commands import (
    Command,
    ConfirmStopped,
    EndRun,
    Outcome,
    Warn,
    WorkItem,
)
from rayflow.core.envelope import Envelope, Resolved
from rayflow.core.internal import step_state
from rayflow.core.routing import delivers
from rayflow.core.state import DispatcherState, Pool, Run
from rayflow.core.streams import count, stream_for, take_join, take_slot


class Effects:
    """The commands one tick produces, and the pools that need feeding once the tick is applied."""

    def __init__(self, state: DispatcherState) -> None:
        self.state = state
        self.commands: list[Command] = []
        self.dirty: dict[str, Pool] = {}
        self.touched: dict[str, Run] = {}


def enqueue(fx: Effects, run: Run, name: str, envelope: Envelope, resolved: Resolved = (), *, new: bool = True) -> None:
    """Deliver ``envelope`` to step ``name``: a work item, or, for a join or a step of several event parameters,
    an event that waits for the others it runs with (``rayflow.core.streams``). ``new``: the item is new work of
    its scope's streams, not a paused invocation going on."""
    route = fx.state.pools[name].route
    if route.joins is not None:
        stream = stream_for(run, route.joins, envelope)
        taken = None if stream is None else take_join(run, stream, name, route.take, envelope)
        if stream is None:
            fx.commands.append(
                Warn(
                    run.run_id,
                    f"Event {envelope.class_name} reached step {name!r} outside any stream of "
                    f"{', '.join(sorted(route.joins)) or 'a fan-out step'}: a list[{envelope.class_name}] "
                    "join takes only the events made while handling a returned list; it was dropped",
                )
            )
        elif taken is not None:
            count(run, taken.envelope.scope, +1)
            enqueue_item(fx, run, name, taken)
        fx.touched[run.run_id] = run
        return
    if route.slots:
        fits = [i for i, keys in enumerate(route.slots) if delivers(keys, route.accept_subclasses, envelope.type_keys)]
        item = take_slot(run, name, len(route.slots), fits, envelope)
        if item is not None:
            count(run, item.envelope.scope, +1)
            enqueue_item(fx, run, name, item)
        fx.touched[run.run_id] = run
        return
    if new:
        count(run, envelope.scope, +1)
    enqueue_item(fx, run, name, WorkItem(run.run_id, run.ctx_id, envelope, resolved))


def enqueue_item(fx: Effects, run: Run, name: str, item: WorkItem, *, front: bool = False) -> None:
    """Count ``item`` as the run's work at ``name`` and queue it (``front``: ahead of all waiting there): at its run's
    collect home if it has one."""
    pool = fx.state.pools[name]
    run.inflight += 1
    run.active[name] += 1
    home = run.homes.get(name) if pool.route.collects else None
    if run.internal and not any(slot.idle for slot in pool.actors.values()):
        fx.commands.append(step_state(run.run_id, name, "preparing", "<enqueued>", item))
    queue = pool.actors[home].queue if home is not None and home in pool.actors else pool.queue
    if front:
        queue.push_front((item,))
    else:
        queue.append(item)
    pool.waiting += 1
    fx.dirty[name] = pool
    fx.touched[run.run_id] = run


def uncount(fx: Effects, run: Run, name: str) -> None:
    """One piece of the run's work at ``name`` is over (done, failed, or about to be queued again)."""
    run.inflight -= 1
    run.active[name] -= 1
    fx.touched[run.run_id] = run


def end_run(
    fx: Effects,
    run: Run,
    outcome: Outcome,
    *,
    payload: object = None,
    message: str = "",
    step_name: str | None = None,
    active_steps: tuple[str, ...] = (),
    attempts: tuple[int, float] | None = None,
    collecting: tuple[tuple[str, int], ...] = (),
) -> None:
    state = fx.state
    if outcome is not Outcome.DONE:  # kept for a snapshot taken after the end (``ctx.to_dict()`` after a cancel)
        pending = state.pending(run.run_id)
        if pending is not None:
            state.ended[run.run_id] = pending
            if len(state.ended) > state.ended_memory:
                del state.ended[next(iter(state.ended))]
    del state.runs[run.run_id]
    tries, elapsed = attempts if attempts is not None else (None, None)
    fx.commands.append(
        EndRun(run.run_id, outcome, payload, message, step_name, active_steps, tries, elapsed, collecting)
    )
    busy = {(c.step, c.actor) for c in state.calls.values() if any(i.run_id == run.run_id for i in c.items)}
    if busy:  # its invocations there are stopped; an actor that cannot even answer is replaced
        fx.commands.append(ConfirmStopped(run.run_id, tuple(sorted(busy))))
