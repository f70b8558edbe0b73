"""The reducer: one tick and the dispatcher's state in, the commands that carry it out back.

Routing rules, in the order they apply to an emitted envelope:
stream items go to the run's stream; the first StopEvent ends the run; an ``InputRequiredEvent`` goes to
the stream and to any step accepting it; any other event goes to every step accepting its exact type
(subclasses only for steps that ask for them), or to the one step it is addressed to. An event no step
accepts fails the run instead of vanishing, unless a step paused in ``wait_for_event`` awaits its type: an
event that answers a wait reruns the paused invocation with it (and reaches no other delivery to that fx);
one that misses the wait's requirements is ignored, as in LlamaIndex. Whether it meets them is asked of a step
actor (the core, like the dispatcher, never opens a payload); the event's delivery to the waiting step is held
until the answer. A run with no work queued or running,
no StopEvent, no paused step and no question pending for the caller ends at once as stuck (naming the actors that
hold its collect buffers, for the runtime to say what they wait for) instead of hanging until its timeout.

A call of a fast step may carry loans: an idle slot of each fast, stateless step its events go to next, so the
actor runs a chain of small steps (A -> B -> A ...) by itself instead of a dispatcher round trip per hop; a lent slot
takes no other call until the loan comes back, so a run never has more than ``num_workers`` invocations of a step going
at once.

A call that comes back lost, runs past its step's timeout, or fails into a retry is supervision's
(``rayflow.core.supervision``); paused steps are ``rayflow.core.waits``; feeding pools is ``rayflow.core.feeding``.

Costs are O(1) per event (plus the number of steps an event goes to): no decision scans a run's history (a run's
end looks at the calls in flight, a dead actor at the runs homed on it).
The state is mutated in place; the reducer does no I/O and reads no clock, so tests drive it directly.
"""

from __future__ import annotations

from rayflow.core.commands import (
    ArmTimeout,
    Command,
    Outcome,
    Publish,
    WorkItem,
)
from rayflow.core.effects import Effects, end_run, enqueue, enqueue_item, uncount
from rayflow.core.envelope import Envelope, Failure, Kind
from rayflow.core.feeding import feed, start_actor
from rayflow.core.internal import idle, ignored, step_state
from rayflow.core.state import ActorSlot, DispatcherState, Run
from rayflow.core.streams import count, fan_out, finish_streams
from rayflow.core.supervision import (
    buffers_empty,
    call_lost,
    call_overdue,
    delay,
    forget_delivery,
    requeue_front,
    retire,
)
from rayflow.core.ticks import (
    ActorStarted,
    ActorStartFailed,
    ActorUnresponsive,
    CallFinished,
    CallOverdue,
    CallWaiting,
    CancelRequested,
    EventsEmitted,
    GrowthDue,
    InternalAsked,
    RequirementsChecked,
    RetryDue,
    RunResumed,
    RunStarted,
    Tick,
    TimeoutReached,
    WaiterTimedOut,
    WarmUp,
)
from rayflow.core.waits import pause, requirements_checked, resume_waits, waiter_timed_out


def reduce(state: DispatcherState, tick: Tick) -> list[Command]:
    """Apply ``tick`` to ``state`` and return the commands that follow from it, in order."""
    fx = Effects(state)
    if isinstance(tick, RunStarted):
        _run_started(fx, tick)
    elif isinstance(tick, RunResumed):
        _run_resumed(fx, tick)
    elif isinstance(tick, WarmUp):
        _warm(fx)
    elif isinstance(tick, InternalAsked):
        run = state.runs.get(tick.run_id)
        if run is not None:
            run.internal = True
    elif isinstance(tick, EventsEmitted):
        run = state.runs.get(tick.run_id)
        if run is not None:
            for envelope in tick.envelopes:
                _emit(fx, run, envelope, tick.step)
    elif isinstance(tick, CallFinished):
        _call_finished(fx, tick)
    elif isinstance(tick, ActorStarted):
        pool = state.pools[tick.step]
        pool.starting.discard(tick.actor)
        pool.actors[tick.actor] = ActorSlot(tick.actor)
        fx.dirty[tick.step] = pool
    elif isinstance(tick, ActorStartFailed):
        _actor_start_failed(fx, tick)
    elif isinstance(tick, TimeoutReached):
        run = state.runs.get(tick.run_id)
        if run is not None:
            active = tuple(sorted(name for name, n in run.active.items() if n > 0))
            info = "Currently active steps: " + ", ".join(active) if active else "No steps active"
            end_run(
                fx,
                run,
                Outcome.TIMED_OUT,
                message=f"Operation timed out after {run.timeout} seconds. {info}",
                active_steps=active,
            )
    elif isinstance(tick, CancelRequested):
        run = state.runs.get(tick.run_id)
        if run is not None:
            end_run(fx, run, Outcome.CANCELLED, message="Workflow run cancelled by user")
    elif isinstance(tick, WaiterTimedOut):
        run = state.runs.get(tick.run_id)
        if run is not None:
            waiter_timed_out(fx, run, tick)
    elif isinstance(tick, RequirementsChecked):
        run = state.runs.get(tick.run_id)
        if run is not None:
            requirements_checked(fx, run, tick)
    elif isinstance(tick, RetryDue):
        run = state.runs.get(tick.run_id)
        entry = run.delayed.pop(tick.number, None) if run is not None else None
        if run is not None and entry is not None:
            name, item = entry
            uncount(fx, run, name)
            enqueue_item(fx, run, name, item)
    elif isinstance(tick, CallOverdue):
        call_overdue(fx, tick)
    elif isinstance(tick, GrowthDue):
        held = state.pools.get(tick.step)
        if held is not None and held.busy is None:
            held.growth = "free"
            fx.dirty[tick.step] = held
    elif isinstance(tick, CallWaiting):
        seen = state.pools.get(tick.step)
        if seen is not None and seen.busy is None:  # a call's own figures, once back, say more
            seen.seen_waiting = True
            fx.dirty[tick.step] = seen
    elif isinstance(tick, ActorUnresponsive):
        pool = state.pools[tick.step]
        if tick.actor in pool.actors:
            retire(fx, pool, tick.actor, "it did not stop the work of a run that ended", stopped="ended")
    for run in fx.touched.values():
        if run.ending and run.run_id in state.runs:
            for join, item in finish_streams(run, state.routing.joins_of):
                enqueue_item(fx, run, join, item)
        _check_idle(fx, run)
    for pool in fx.dirty.values():
        fx.commands.extend(feed(state, pool))
    return fx.commands


