"""Supervision in the routing core: a dead actor leaves its pool and its work is delivered again, exactly once;
poison events, step timeouts, retries off the actors, and runs that end while their steps are blocked."""

from __future__ import annotations

from dataclasses import replace

from driving import calls, env, started, state_of

from rayflow.core.commands import (
    ArmRetry,
    CallStep,
    ConfirmStopped,
    EndRun,
    Outcome,
    Publish,
    StartActor,
    StopActor,
    WatchCall,
    WorkItem,
)
from rayflow.core.envelope import Kind, derive_id
from rayflow.core.reducer import reduce
from rayflow.core.routing import StepRoute
from rayflow.core.state import DispatcherState
from rayflow.core.ticks import (
    ActorStarted,
    ActorUnresponsive,
    CallFinished,
    CallOverdue,
    CancelRequested,
    EventsEmitted,
    ItemDone,
    RetryDue,
    RunStarted,
)


def _fan_out(workers: int = 2, *, timeout: float | None = None, collects: bool = False) -> DispatcherState:
    """start -> X (to ``w``, a pool of ``workers``); the start step's call stays in flight (it emits the Xs)."""
    state = state_of(
        StepRoute("start", frozenset({"Start"})),
        StepRoute("w", frozenset({"X"}), num_workers=workers, timeout=timeout, collects=collects),
        max_batch=4,
    )
    calls(started(state))
    return state


def _xs(n: int, parent: bytes = b"p") -> list:
    return [replace(env("X"), payload=str(i).encode(), event_id=derive_id(parent, "start", 0, 0, i)) for i in range(n)]


def _start_all(state: DispatcherState, commands: list) -> list:
    """Answer every StartActor among ``commands`` with ActorStarted; the commands that follow, with ``commands``."""
    out = list(commands)
    for c in commands:
        if isinstance(c, StartActor):
            out += _start_all(state, reduce(state, ActorStarted(c.step, c.actor)))
    return out


def _payloads(call: CallStep) -> list[bytes]:
    return [i.envelope.payload for i in call.items]


def test_a_dead_actor_leaves_its_pool_and_its_items_go_to_a_live_actor():
    state = _fan_out()
    out = _start_all(state, reduce(state, EventsEmitted("r1", "start", _xs(2))))
    first, second = calls(out)
    lost = reduce(state, CallFinished(first.call_id, lost="the step actor died"))
    assert StopActor("w", first.actor, "the step actor died") in lost
    assert first.actor not in state.pools["w"].actors
    out = _start_all(state, lost)  # the pool grows back to its size
    (again,) = calls(out)
    assert again.actor not in (first.actor, second.actor)
    assert again.items[0].deliveries == 1 and _payloads(again) == _payloads(first)
    assert not any(isinstance(c, EndRun) for c in out)


def test_a_lost_call_does_not_fail_the_other_runs_it_carried():
    state = _fan_out(workers=1)
    reduce(state, RunStarted("r2", "c2", env("Start"), None, now=0.0))
    (call,) = calls(reduce(state, EventsEmitted("r1", "start", _xs(1))))
    items = [*call.items, WorkItem("r2", "c2", env("X"))]
    state.calls[call.call_id].items.append(items[1])  # one call carries items of two runs
    out = _start_all(state, reduce(state, CallFinished(call.call_id, lost="the step actor died")))
    assert not any(isinstance(c, EndRun) for c in out)
    delivered = [i.run_id for c in calls(out) for i in c.items]
    assert sorted(delivered) == ["r1"] or sorted(delivered) == ["r1", "r2"]  # r2's start may still queue for start
    assert state.runs["r1"].inflight >= 1 and "r2" in state.runs


def test_events_emitted_again_by_a_step_body_run_twice_are_routed_once():
    state = _fan_out()
    xs = _xs(3)
    first = reduce(state, EventsEmitted("r1", "start", xs))
    again = reduce(state, EventsEmitted("r1", "start", xs))  # the same ids: a re-run body emitting them again
    assert sum(len(c.items) for c in calls(first)) + state.pools["w"].waiting == 3
    assert calls(again) == [] and state.pools["w"].waiting == len(xs) - sum(len(c.items) for c in calls(first))
    streamed = replace(env("S", kind=Kind.STREAM), event_id=b"s1")
    out = reduce(state, EventsEmitted("r1", "w", [streamed, streamed]))
    assert len([c for c in out if isinstance(c, Publish)]) == 1


