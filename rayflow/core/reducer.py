"""The reducer: one tick and the dispatcher's state in, the commands that carry it out back.

Routing rules, in the order they apply to an emitted envelope:
stream items go to the run's stream; the first StopEvent ends the run; an ``InputRequiredEvent`` goes to
the stream and to any step accepting it; any other event goes to every step accepting its exact type
(subclasses only for steps that ask for them), or to the one step it is addressed to. An event no step
accepts fails the run instead of vanishing, unless a step paused in ``wait_for_event`` awaits its type: an
event that answers a wait reruns the paused invocation with it (and reaches no other delivery to that step);
one that misses the wait's requirements is ignored, as in LlamaIndex. Whether it meets them is asked of a step
actor (the core, like the dispatcher, never opens a payload); the event's delivery to the waiting step is held
until the answer. A run with no work queued or running,
no StopEvent, no paused step and no question pending for the caller ends at once as stuck (naming the actors that
hold its collect buffers, for the runtime to say what they wait for) instead of hanging until its timeout.

A call of a fast step may carry loans: an idle slot of each fast, stateless step its events go to next, so the
actor runs a chain of small steps (A -> B -> A ...) by itself instead of a dispatcher round trip per hop; a lent slot
takes no other call until the loan comes back, so a step never runs more than ``num_workers`` events at once.

Costs are O(1) per event (plus the number of steps an event goes to): no decision scans a run's history.
The state is mutated in place; the reducer does no I/O and reads no clock, so tests drive it directly.
"""

from __future__ import annotations

from dataclasses import replace

from rayflow.core.commands import (
    ArmRetry,
    ArmTimeout,
    ArmWaiterTimeout,
    CheckRequirements,
    Command,
    ConfirmStopped,
    EndRun,
    Outcome,
    Publish,
    StopActor,
    WorkItem,
)
from rayflow.core.envelope import Envelope, Failure, Kind, Requirements, Resolved, Waiter
from rayflow.core.feeding import feed, start_actor
from rayflow.core.routing import delivers
from rayflow.core.state import ActorSlot, Call, DispatcherState, Pool, Run
from rayflow.core.ticks import (
    ActorStarted,
    ActorStartFailed,
    ActorUnresponsive,
    CallFinished,
    CallOverdue,
    CancelRequested,
    EventsEmitted,
    RequirementsChecked,
    RetryDue,
    RunResumed,
    RunStarted,
    Tick,
    TimeoutReached,
    WaiterTimedOut,
    WarmUp,
)


class _Step:
    """The commands one tick produces, and the pools that need feeding once the tick is applied."""

    def __init__(self, state: DispatcherState) -> None:
        self.state = state
        self.commands: list[Command] = []
        self.dirty: dict[str, Pool] = {}
        self.touched: dict[str, Run] = {}


def reduce(state: DispatcherState, tick: Tick) -> list[Command]:
    """Apply ``tick`` to ``state`` and return the commands that follow from it, in order."""
    step = _Step(state)
    if isinstance(tick, RunStarted):
        _run_started(step, tick)
    elif isinstance(tick, RunResumed):
        _run_resumed(step, tick)
    elif isinstance(tick, WarmUp):
        _warm(step)
    elif isinstance(tick, EventsEmitted):
        run = state.runs.get(tick.run_id)
        if run is not None:
            for envelope in tick.envelopes:
                _emit(step, run, envelope, tick.step)
    elif isinstance(tick, CallFinished):
        _call_finished(step, tick)
    elif isinstance(tick, ActorStarted):
        pool = state.pools[tick.step]
        pool.starting.discard(tick.actor)
        pool.actors[tick.actor] = ActorSlot(tick.actor)
        step.dirty[tick.step] = pool
    elif isinstance(tick, ActorStartFailed):
        _actor_start_failed(step, tick)
    elif isinstance(tick, TimeoutReached):
        run = state.runs.get(tick.run_id)
        if run is not None:
            active = tuple(sorted(name for name, n in run.active.items() if n > 0))
            info = "Currently active steps: " + ", ".join(active) if active else "No steps active"
            _end(
                step,
                run,
                Outcome.TIMED_OUT,
                message=f"Operation timed out after {run.timeout} seconds. {info}",
                active_steps=active,
            )
    elif isinstance(tick, CancelRequested):
        run = state.runs.get(tick.run_id)
        if run is not None:
            _end(step, run, Outcome.CANCELLED, message="Workflow run cancelled by user")
    elif isinstance(tick, WaiterTimedOut):
        run = state.runs.get(tick.run_id)
        if run is not None:
            _waiter_timed_out(step, run, tick)
    elif isinstance(tick, RequirementsChecked):
        run = state.runs.get(tick.run_id)
        if run is not None:
            _requirements_checked(step, run, tick)
    elif isinstance(tick, RetryDue):
        run = state.runs.get(tick.run_id)
        entry = run.delayed.pop(tick.number, None) if run is not None else None
        if run is not None and entry is not None:
            name, item = entry
            _uncount(step, run, name)
            _enqueue_item(step, run, name, item)
    elif isinstance(tick, CallOverdue):
        _call_overdue(step, tick)
    elif isinstance(tick, ActorUnresponsive):
        pool = state.pools[tick.step]
        if tick.actor in pool.actors:
            _retire(step, pool, tick.actor, "it did not stop the work of a run that ended", stopped="ended")
    for run in step.touched.values():
        _check_idle(step, run)
    for pool in step.dirty.values():
        step.commands.extend(feed(state, pool))
    return step.commands


