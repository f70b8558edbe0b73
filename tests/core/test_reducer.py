"""The routing core driven by plain ticks: no Ray, no event loop, a fixed clock. Routing, pools, failures."""

from __future__ import annotations

from driving import calls, ends, env, started, state_of

from rayflow.core.commands import (
    ArmGrowth,
    ArmTimeout,
    EndRun,
    Outcome,
    Publish,
    StartActor,
)
from rayflow.core.envelope import Failure, Kind
from rayflow.core.reducer import reduce
from rayflow.core.routing import StepRoute
from rayflow.core.ticks import (
    ActorStarted,
    ActorStartFailed,
    CallFinished,
    CallWaiting,
    CancelRequested,
    EventsEmitted,
    GrowthDue,
    ItemDone,
    RunStarted,
    TimeoutReached,
)


def test_first_run_warms_one_actor_per_step_then_routes_the_start_event():
    state = state_of(StepRoute("a", frozenset({"Start"})), StepRoute("b", frozenset({"X"})))
    commands = reduce(state, RunStarted("r1", "c1", env("Start"), None, now=0.0))
    assert sorted((c.step, c.actor) for c in commands if isinstance(c, StartActor)) == [("a", 0), ("b", 0)]
    assert not calls(commands)  # no actor is ready yet: the event waits
    out = reduce(state, ActorStarted("a", 0))
    (call,) = calls(out)
    assert call.step == "a" and [i.envelope.type_name for i in call.items] == ["Start"]


def test_event_goes_to_every_step_accepting_its_exact_type():
    state = state_of(
        StepRoute("start", frozenset({"Start"})),
        StepRoute("b1", frozenset({"X"})),
        StepRoute("b2", frozenset({"X"})),
        StepRoute("sub", frozenset({"Base"})),
    )
    (call,) = calls(started(state))
    out = reduce(state, CallFinished(call.call_id, [ItemDone("r1", output=env("X", bases=("Base",)))]))
    assert sorted(c.step for c in calls(out)) == ["b1", "b2"]


def test_subclasses_only_for_steps_that_ask():
    state = state_of(
        StepRoute("start", frozenset({"Start"})),
        StepRoute("sub", frozenset({"Base"}), accept_subclasses=True),
    )
    (call,) = calls(started(state))
    out = reduce(state, CallFinished(call.call_id, [ItemDone("r1", output=env("X", bases=("Base",)))]))
    assert [c.step for c in calls(out)] == ["sub"]


def test_stop_event_ends_the_run_and_later_events_of_it_are_dropped():
    state = state_of(StepRoute("start", frozenset({"Start"})), StepRoute("b", frozenset({"X"})))
    (call,) = calls(started(state))
    stop = env("Stop", kind=Kind.STOP)
    out = reduce(state, EventsEmitted("r1", "start", [stop, env("X")]))
    (end,) = [c for c in out if isinstance(c, EndRun)]
    assert end.outcome is Outcome.DONE and end.payload is stop
    assert not calls(out) and "r1" not in state.runs
    assert reduce(state, CallFinished(call.call_id, [ItemDone("r1")])) == []


def test_event_no_step_accepts_fails_the_run_naming_the_type_and_step():
    state = state_of(StepRoute("start", frozenset({"Start"})))
    (call,) = calls(started(state))
    (end,) = reduce(state, CallFinished(call.call_id, [ItemDone("r1", output=env("Orphan"))]))
    assert end.outcome is Outcome.FAILED
    assert end.message == "Event Orphan sent by step 'start' is accepted by no step"


def test_idle_run_without_stop_event_fails_instead_of_hanging():
    state = state_of(StepRoute("start", frozenset({"Start"})))
    (call,) = calls(started(state))
    (end,) = reduce(state, CallFinished(call.call_id, [ItemDone("r1")]))
    assert end.outcome is Outcome.STUCK and "no StopEvent" in end.message and end.step == "start"


def test_run_waiting_for_human_input_is_not_idle():
    state = state_of(StepRoute("start", frozenset({"Start"})))
    (call,) = calls(started(state))
    ask = env("Ask", kind=Kind.INPUT_REQUIRED, bases=("InputRequiredEvent",))
    out = reduce(state, CallFinished(call.call_id, [ItemDone("r1", output=ask)]))
    assert [type(c) for c in out] == [Publish]
    assert "r1" in state.runs


def test_stream_items_are_published_in_order():
    state = state_of(StepRoute("start", frozenset({"Start"})))
    started(state)
    items = [env("P1", kind=Kind.STREAM), env("P2", kind=Kind.STREAM)]
    out = reduce(state, EventsEmitted("r1", "start", items))
    assert [c.envelope.type_name for c in out if isinstance(c, Publish)] == ["P1", "P2"]


