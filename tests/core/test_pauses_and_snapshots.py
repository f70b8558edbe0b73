"""The routing core with steps paused in wait_for_event (answers, requirement checks, timeouts), and the
unfinished work a snapshot holds and a resumed run starts from."""

from __future__ import annotations

from driving import calls, env, started, state_of

from rayflow.core.commands import (
    ArmWaiterTimeout,
    CallStep,
    CheckRequirements,
    EndRun,
    Outcome,
    Publish,
    StartActor,
    WorkItem,
)
from rayflow.core.envelope import Envelope, Kind, Waiter
from rayflow.core.reducer import reduce
from rayflow.core.routing import StepRoute
from rayflow.core.state import DispatcherState, Pending
from rayflow.core.ticks import (
    ActorStarted,
    CallFinished,
    CancelRequested,
    EventsEmitted,
    ItemDone,
    RequirementsChecked,
    RunResumed,
    WaiterTimedOut,
)


def _paused(state: DispatcherState, **waiter: object) -> tuple[CallStep, list]:
    """Start a run whose ``ask`` step pauses in wait_for_event on its first call; that call and the commands."""
    (call,) = calls(started(state))
    wait = Waiter(
        "w", ("Answer", "HumanResponse", "Event"), call.items[0].envelope,
        announce=env("Question", kind=Kind.STREAM), **waiter,  # type: ignore[arg-type]
    )  # fmt: skip
    return call, reduce(state, CallFinished(call.call_id, [ItemDone("r1", waiting=wait)]))


def _asking(**kw: object) -> DispatcherState:
    return state_of(StepRoute("ask", frozenset({"Start"})), StepRoute("other", frozenset({"X"})))


def _checked(state: DispatcherState, envelope: Envelope) -> list:
    """Emit ``envelope`` into r1; the step actor asked answers as one that reads its payload as the user's name."""
    (check,) = reduce(state, EventsEmitted("r1", None, [envelope]))
    assert isinstance(check, CheckRequirements) and check.step == "ask" and check.envelope == envelope
    matched = tuple(n for n, required in check.checks if envelope.payload == dict(required)["user"].encode())
    return reduce(state, RequirementsChecked("r1", envelope, matched, check.held))


def test_a_paused_step_announces_its_wait_and_the_run_waits_instead_of_failing_idle():
    state = _asking()
    _, out = _paused(state, timeout=5.0)
    assert [c.envelope.type_name for c in out if isinstance(c, Publish)] == ["Question"]
    assert [c for c in out if isinstance(c, ArmWaiterTimeout)] == [ArmWaiterTimeout("r1", 0, 5.0)]
    assert not [c for c in out if isinstance(c, EndRun)]


def test_the_awaited_event_reruns_the_step_with_it_and_nothing_else_gets_it():
    state = _asking()
    call, _ = _paused(state)
    answer = Envelope(("Answer", "HumanResponse", "Event"), b"bob")
    (rerun,) = calls(reduce(state, EventsEmitted("r1", None, [answer])))
    assert rerun.step == "ask"
    assert rerun.items[0].envelope == call.items[0].envelope and rerun.items[0].resolved == (("w", answer),)
    # Answered: a second answer has no wait left and no step that accepts it, so it fails the run.
    out = reduce(state, EventsEmitted("r1", None, [answer]))
    assert [c.outcome for c in out if isinstance(c, EndRun)] == [Outcome.FAILED]


def test_an_answer_that_misses_the_requirements_is_ignored_and_the_wait_stays():
    state = _asking()
    _paused(state, requirements=(("user", "bob"),))
    assert _checked(state, Envelope(("Answer", "HumanResponse", "Event"), b"alice")) == []
    (rerun,) = calls(_checked(state, Envelope(("Answer", "HumanResponse", "Event"), b"bob")))
    assert rerun.items[0].resolved[0][0] == "w"