def _run_started(step: _Step, tick: RunStarted) -> None:
    run = Run(tick.run_id, tick.ctx_id, tick.timeout)
    step.state.runs[tick.run_id] = run
    _warm(step)
    if tick.timeout is not None:
        step.commands.append(ArmTimeout(tick.run_id, tick.now + tick.timeout))
    _emit(step, run, tick.start, None)
    step.touched[run.run_id] = run


def _run_resumed(step: _Step, tick: RunResumed) -> None:
    """A run from a snapshot: its queued and interrupted events go back to their steps, its waits and its
    question for the caller stand again."""
    run = Run(tick.run_id, tick.ctx_id, tick.timeout)
    step.state.runs[tick.run_id] = run
    step.touched[run.run_id] = run
    _warm(step)
    if tick.timeout is not None:
        step.commands.append(ArmTimeout(tick.run_id, tick.now + tick.timeout))
    pending = tick.pending
    unknown = sorted({name for name, _ in (*pending.items, *pending.waits) if name not in step.state.pools})
    if unknown:
        message = f"The snapshot has work for steps this workflow does not have: {', '.join(unknown)}"
        _end(step, run, Outcome.FAILED, message=message)
        return
    run.awaiting_input = pending.awaiting_input
    for name, item in pending.items:
        _enqueue(step, run, name, item.envelope, item.resolved)
    for name, waiter in pending.waits:
        _wait(step, run, name, waiter)
    # These events were routed before the snapshot: a step that runs again and emits them again is routed once.
    triggers = (*(item.envelope for _, item in pending.items), *(waiter.trigger for _, waiter in pending.waits))
    run.seen.update(envelope.event_id for envelope in triggers if envelope.event_id)


def _warm(step: _Step) -> None:
    """One actor for every pool that has none, started in parallel, instead of one actor start per hop."""
    for pool in step.state.pools.values():
        if pool.size == 0:
            step.commands.append(start_actor(pool))


def _emit(step: _Step, run: Run, envelope: Envelope, source: str | None) -> None:
    if run.run_id not in step.state.runs:
        return  # the run ended earlier in this tick: later events of it are moot
    if envelope.event_id:
        if envelope.event_id in run.seen:
            return  # emitted again by a step body that ran again (its actor died): routed once already
        run.seen.add(envelope.event_id)
    kind = envelope.kind
    if kind is Kind.STREAM:
        step.commands.append(Publish(run.run_id, envelope))
        return
    if kind is Kind.STOP:
        _end(step, run, Outcome.DONE, payload=envelope, step_name=source)
        return
    if kind is Kind.INPUT_REQUIRED:
        step.commands.append(Publish(run.run_id, envelope))
        run.awaiting_input = True
    targets = step.state.routing.targets(envelope)
    skipped: tuple[str, ...] = ()
    if run.waits:
        skipped, awaited = _resume_waits(step, run, envelope, targets)
        if awaited and not skipped and envelope.target is None and not targets:
            return  # awaited by a wait whose requirements it does not meet, and no step takes it: ignored
    if envelope.target is not None and (
        envelope.target not in step.state.pools or not step.state.routing.accepts(envelope.target, envelope.type_keys)
    ):
        _end(
            step,
            run,
            Outcome.FAILED,
            step_name=source,
            message=f"Step {envelope.target!r} does not exist or does not accept {envelope.type_name}",
        )
        return
    if skipped:
        targets = tuple(name for name in targets if name not in skipped)
        if not targets:
            return
    if not targets:
        if kind is Kind.INPUT_REQUIRED:
            return
        where = f"step {source!r}" if source else "the caller"
        _end(
            step,
            run,
            Outcome.FAILED,
            step_name=source,
            message=f"Event {envelope.type_name} sent by {where} is accepted by no step",
        )
        return
    for name in targets:
        _enqueue(step, run, name, envelope)