def test_timeout_names_the_active_steps():
    state = state_of(StepRoute("start", frozenset({"Start"})))
    commands = started(state, timeout=2.0)
    (arm,) = [c for c in commands if isinstance(c, ArmTimeout)]
    assert arm.at == 102.0
    (end,) = ends(reduce(state, TimeoutReached("r1", now=102.0)))
    assert end.outcome is Outcome.TIMED_OUT
    assert end.message == "Operation timed out after 2.0 seconds. Currently active steps: start"
    assert end.active_steps == ("start",)


def test_cancel_ends_the_run():
    state = state_of(StepRoute("start", frozenset({"Start"})))
    started(state)
    (end,) = ends(reduce(state, CancelRequested("r1")))
    assert end.outcome is Outcome.CANCELLED


def test_send_event_to_a_named_step_only():
    state = state_of(
        StepRoute("start", frozenset({"Start"})),
        StepRoute("b1", frozenset({"X"})),
        StepRoute("b2", frozenset({"X"})),
    )
    started(state)
    out = reduce(state, EventsEmitted("r1", "start", [env("X", target="b2")]))
    assert [c.step for c in calls(out)] == ["b2"]
    out = reduce(state, EventsEmitted("r1", "start", [env("X", target="nope")]))
    assert [c.outcome for c in ends(out)] == [Outcome.FAILED]


def test_pool_grows_toward_num_workers_only_while_events_wait():
    state = state_of(
        StepRoute("start", frozenset({"Start"})), StepRoute("w", frozenset({"X"}), num_workers=4), max_batch=1
    )
    started(state)
    out = reduce(state, EventsEmitted("r1", "start", [env("X"), env("X")]))
    assert len(calls(out)) == 1  # one ready actor, one call in flight
    assert [(c.step, c.actor) for c in out if isinstance(c, StartActor)] == [("w", 1)]  # one more event waits
    out = reduce(state, EventsEmitted("r1", "start", [env("X") for _ in range(10)]))
    assert [(c.step, c.actor) for c in out if isinstance(c, StartActor)] == [("w", 2), ("w", 3)]  # at num_workers
    for actor in (1, 2, 3):
        assert len(calls(reduce(state, ActorStarted("w", actor)))) == 1
    assert state.pools["w"].size == 4
    assert not [c for c in reduce(state, EventsEmitted("r1", "start", [env("X")])) if isinstance(c, StartActor)]


def test_every_actor_of_a_full_pool_gets_a_call_before_one_gets_a_second():
    state = state_of(
        StepRoute("start", frozenset({"Start"})), StepRoute("w", frozenset({"X"}), num_workers=3), pipeline=1
    )
    started(state)
    reduce(state, ActorStarted("w", 1))
    reduce(state, ActorStarted("w", 2))
    out = reduce(state, EventsEmitted("r1", "start", [env("X") for _ in range(3)]))
    assert sorted(c.actor for c in calls(out)) == [0, 1, 2]  # one event each: three calls run at once
    out = reduce(state, EventsEmitted("r1", "start", [env("X") for _ in range(3)]))
    assert sorted(c.actor for c in calls(out)) == [0, 1, 2]  # then one more each, queued behind the first


def test_one_runs_waiting_events_never_hold_up_another_runs():
    state = state_of(StepRoute("start", frozenset({"Start"})), StepRoute("w", frozenset({"X"}), num_workers=1))
    started(state, "r1")
    started(state, "r2")
    state.pools["w"].per_event = 1.0  # a slow step: one event per call
    (first,) = calls(reduce(state, EventsEmitted("r1", "start", [env("X") for _ in range(5)])))
    # r1 has its one call on the actor and four events waiting; r2's events go beside it, not behind r1's
    (beside,) = calls(reduce(state, EventsEmitted("r2", "start", [env("X") for _ in range(5)])))
    assert (first.actor, beside.actor) == (0, 0)
    assert [i.run_id for i in first.items] == ["r1"] and [i.run_id for i in beside.items] == ["r2"]
    # each run's next call follows its own: r1's when r1's call ends, whatever waits of r2
    (after,) = calls(reduce(state, CallFinished(first.call_id, [ItemDone("r1")], elapsed=1.0)))
    assert [i.run_id for i in after.items] == ["r1"]


def test_no_call_is_queued_behind_a_busy_actor_while_another_actor_starts():
    state = state_of(
        StepRoute("start", frozenset({"Start"})), StepRoute("w", frozenset({"X"}), num_workers=2), pipeline=1
    )
    started(state)
    out = reduce(state, EventsEmitted("r1", "start", [env("X"), env("X")]))
    assert [c.actor for c in calls(out)] == [0] and [c.actor for c in out if isinstance(c, StartActor)] == [1]
    assert calls(reduce(state, EventsEmitted("r1", "start", []))) == []  # actor 1 starts: the event waits for it
    assert [c.actor for c in calls(reduce(state, ActorStarted("w", 1)))] == [1]


