"""The routing core lends idle slots of fast, stateless next steps to a call, so a chain runs on one actor."""

from __future__ import annotations

from driving import calls, env, started, state_of

from rayflow.core.commands import (
    CallStep,
    EndRun,
    Outcome,
)
from rayflow.core.envelope import Kind
from rayflow.core.reducer import reduce
from rayflow.core.routing import RoutingTable, StepRoute
from rayflow.core.state import DispatcherState
from rayflow.core.ticks import (
    CallFinished,
    EventsEmitted,
    ItemDone,
)


def _ping_pong(*, b_workers: int = 1, lendable: bool = True) -> DispatcherState:
    return state_of(
        StepRoute("a", frozenset({"Start", "A"}), returns=frozenset({"B"}), lendable=True),
        StepRoute("b", frozenset({"B"}), num_workers=b_workers, returns=frozenset({"A", "Stop"}), lendable=lendable),
    )


def _measured(state: DispatcherState) -> CallStep:
    """Run a -> b -> a once through the dispatcher, so both steps have a measured speed; the next call of a."""
    (first,) = calls(started(state))
    (to_b,) = calls(reduce(state, CallFinished(first.call_id, [ItemDone("r1", output=env("B"))], elapsed=0.001)))
    (to_a,) = calls(reduce(state, CallFinished(to_b.call_id, [ItemDone("r1", output=env("A"))], elapsed=0.001)))
    return to_a


def test_successors_are_the_lendable_steps_accepting_what_a_step_returns():
    table = RoutingTable.of(
        [
            StepRoute("a", frozenset({"Start"}), returns=frozenset({"B", "C", "Start"}), lendable=True),
            StepRoute("b", frozenset({"B"}), lendable=True),
            StepRoute("c", frozenset({"C"}), collects=True),
        ]
    )
    assert table.successors("a") == ("b",)  # c keeps collect buffers: never lent; a itself loops without a loan
    assert table.successors("b") == ()


def test_a_fast_call_borrows_an_idle_slot_of_the_next_step_until_it_returns():
    state = _ping_pong()
    call = _measured(state)
    assert call.step == "a" and call.loans == ("b",)
    # The lent slot takes no call: an event for b now waits for the loan to come back.
    waiting = reduce(state, EventsEmitted("r1", "a", [env("B")]))
    assert not calls(waiting)
    # The item ran on through b on a's actor: b returned the StopEvent, and the run ends naming b.
    out = reduce(
        state, CallFinished(call.call_id, [ItemDone("r1", output=env("Stop", kind=Kind.STOP), step="b")], 0.001)
    )
    (end,) = [c for c in out if isinstance(c, EndRun)]
    assert end.outcome is Outcome.DONE and end.step == "b"


def test_the_returned_slot_takes_the_event_that_waited_for_it():
    state = _ping_pong()
    call = _measured(state)
    reduce(state, EventsEmitted("r1", "a", [env("B")]))
    out = reduce(state, CallFinished(call.call_id, [ItemDone("r1")], elapsed=0.001))
    (fed,) = calls(out)
    assert fed.step == "b" and [i.envelope.type_name for i in fed.items] == ["B"]


def test_no_loan_for_unmeasured_slow_busy_or_stateful_steps():
    state = _ping_pong(lendable=False)
    assert _measured(state).loans == ()
    state = _ping_pong()
    (first,) = calls(started(state))
    assert first.loans == ()  # nothing measured yet
    state = _ping_pong()
    (first,) = calls(started(state))
    (to_b,) = calls(reduce(state, CallFinished(first.call_id, [ItemDone("r1", output=env("B"))], elapsed=5.0)))
    (to_a,) = calls(reduce(state, CallFinished(to_b.call_id, [ItemDone("r1", output=env("A"))], elapsed=0.001)))
    assert to_a.loans == ()  # a is slow: its call would hold b's slot too long
    state = _ping_pong()
    (first,) = calls(started(state))
    (to_b,) = calls(reduce(state, CallFinished(first.call_id, [ItemDone("r1", output=env("B"))], elapsed=0.001)))
    (to_a,) = calls(reduce(state, CallFinished(to_b.call_id, [ItemDone("r1", output=env("A"))], elapsed=5.0)))
    assert to_a.loans == ()  # b is slow: running it on a's actor would take a's actor away from a


def test_a_lost_call_returns_its_loans():
    state = _ping_pong()
    call = _measured(state)
    reduce(state, EventsEmitted("r1", "a", [env("B")]))
    out = reduce(state, CallFinished(call.call_id, lost="the step actor died"))
    assert not any(isinstance(c, EndRun) for c in out)  # its item is delivered again, to a new actor
    assert all(not slot.lent for pool in state.pools.values() for slot in pool.actors.values())