def _enqueue(step: _Step, run: Run, name: str, envelope: Envelope, resolved: Resolved = ()) -> None:
    _enqueue_item(step, run, name, WorkItem(run.run_id, run.ctx_id, envelope, resolved))


def _enqueue_item(step: _Step, run: Run, name: str, item: WorkItem) -> None:
    """Count ``item`` as the run's work at ``name`` and queue it: at its run's collect home if it has one."""
    pool = step.state.pools[name]
    run.inflight += 1
    run.active[name] += 1
    home = run.homes.get(name) if pool.route.collects else None
    if home is not None and home in pool.actors:
        pool.actors[home].queue.append(item)
    else:
        pool.queue.append(item)
    pool.waiting += 1
    step.dirty[name] = pool
    step.touched[run.run_id] = run


def _uncount(step: _Step, run: Run, name: str) -> None:
    """One piece of the run's work at ``name`` is over (done, failed, or about to be queued again)."""
    run.inflight -= 1
    run.active[name] -= 1
    step.touched[run.run_id] = run


def _call_finished(step: _Step, tick: CallFinished) -> None:
    state = step.state
    call = state.calls.pop(tick.call_id)
    pool = state.pools[call.step]
    slot = pool.actors.get(call.actor)
    if slot is not None:
        slot.inflight -= 1
    step.dirty[call.step] = pool
    for name, actor in call.loans:
        lender = state.pools[name]
        lent = lender.actors.get(actor)
        if lent is not None:
            lent.lent = False
        step.dirty[name] = lender
    if tick.lost is not None:
        _call_lost(step, call, tick.lost)
        return
    if tick.results and tick.elapsed > 0:
        sample = tick.elapsed / len(tick.results)
        pool.per_event = sample if pool.per_event is None else 0.7 * pool.per_event + 0.3 * sample
    if tick.retire is not None and slot is not None:
        _retire(step, pool, call.actor, tick.retire)
    again: list[WorkItem] = []
    for item, done in zip(call.items, tick.results, strict=True):
        run = state.runs.get(item.run_id)
        if run is None:
            continue
        _uncount(step, run, call.step)
        if done.requeue:  # not run: its actor is retiring
            _forget_delivery(run, call.step, item)
            again.append(item)
            continue
        run.last_step = name = done.step or call.step
        if pool.route.collects and not done.holding:
            _buffers_empty(run, call.step, item)
        if done.retry is not None:
            _delay(step, run, name, done.retry, done.retry_after)
        elif done.failure is not None:
            _handle_failure(step, run, done.failure)
        elif done.waiting is not None:
            _wait(step, run, name, done.waiting)
        elif done.output is not None:
            _emit(step, run, done.output, name)
    _requeue_front(step, call.step, again)


def _requeue_front(step: _Step, name: str, items: list[WorkItem]) -> None:
    """Queue ``items`` again ahead of everything waiting for ``name``, in their order (they were taken first)."""
    for item in reversed(items):
        run = step.state.runs.get(item.run_id)
        if run is None:
            continue
        _enqueue_item(step, run, name, item)
        pool = step.state.pools[name]
        queue = pool.queue
        home = run.homes.get(name)
        if home is not None and home in pool.actors:
            queue = pool.actors[home].queue
        queue.appendleft(queue.pop())


def _delay(step: _Step, run: Run, name: str, item: WorkItem, after: float) -> None:
    """A failed item waits ``after`` seconds for its retry, counted as the run's work but on no actor."""
    number = run.next_delay
    run.next_delay += 1
    run.delayed[number] = (name, item)
    run.inflight += 1
    run.active[name] += 1
    step.commands.append(ArmRetry(run.run_id, number, after))


def _buffers_empty(run: Run, name: str, item: WorkItem) -> None:
    """The run's collect buffers at ``name`` were empty after ``item``: the items up to it need no replay."""
    log = run.delivered.get(name)
    while log:
        if log.popleft() is item:
            break


def _forget_delivery(run: Run, name: str, item: WorkItem) -> None:
    """``item`` was taken for a call but did not run: it is logged again when it is taken again."""
    log = run.delivered.get(name)
    if log is not None and item in log:
        log.remove(item)