def _run_started(fx: Effects, tick: RunStarted) -> None:
    run = Run(tick.run_id, tick.ctx_id, tick.timeout, internal=tick.internal)
    fx.state.runs[tick.run_id] = run
    _warm(fx)
    if tick.timeout is not None:
        fx.commands.append(ArmTimeout(tick.run_id, tick.now + tick.timeout))
    _emit(fx, run, tick.start, None)
    fx.touched[run.run_id] = run


def _run_resumed(fx: Effects, tick: RunResumed) -> None:
    """A run from a snapshot: its queued and interrupted events go back to their steps, its waits and its
    question for the caller stand again."""
    run = Run(tick.run_id, tick.ctx_id, tick.timeout)
    fx.state.runs[tick.run_id] = run
    fx.touched[run.run_id] = run
    _warm(fx)
    if tick.timeout is not None:
        fx.commands.append(ArmTimeout(tick.run_id, tick.now + tick.timeout))
    pending = tick.pending
    unknown = sorted({name for name, _ in (*pending.items, *pending.waits) if name not in fx.state.pools})
    if unknown:
        message = f"The snapshot has work for steps this workflow does not have: {', '.join(unknown)}"
        end_run(fx, run, Outcome.FAILED, message=message)
        return
    run.awaiting_input = pending.awaiting_input
    for name, item in pending.items:
        if item.members is None:
            enqueue(fx, run, name, item.envelope, item.resolved)
        else:  # a join's or a several-parameter step's invocation, with its events
            count(run, item.envelope.scope, +1)
            enqueue_item(fx, run, name, item)
    for name, waiter in pending.waits:
        pause(fx, run, name, waiter)
    # These events were routed before the snapshot: a step that runs again and emits them again is routed once.
    triggers = (*(item.envelope for _, item in pending.items), *(waiter.trigger for _, waiter in pending.waits))
    run.seen.update(envelope.event_id for envelope in triggers if envelope.event_id)


def _warm(fx: Effects) -> None:
    """Every pool up to its warm size (one actor unless ``@step(warm=...)`` says more), started in parallel before the
    events that need them, instead of one actor start per hop."""
    for pool in fx.state.pools.values():
        for _ in range(min(pool.route.warm, pool.route.num_workers) - pool.size):
            fx.commands.append(start_actor(pool))