def test_batches_carry_small_events_together_and_slow_events_one_by_one():
    state = state_of(StepRoute("start", frozenset({"Start"})), StepRoute("w", frozenset({"X"}), num_workers=2))
    started(state)
    (first,) = calls(reduce(state, EventsEmitted("r1", "start", [env("X")])))
    reduce(state, ActorStarted("w", 1))
    out = reduce(state, EventsEmitted("r1", "start", [env("X") for _ in range(100)]))
    assert [(c.actor, len(c.items)) for c in calls(out)] == [(1, 8)]  # speed unknown yet: a small batch
    # a fast step (1 ms an event): the next batches are each actor's even share of what waits
    out = reduce(state, CallFinished(first.call_id, [ItemDone("r1")], elapsed=0.001))
    assert [(c.actor, len(c.items)) for c in calls(out)] == [(0, 46)]  # an even share: 92 wait, 2 actors
    (call,) = calls(out)
    reduce(state, EventsEmitted("r1", "start", [env("X") for _ in range(300)]))
    out = reduce(state, CallFinished(call.call_id, [ItemDone("r1")] * 46, elapsed=0.046))
    assert [(c.actor, len(c.items)) for c in calls(out)] == [(0, 100)]  # 0.1 s of work at 1 ms an event
    # a slow step (1 s an event) gets one event per call, so the pool spreads them
    (call,) = calls(out)
    out = reduce(state, CallFinished(call.call_id, [ItemDone("r1")] * 100, elapsed=100_000.0))
    assert [(c.actor, len(c.items)) for c in calls(out)] == [(0, 1)]


def test_collecting_step_keeps_each_run_on_one_actor():
    collect = StepRoute("c", frozenset({"R"}), num_workers=2, collects=True)
    state = state_of(StepRoute("start", frozenset({"Start"})), collect, max_batch=1, pipeline=0)
    started(state, "r1")
    reduce(state, RunStarted("r2", "c2", env("Start"), None, now=0.0))
    reduce(state, ActorStarted("c", 1))
    seen: dict[str, set[int]] = {"r1": set(), "r2": set()}
    pending = []
    for run in ("r1", "r2", "r1", "r2", "r1"):
        pending += calls(reduce(state, EventsEmitted(run, "start", [env("R")])))
    while pending:
        call = pending.pop(0)
        for item in call.items:
            seen[item.run_id].add(call.actor)
        pending += calls(reduce(state, CallFinished(call.call_id, [ItemDone(i.run_id) for i in call.items])))
    assert all(len(actors) == 1 for actors in seen.values())


def test_failure_goes_to_catch_error_handler_within_its_budget():
    handler = StepRoute("recover", frozenset({"StepFailedEvent"}), is_catch_error=True, catches=("start",))
    state = state_of(StepRoute("start", frozenset({"Start"})), handler)
    (call,) = calls(started(state))
    failed = env("StepFailedEvent")
    failure = Failure("start", b"err", "ValueError: boom", failed)
    out = reduce(state, CallFinished(call.call_id, [ItemDone("r1", failure=failure)]))
    (to_handler,) = calls(out)
    assert to_handler.step == "recover"
    # a second failure of the same lineage exceeds max_recoveries=1 and fails the run
    out = reduce(state, CallFinished(to_handler.call_id, [ItemDone("r1", failure=Failure("start", b"e", "m", failed))]))
    (end,) = out
    assert end.outcome is Outcome.FAILED and end.payload == b"e"


def test_failure_without_handler_fails_the_run_with_the_error():
    state = state_of(StepRoute("start", frozenset({"Start"})))
    (call,) = calls(started(state))
    out = reduce(state, CallFinished(call.call_id, [ItemDone("r1", failure=Failure("start", b"err", "boom"))]))
    assert [(c.outcome, c.payload, c.step) for c in out] == [(Outcome.FAILED, b"err", "start")]


def test_pool_that_cannot_start_fails_the_runs_waiting_on_it():
    state = state_of(StepRoute("start", frozenset({"Start"})))
    reduce(state, RunStarted("r1", "c1", env("Start"), None, now=0.0))
    (end,) = reduce(state, ActorStartFailed("start", 0, "ValueError: bad init"))
    assert end.outcome is Outcome.FAILED and "could not start an actor: ValueError: bad init" in end.message