def _call_lost(step: _Step, call: Call, reason: str) -> None:
    """A call came back lost (its actor died, or rayflow stopped it): the actor leaves its pool, and the call's items
    are delivered again to a live actor; other runs' items in the call are not failed. An item lost with its actor
    ``max_deliveries`` times fails its run (a poison event); a call rayflow stopped counts against none of its items
    except the one that ran past its step's timeout, which fails as that step's attempt (retries, ``@catch_error``)."""
    state = step.state
    pool = state.pools[call.step]
    route = pool.route
    if route.collects and call.stopped is None:  # the lost items are replayed from their runs' logs: count them there
        for item in call.items:
            run = state.runs.get(item.run_id)
            log = run.delivered.get(call.step) if run is not None else None
            if log is not None and item in log:
                log[log.index(item)] = replace(item, deliveries=item.deliveries + 1)
    if call.actor in pool.actors:
        _retire(step, pool, call.actor, reason)
    again: list[WorkItem] = []
    for item in call.items:
        run = state.runs.get(item.run_id)
        if run is None:
            continue
        _uncount(step, run, call.step)
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
            _end(step, run, Outcome.FAILED, message=message, step_name=call.step)
        else:
            again.append(replace(item, deliveries=item.deliveries + 1))
    _requeue_front(step, call.step, again)


def _retire(step: _Step, pool: Pool, actor: int, reason: str, *, stopped: str | None = None) -> None:
    """Take ``actor`` out of its pool and end it; its events go back to the pool. A run whose collect buffers it held
    gets a new home, and the events delivered to the old one since its buffers were last empty are delivered again
    (their step bodies run again; the events they emit again are routed once). ``stopped``: rayflow stops it, and its
    other calls in flight come back lost through no fault of their items."""
    state, name = step.state, pool.route.name
    slot = pool.actors.pop(actor)
    step.commands.append(StopActor(name, actor, reason))
    step.dirty[name] = pool
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
        step.touched[run.run_id] = run
    front.extend(slot.queue)
    pool.waiting += len(front) - len(slot.queue)
    pool.queue.extendleft(reversed(front))
    if pool.size == 0:
        step.commands.append(start_actor(pool))  # a replacement at once: the pool's next event finds it started


def _call_overdue(step: _Step, tick: CallOverdue) -> None:
    """A call of a step with a timeout is not back: its actor is blocked (a sync step, or an async one blocking its
    loop). Stop the actor; the call comes back lost and its item fails as a timed-out attempt."""
    call = step.state.calls.get(tick.call_id)
    if call is None:
        return
    pool = step.state.pools[call.step]
    call.stopped = "timeout"
    if call.actor in pool.actors:
        timeout = pool.route.timeout
        _retire(step, pool, call.actor, f"step {call.step!r} ran past its timeout of {timeout} s", stopped="ended")


def _wait(step: _Step, run: Run, name: str, waiter: Waiter) -> None:
    """A step paused in ``wait_for_event``: keep its trigger until the event arrives (or the wait times out)."""
    if waiter.announce is not None and not any(s == name and w.waiter_id == waiter.waiter_id for s, w, _ in run.waits):
        step.commands.append(Publish(run.run_id, waiter.announce))
    number = run.next_wait
    run.next_wait += 1
    run.waits.append((name, waiter, number))
    if waiter.timeout is not None:
        step.commands.append(ArmWaiterTimeout(run.run_id, number, waiter.timeout))


def _resume_waits(step: _Step, run: Run, envelope: Envelope, targets: tuple[str, ...]) -> tuple[tuple[str, ...], bool]:
    """Rerun every paused invocation whose wait ``envelope`` answers, and have a step actor check the waits with
    requirements (CheckRequirements). Returns the steps the envelope is not delivered to now (rerun, or held until
    the check answers), and whether any wait was for an event of its type at all."""
    routing = step.state.routing
    woken: list[str] = []
    checks: dict[str, list[tuple[int, Requirements]]] = {}
    awaited = False
    kept = []
    for wait in run.waits:
        name, waiter, number = wait
        if not delivers((waiter.event_keys[0],), routing.steps[name].accept_subclasses, envelope.type_keys):
            kept.append(wait)
            continue
        awaited = True
        if waiter.requirements:
            checks.setdefault(name, []).append((number, waiter.requirements))
            kept.append(wait)
            continue
        woken.append(name)
        _enqueue(step, run, name, waiter.trigger, (*waiter.resolved, (waiter.waiter_id, envelope)))
    run.waits = kept
    held = tuple(name for name in checks if name in targets and name not in woken)
    if checks:
        name = next(iter(checks))
        actor = _checker(step.state, name)
        if actor is not None:
            every = tuple(check for found in checks.values() for check in found)
            step.commands.append(CheckRequirements(run.run_id, actor[0], actor[1], envelope, every, held))
            run.checking += 1
        else:
            held = ()  # no actor to open the event: no requirement is met
    return (*dict.fromkeys(woken), *held), awaited