def test_an_event_that_kills_its_actor_every_time_fails_its_run_naming_step_and_event():
    state = _fan_out(workers=1)
    reduce(state, RunStarted("r2", "c2", env("Start"), None, now=0.0))
    (call,) = calls(_start_all(state, reduce(state, EventsEmitted("r1", "start", _xs(1)))))
    ends = []
    for _ in range(state.max_deliveries):
        out = _start_all(state, reduce(state, CallFinished(call.call_id, lost="the step actor died")))
        ends += [c for c in out if isinstance(c, EndRun)]
        if ends:
            break
        (call,) = calls(out)
    (end,) = ends
    assert end.run_id == "r1" and end.outcome is Outcome.FAILED and end.step == "w"
    assert f"lost its actor {state.max_deliveries} times" in end.message and "X event" in end.message
    assert "r2" in state.runs  # the other run goes on


def test_a_redelivered_event_travels_alone_so_a_poison_event_does_not_take_others_down():
    state = _fan_out(workers=1)
    (call,) = calls(_start_all(state, reduce(state, EventsEmitted("r1", "start", _xs(3)))))
    assert len(call.items) == 3
    out = _start_all(state, reduce(state, CallFinished(call.call_id, lost="died")))
    (alone,) = calls(out)
    assert len(alone.items) == 1


def test_an_event_delivered_again_runs_on_an_actor_with_no_other_runs_call():
    state = _fan_out(workers=1)
    state.pools["w"].busy = 0.1  # a waiting step: one actor runs the calls of several runs at once
    reduce(state, RunStarted("r2", "c2", env("Start"), None, now=0.0))
    (poison,) = calls(_start_all(state, reduce(state, EventsEmitted("r1", "start", _xs(1)))))
    out = _start_all(state, reduce(state, CallFinished(poison.call_id, lost="died")))
    (again,) = calls(out)  # the new actor takes the event again, alone
    assert again.items[0].deliveries == 1 and state.pools["w"].actors[again.actor].alone
    # the other run's events wait: the actor running the event delivered again takes no other call
    assert calls(reduce(state, EventsEmitted("r2", "start", _xs(2, parent=b"q")))) == []
    # a loss now is that event's alone; once its call is over, the other run's events go on
    out = reduce(state, CallFinished(again.call_id, [ItemDone("r1")]))
    assert [item.run_id for call in calls(out) for item in call.items] == ["r2", "r2"]


def test_a_busy_actor_drains_for_an_event_delivered_again():
    state = _fan_out(workers=2)
    state.pools["w"].busy = 0.1
    reduce(state, RunStarted("r2", "c2", env("Start"), None, now=0.0))
    out = _start_all(state, reduce(state, EventsEmitted("r1", "start", _xs(1))))
    state.pools["w"].next_actor = 2
    reduce(state, ActorStarted("w", 1))  # a second actor, idle: r2's event goes there
    out += reduce(state, EventsEmitted("r2", "start", _xs(1, parent=b"q")))
    by_run = {c.items[0].run_id: c for c in calls(out)}
    assert by_run["r1"].actor != by_run["r2"].actor
    lost = reduce(state, CallFinished(by_run["r1"].call_id, lost="died"))  # its replacement is still starting
    assert calls(lost) == []
    (left,) = state.pools["w"].actors.values()
    assert left.draining  # r2's call runs on; the actor takes no new call, so it will be free for the event
    assert calls(reduce(state, EventsEmitted("r2", "start", _xs(1, parent=b"z")))) == []
    (again,) = calls(reduce(state, CallFinished(by_run["r2"].call_id, [ItemDone("r2")])))
    assert again.actor == left.id and again.items[0].run_id == "r1" and left.alone and not left.draining