def test_fan_in_cost_does_not_grow_with_events_already_routed():
    state = state_of(StepRoute("start", frozenset({"Start"})), StepRoute("w", frozenset({"X"}), num_workers=1))
    started(state)
    sizes = []
    for _ in range(50):
        sizes.append(len(reduce(state, EventsEmitted("r1", "start", [env("X")] * 2000))))
    assert state.runs["r1"].inflight == 100_001
    assert max(sizes) <= 1  # queued behind one busy actor: no command per event, no rescans


def test_first_run_starts_each_pool_at_its_warm_size_at_most_num_workers():
    state = state_of(
        StepRoute("a", frozenset({"Start"}), num_workers=4, warm=3), StepRoute("b", frozenset({"X"}), num_workers=2)
    )
    commands = reduce(state, RunStarted("r1", "c1", env("Start"), None, now=0.0))
    started_actors = sorted((c.step, c.actor) for c in commands if isinstance(c, StartActor))
    assert started_actors == [("a", 0), ("a", 1), ("a", 2), ("b", 0)]


def _cpu_pool(cores: int) -> object:
    state = state_of(StepRoute("start", frozenset({"Start"})), StepRoute("w", frozenset({"X"}), num_workers=8))
    state.cores = cores
    started(state)
    return state


def _starts(out: list) -> list[int]:
    return [c.actor for c in out if isinstance(c, StartActor) and c.step == "w"]


def test_a_pool_grows_to_the_cores_until_its_step_is_seen_to_wait():
    state = _cpu_pool(cores=2)
    out = reduce(state, EventsEmitted("r1", "start", [env("X") for _ in range(80)]))
    assert _starts(out) == [1]  # two actors for two cores, not the eight of num_workers
    assert [c.after for c in out if isinstance(c, ArmGrowth)] == [state.grow_after_s]
    (first,) = calls(out)
    reduce(state, ActorStarted("w", 1))
    # the step computes (its actor's CPU time is the call's time): the pool stays at the cores, past the wait too
    out = reduce(state, CallFinished(first.call_id, [ItemDone("r1")] * len(first.items), elapsed=0.16, cpu=0.16))
    assert _starts(out) == []
    assert _starts(reduce(state, GrowthDue("w"))) == []
    assert state.pools["w"].size == 2


def test_a_step_seen_to_wait_grows_to_num_workers():
    state = _cpu_pool(cores=2)
    (first,) = calls(reduce(state, EventsEmitted("r1", "start", [env("X") for _ in range(80)])))
    out = reduce(state, CallFinished(first.call_id, [ItemDone("r1")] * len(first.items), elapsed=1.0, cpu=0.01))
    assert _starts(out) == [2, 3, 4, 5, 6, 7]  # waiting on I/O: more actors are more calls at once


def test_a_step_whose_first_calls_do_not_come_back_grows_past_the_cores():
    state = _cpu_pool(cores=2)
    out = reduce(state, EventsEmitted("r1", "start", [env("X") for _ in range(80)]))
    assert _starts(out) == [1]
    # its invocations may wait for each other (a barrier of num_workers): the bound must not hold them for ever
    assert _starts(reduce(state, GrowthDue("w"))) == [2, 3, 4, 5, 6, 7]


def test_a_call_seen_awaiting_lets_other_runs_calls_share_its_actor_at_once():
    state = _cpu_pool(cores=2)
    for run_id in ("r2", "r3"):
        started(state, run_id)
    (first,) = calls(reduce(state, EventsEmitted("r1", "start", [env("X")])))
    # the step's kind is unknown: the other runs' events wait for actors of their own, one call per actor
    assert calls(reduce(state, EventsEmitted("r2", "start", [env("X")]))) == []
    assert calls(reduce(state, EventsEmitted("r3", "start", [env("X")]))) == []
    # the first call is seen awaiting (its actor's event loop idle): the waiting runs' calls go to that actor now
    out = reduce(state, CallWaiting("w"))
    assert sorted((c.actor, c.items[0].run_id) for c in calls(out)) == [(0, "r2"), (0, "r3")]
    # a call's own figures, once back, say more: this one computed all along, so the step is not taken to wait
    reduce(state, CallFinished(first.call_id, [ItemDone("r1")], elapsed=1.0, cpu=0.9))
    reduce(state, CallWaiting("w"))
    assert not state.pools["w"].waits


def test_pools_of_a_cluster_with_as_many_cores_as_workers_are_not_held():
    state = _cpu_pool(cores=16)
    out = reduce(state, EventsEmitted("r1", "start", [env("X") for _ in range(80)]))
    assert _starts(out) == [1, 2, 3, 4, 5, 6, 7]
    assert not [c for c in out if isinstance(c, ArmGrowth)]