def _checker(state: DispatcherState, preferred: str) -> tuple[str, int] | None:
    """A started actor to open an event with: one of ``preferred``'s pool, else any (every step actor holds the
    workflow's event classes)."""
    for name in (preferred, *state.pools):
        actors = state.pools[name].actors
        if actors:
            return name, min(actors)
    return None


def _requirements_checked(step: _Step, run: Run, tick: RequirementsChecked) -> None:
    """Rerun the invocations whose waits the event met; deliver it to the held steps no met wait took."""
    run.checking -= 1
    woken: set[str] = set()
    kept = []
    for wait in run.waits:
        name, waiter, number = wait
        if number in tick.matched:
            woken.add(name)
            _enqueue(step, run, name, waiter.trigger, (*waiter.resolved, (waiter.waiter_id, tick.envelope)))
        else:
            kept.append(wait)
    run.waits = kept
    for name in tick.held:
        if name not in woken:
            _enqueue(step, run, name, tick.envelope)
    step.touched[run.run_id] = run


def _waiter_timed_out(step: _Step, run: Run, tick: WaiterTimedOut) -> None:
    kept = []
    for wait in run.waits:
        name, waiter, number = wait
        if number == tick.wait:
            _enqueue(step, run, name, waiter.trigger, (*waiter.resolved, (waiter.waiter_id, None)))
        else:
            kept.append(wait)
    run.waits = kept
    step.touched[run.run_id] = run


def _handle_failure(step: _Step, run: Run, failure: Failure) -> None:
    handler = step.state.routing.catch_handler(failure.step)
    if handler is not None and failure.failed_event is not None:
        if run.recoveries[handler.name] < handler.max_recoveries:
            run.recoveries[handler.name] += 1
            _enqueue(step, run, handler.name, failure.failed_event)
            return
    _end(
        step,
        run,
        Outcome.FAILED,
        payload=failure.error,
        message=failure.message,
        step_name=failure.step,
        attempts=(failure.attempts, failure.elapsed),
    )


def _actor_start_failed(step: _Step, tick: ActorStartFailed) -> None:
    pool = step.state.pools[tick.step]
    pool.starting.discard(tick.actor)
    if pool.actors:
        return  # the pool still has actors: its events keep flowing
    for item in list(pool.queue):
        run = step.state.runs.get(item.run_id)
        if run is not None:
            _end(
                step,
                run,
                Outcome.FAILED,
                payload=tick.error,
                step_name=tick.step,
                message=f"Step {tick.step!r} could not start an actor: {tick.message}",
            )
    pool.queue.clear()
    pool.waiting = 0


def _check_idle(step: _Step, run: Run) -> None:
    if run.inflight or run.awaiting_input or run.waits or run.checking or run.run_id not in step.state.runs:
        return
    last = f" (the last step to run was {run.last_step!r})" if run.last_step else ""
    _end(
        step,
        run,
        Outcome.STUCK,
        step_name=run.last_step,
        message=f"Workflow is idle: no step is running and no event is waiting, but no StopEvent was returned{last}",
        collecting=tuple(sorted(run.homes.items())),
    )


def _end(
    step: _Step,
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
    state = step.state
    if outcome is not Outcome.DONE:  # kept for a snapshot taken after the end (``ctx.to_dict()`` after a cancel)
        pending = state.pending(run.run_id)
        if pending is not None:
            state.ended[run.run_id] = pending
            if len(state.ended) > state.ended_memory:
                del state.ended[next(iter(state.ended))]
    del state.runs[run.run_id]
    tries, elapsed = attempts if attempts is not None else (None, None)
    step.commands.append(
        EndRun(run.run_id, outcome, payload, message, step_name, active_steps, tries, elapsed, collecting)
    )
    busy = {(c.step, c.actor) for c in state.calls.values() if any(i.run_id == run.run_id for i in c.items)}
    if busy:  # its invocations there are stopped; an actor that cannot even answer is replaced
        step.commands.append(ConfirmStopped(run.run_id, tuple(sorted(busy))))