def test_a_collecting_steps_home_dies_and_its_delivered_events_rebuild_the_buffers_elsewhere():
    state = _fan_out(workers=2, collects=True)
    (first,) = calls(_start_all(state, reduce(state, EventsEmitted("r1", "start", _xs(6)))))
    home = first.actor
    assert len(first.items) == 4  # a full batch: a collecting step's events of one run are not spread
    assert state.pools["w"].actors[home].queue  # the rest wait at the run's home: one home per run
    # the first events were collected (buffers held); the next call is lost with the actor
    (second,) = calls(reduce(state, CallFinished(first.call_id, [ItemDone("r1", holding=True)] * 4, elapsed=0.001)))
    assert second.actor == home
    out = _start_all(state, reduce(state, CallFinished(second.call_id, lost="died")))
    (call,) = calls(out)
    replayed = _payloads(call)
    while len(replayed) < 6:  # the replay takes more than one call: events lost with the actor go alone
        done = [ItemDone("r1", holding=True)] * len(call.items)
        (call,) = calls(reduce(state, CallFinished(call.call_id, done, 0.001)))
        replayed += _payloads(call)
    assert replayed == [b"0", b"1", b"2", b"3", b"4", b"5"]  # everything the buffers were built from, in order
    assert state.runs["r1"].homes["w"] != home


def test_a_collect_log_is_dropped_once_the_buffers_are_empty():
    state = _fan_out(workers=1, collects=True)
    (call,) = calls(_start_all(state, reduce(state, EventsEmitted("r1", "start", _xs(2)))))
    reduce(state, CallFinished(call.call_id, [ItemDone("r1", holding=True), ItemDone("r1", holding=False)], 0.001))
    assert not state.runs["r1"].delivered["w"]


def test_a_step_with_a_timeout_gets_one_event_a_call_and_a_deadline():
    state = _fan_out(workers=1, timeout=1.5)
    out = _start_all(state, reduce(state, EventsEmitted("r1", "start", _xs(3))))
    (call,) = calls(out)
    assert len(call.items) == 1
    (watch,) = [c for c in out if isinstance(c, WatchCall)]
    assert watch.call_id == call.call_id and watch.after == 1.5 + state.grace_s


def test_an_overdue_call_stops_its_actor_and_its_event_comes_back_timed_out():
    state = _fan_out(workers=1, timeout=1.5)
    (call,) = calls(_start_all(state, reduce(state, EventsEmitted("r1", "start", _xs(1)))))
    out = reduce(state, CallOverdue(call.call_id))
    (stop,) = [c for c in out if isinstance(c, StopActor)]
    assert stop.actor == call.actor and "timeout of 1.5 s" in stop.reason
    _start_all(state, out)  # its replacement starts at once
    (again,) = calls(reduce(state, CallFinished(call.call_id, lost="killed")))
    assert again.items[0].timed_out == 1.5 and again.items[0].deliveries == 0


def test_a_retry_waits_off_the_actor_and_keeps_the_run_alive():
    state = _fan_out(workers=1)
    (call,) = calls(_start_all(state, reduce(state, EventsEmitted("r1", "start", _xs(1)))))
    retry = replace(call.items[0])
    out = reduce(state, CallFinished(call.call_id, [ItemDone("r1", retry=retry, retry_after=0.5)], 0.001))
    (arm,) = [c for c in out if isinstance(c, ArmRetry)]
    assert arm.after == 0.5 and not calls(out) and not any(isinstance(c, EndRun) for c in out)  # not idle, not stuck
    (again,) = calls(reduce(state, RetryDue("r1", arm.number)))
    assert again.items[0] is retry


def test_a_run_that_ends_asks_its_busy_actors_to_stop_and_replaces_one_that_does_not_answer():
    state = _fan_out(workers=1)
    (call,) = calls(_start_all(state, reduce(state, EventsEmitted("r1", "start", _xs(1)))))
    out = reduce(state, CancelRequested("r1"))
    (confirm,) = [c for c in out if isinstance(c, ConfirmStopped)]
    assert confirm.actors == (("start", 0), ("w", call.actor))  # the start step's call is in flight too
    out = reduce(state, ActorUnresponsive("w", call.actor))
    assert any(isinstance(c, StopActor) for c in out)
    assert state.calls[call.call_id].stopped == "ended"


def test_a_retiring_actor_hands_back_the_items_it_did_not_run():
    state = _fan_out(workers=1)
    (call,) = calls(_start_all(state, reduce(state, EventsEmitted("r1", "start", _xs(3)))))
    results = [ItemDone("r1"), ItemDone("r1", requeue=True), ItemDone("r1", requeue=True)]
    out = _start_all(state, reduce(state, CallFinished(call.call_id, results, 0.001, retire="a thread is blocked")))
    assert any(isinstance(c, StopActor) for c in out)
    (again,) = calls(out)
    assert _payloads(again) == _payloads(call)[1:] and again.items[0].deliveries == 0