def _emit(fx: Effects, run: Run, envelope: Envelope, source: str | None) -> None:
    if run.run_id not in fx.state.runs:
        return  # the run ended earlier in this tick: later events of it are moot
    if envelope.event_id:
        if envelope.event_id in run.seen:
            return  # emitted again by a step body that ran again (its actor died): routed once already
        run.seen.add(envelope.event_id)
    kind = envelope.kind
    if kind is Kind.STREAM:
        fx.commands.append(Publish(run.run_id, envelope))
        return
    if kind is Kind.STOP:
        end_run(fx, run, Outcome.DONE, payload=envelope, step_name=source)
        return
    if kind is Kind.INPUT_REQUIRED:
        fx.commands.append(Publish(run.run_id, envelope))
        run.awaiting_input = True
    targets = fx.state.routing.targets(envelope)
    skipped: tuple[str, ...] = ()
    if run.waits:
        skipped, awaited = resume_waits(fx, run, envelope, targets)
        if awaited and not skipped and envelope.target is None and not targets:
            if run.internal:  # awaited by a wait whose requirements it does not meet, and no step takes it: ignored
                fx.commands.append(ignored(run, envelope, idle_now=not (run.inflight or run.checking)))
            return
    if envelope.target is not None and (
        envelope.target not in fx.state.pools or not fx.state.routing.accepts(envelope.target, envelope.type_keys)
    ):
        end_run(
            fx,
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
        end_run(
            fx,
            run,
            Outcome.FAILED,
            step_name=source,
            message=f"Event {envelope.type_name} sent by {where} is accepted by no step",
        )
        return
    for name in targets:
        enqueue(fx, run, name, envelope)


def _call_finished(fx: Effects, tick: CallFinished) -> None:
    state = fx.state
    call = state.calls.pop(tick.call_id)
    pool = state.pools[call.step]
    slot = pool.actors.get(call.actor)
    if slot is not None:
        slot.inflight -= 1
        slot.alone = False  # its call of an event delivered again is over (it ran alone there)
        slot.runs.subtract({item.run_id for item in call.items})
        for run_id in [run_id for run_id, n in slot.runs.items() if n <= 0]:
            del slot.runs[run_id]
    fx.dirty[call.step] = pool
    for name, actor in call.loans:
        lender = state.pools[name]
        lent = lender.actors.get(actor)
        if lent is not None:
            lent.lent = False
        fx.dirty[name] = lender
    if tick.lost is not None:
        call_lost(fx, call, tick.lost)
        return
    if tick.results and tick.elapsed > 0:
        sample = tick.elapsed / len(tick.results)
        pool.per_event = sample if pool.per_event is None else 0.7 * pool.per_event + 0.3 * sample
        if tick.cpu is not None:
            busy = min(tick.cpu / tick.elapsed, 1.0)
            pool.busy = busy if pool.busy is None else 0.7 * pool.busy + 0.3 * busy
    if tick.retire is not None and slot is not None:
        retire(fx, pool, call.actor, tick.retire)
    again: list[WorkItem] = []
    for item, done in zip(call.items, tick.results, strict=True):
        run = state.runs.get(item.run_id)
        if run is None:
            continue
        uncount(fx, run, call.step)
        if done.requeue:  # not run: its actor is retiring
            forget_delivery(run, call.step, item)
            again.append(item)
            continue
        run.last_step = name = done.step or call.step
        if run.internal:
            fx.commands.append(step_state(run.run_id, name, "not_running", str(call.actor), item, done.output))
        if pool.route.collects and not done.holding:
            buffers_empty(run, call.step, item)
        if done.retry is not None:
            delay(fx, run, name, done.retry, done.retry_after)
        elif done.failure is not None:
            _handle_failure(fx, run, done.failure)
        elif done.waiting is not None:
            pause(fx, run, name, done.waiting)
        elif done.fan_out is not None:
            for member in fan_out(run, name, item.envelope.scope, done.fan_out):
                _emit(fx, run, member, name)
        elif done.output is not None:
            _emit(fx, run, done.output, name)
        if done.retry is None and done.waiting is None:
            count(run, item.envelope.scope, -1)  # the item is over: what it led to is queued already
    requeue_front(fx, call.step, again)


def _handle_failure(fx: Effects, run: Run, failure: Failure) -> None:
    handler = fx.state.routing.catch_handler(failure.step)
    if handler is not None and failure.failed_event is not None:
        if run.recoveries[handler.name] < handler.max_recoveries:
            run.recoveries[handler.name] += 1
            enqueue(fx, run, handler.name, failure.failed_event)
            return
    end_run(
        fx,
        run,
        Outcome.FAILED,
        payload=failure.error,
        message=failure.message,
        step_name=failure.step,
        attempts=(failure.attempts, failure.elapsed),
    )


def _actor_start_failed(fx: Effects, tick: ActorStartFailed) -> None:
    pool = fx.state.pools[tick.step]
    pool.starting.discard(tick.actor)
    if pool.actors:
        return  # the pool still has actors: its events keep flowing
    for item in list(pool.queue):
        run = fx.state.runs.get(item.run_id)
        if run is not None:
            end_run(
                fx,
                run,
                Outcome.FAILED,
                payload=tick.error,
                step_name=tick.step,
                message=f"Step {tick.step!r} could not start an actor: {tick.message}",
            )
    pool.queue.clear()
    pool.waiting = 0


def _check_idle(fx: Effects, run: Run) -> None:
    if run.run_id not in fx.state.runs:
        return
    if run.inflight or run.checking:
        run.idle_told = False
        return
    if run.awaiting_input or run.waits:  # idle: waiting for an event from outside
        told = idle(run) if run.internal else None
        if told is not None:
            fx.commands.append(told)
        return
    last = f" (the last step to run was {run.last_step!r})" if run.last_step else ""
    end_run(
        fx,
        run,
        Outcome.STUCK,
        step_name=run.last_step,
        message=f"Workflow is idle: no step is running and no event is waiting, but no StopEvent was returned{last}",
        collecting=tuple(sorted(run.homes.items())),
    )
