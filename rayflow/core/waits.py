"""Paused steps in the reducer: ``ctx.wait_for_event`` ends an invocation with a waiter, and the event that answers it
(its type, and field values checked by a step actor when the wait has requirements) or its timeout runs the
invocation again from the start. Part of the reducer; plain data, no I/O."""

from __future__ import annotations

from rayflow.core.commands import (
    ArmWaiterTimeout,
    CheckRequirements,
    Publish,
)
from rayflow.core.effects import Effects, enqueue
from rayflow.core.envelope import Envelope, Requirements, Waiter
from rayflow.core.routing import delivers
from rayflow.core.state import DispatcherState, Run
from rayflow.core.ticks import (
    RequirementsChecked,
    WaiterTimedOut,
)


def pause(fx: Effects, run: Run, name: str, waiter: Waiter) -> None:
    """A step paused in ``wait_for_event``: keep its trigger until the event arrives (or the wait times out)."""
    if waiter.announce is not None and not any(s == name and w.waiter_id == waiter.waiter_id for s, w, _ in run.waits):
        fx.commands.append(Publish(run.run_id, waiter.announce))
    number = run.next_wait
    run.next_wait += 1
    run.waits.append((name, waiter, number))
    if waiter.timeout is not None:
        fx.commands.append(ArmWaiterTimeout(run.run_id, number, waiter.timeout))


def resume_waits(fx: Effects, run: Run, envelope: Envelope, targets: tuple[str, ...]) -> tuple[tuple[str, ...], bool]:
    """Rerun every paused invocation whose wait ``envelope`` answers, and have a step actor check the waits with
    requirements (CheckRequirements). Returns the steps the envelope is not delivered to now (rerun, or held until
    the check answers), and whether any wait was for an event of its type at all."""
    routing = fx.state.routing
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
        enqueue(fx, run, name, waiter.trigger, (*waiter.resolved, (waiter.waiter_id, envelope)), new=False)
    run.waits = kept
    held = tuple(name for name in checks if name in targets and name not in woken)
    if checks:
        name = next(iter(checks))
        actor = checker(fx.state, name)
        if actor is not None:
            every = tuple(check for found in checks.values() for check in found)
            fx.commands.append(CheckRequirements(run.run_id, actor[0], actor[1], envelope, every, held))
            run.checking += 1
        else:
            held = ()  # no actor to open the event: no requirement is met
    return (*dict.fromkeys(woken), *held), awaited


def checker(state: DispatcherState, preferred: str) -> tuple[str, int] | None:
    """A started actor to open an event with: one of ``preferred``'s pool, else any (every step actor holds the
    workflow's event classes)."""
    for name in (preferred, *state.pools):
        actors = state.pools[name].actors
        if actors:
            return name, min(actors)
    return None


def requirements_checked(fx: Effects, run: Run, tick: RequirementsChecked) -> None:
    """Rerun the invocations whose waits the event met; deliver it to the held steps no met wait took."""
    run.checking -= 1
    woken: set[str] = set()
    kept = []
    for wait in run.waits:
        name, waiter, number = wait
        if number in tick.matched:
            woken.add(name)
            enqueue(fx, run, name, waiter.trigger, (*waiter.resolved, (waiter.waiter_id, tick.envelope)), new=False)
        else:
            kept.append(wait)
    run.waits = kept
    for name in tick.held:
        if name not in woken:
            enqueue(fx, run, name, tick.envelope)
    fx.touched[run.run_id] = run


def waiter_timed_out(fx: Effects, run: Run, tick: WaiterTimedOut) -> None:
    kept = []
    for wait in run.waits:
        name, waiter, number = wait
        if number == tick.wait:
            enqueue(fx, run, name, waiter.trigger, (*waiter.resolved, (waiter.waiter_id, None)), new=False)
        else:
            kept.append(wait)
    run.waits = kept
    fx.touched[run.run_id] = run