def test_a_run_waiting_for_a_requirements_check_is_not_idle_and_ignores_a_late_answer():
    state = _asking()
    _paused(state, requirements=(("user", "bob"),), timeout=1.0)
    answer = Envelope(("Answer", "HumanResponse", "Event"), b"bob")
    (check,) = reduce(state, EventsEmitted("r1", None, [answer]))
    (rerun,) = calls(reduce(state, WaiterTimedOut("r1", 0)))  # the wait times out while its check is out
    assert rerun.items[0].resolved == (("w", None),)
    late = reduce(state, RequirementsChecked("r1", answer, (0,), check.held))
    assert not [c for c in late if isinstance(c, CallStep)]


def test_a_step_that_accepts_the_awaited_type_gets_an_answer_no_wait_took():
    state = state_of(StepRoute("ask", frozenset({"Start", "Answer"})))
    _paused(state, requirements=(("user", "bob"),))
    (delivered,) = calls(_checked(state, Envelope(("Answer", "HumanResponse", "Event"), b"alice")))
    assert delivered.step == "ask" and delivered.items[0].resolved == ()


def test_a_wait_that_times_out_reruns_the_step_with_nothing_for_it():
    state = _asking()
    _paused(state, timeout=1.0)
    (rerun,) = calls(reduce(state, WaiterTimedOut("r1", 0)))
    assert rerun.items[0].resolved == (("w", None),)
    assert reduce(state, WaiterTimedOut("r1", 0)) == []  # already rerun: a late timer changes nothing


def test_a_snapshot_holds_the_running_and_queued_work_and_outlives_a_cancel():
    state = state_of(StepRoute("start", frozenset({"Start"})), StepRoute("b", frozenset({"X"})))
    assert len(calls(started(state))) == 1  # start is running
    reduce(state, EventsEmitted("r1", "start", [env("X"), env("X")]))  # b's events: one running, one queued
    before = state.pending("r1")
    assert before is not None
    assert sorted((name, item.envelope.type_name) for name, item in before.items) == [
        ("b", "X"), ("b", "X"), ("start", "Start")
    ]  # fmt: skip
    reduce(state, CancelRequested("r1"))
    assert state.pending("r1") == before  # kept for ctx.to_dict() after the cancel
    assert state.pending("unknown") is None


def test_a_resumed_run_starts_from_its_unfinished_work_not_a_start_event():
    state = state_of(StepRoute("start", frozenset({"Start"})), StepRoute("b", frozenset({"X"})))
    pending = Pending(items=(("b", WorkItem("old", "c0", env("X"))),), awaiting_input=True)
    out = reduce(state, RunResumed("r2", "c2", pending, None, now=0.0))
    for c in out:
        if isinstance(c, StartActor):
            out += reduce(state, ActorStarted(c.step, c.actor))
    (call,) = calls(out)
    assert call.step == "b" and (call.items[0].run_id, call.items[0].ctx_id) == ("r2", "c2")
    # b returns nothing, but the run still waits for the caller's answer instead of failing as idle.
    assert not [c for c in reduce(state, CallFinished(call.call_id, [ItemDone("r2")])) if isinstance(c, EndRun)]


def test_a_resumed_run_routes_once_an_event_of_its_snapshot_that_a_step_running_again_emits_again():
    state = state_of(StepRoute("start", frozenset({"Start"})), StepRoute("b", frozenset({"X"})))
    queued = Envelope(("X", "Event"), b"x", event_id=b"x-of-start")
    pending = Pending(items=(("start", WorkItem("old", "c0", env("Start"))), ("b", WorkItem("old", "c0", queued))))
    reduce(state, RunResumed("r2", "c2", pending, None, now=0.0))
    reduce(state, EventsEmitted("r2", "start", [queued, Envelope(("X", "Event"), b"y", event_id=b"y-of-start")]))
    after = state.pending("r2")
    assert after is not None
    assert sorted(item.envelope.event_id for name, item in after.items if name == "b") == [b"x-of-start", b"y-of-start"]


def test_a_snapshot_for_steps_the_workflow_lacks_fails_the_resumed_run_naming_them():
    state = state_of(StepRoute("start", frozenset({"Start"})))
    pending = Pending(items=(("gone", WorkItem("old", "c0", env("X"))),))
    (end,) = [c for c in reduce(state, RunResumed("r2", "c2", pending, None, 0.0)) if isinstance(c, EndRun)]
    assert end.outcome is Outcome.FAILED and "gone" in end.message
