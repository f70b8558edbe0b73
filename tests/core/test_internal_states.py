"""Internal events in the routing core: made only for a run whose caller asked, one RUNNING and one NOT_RUNNING per
invocation (PREPARING first when no actor of the step is free), and idle said once per time the run goes idle."""

from __future__ import annotations

from driving import calls, env, state_of

from rayflow.core.commands import Publish, StartActor
from rayflow.core.envelope import INTERNAL_KEYS, Waiter
from rayflow.core.reducer import reduce
from rayflow.core.routing import StepRoute
from rayflow.core.ticks import ActorStarted, CallFinished, InternalAsked, ItemDone, RunStarted


def _internal(commands: list) -> list[tuple]:
    return [c.envelope.payload for c in commands if isinstance(c, Publish) and c.envelope.type_keys == INTERNAL_KEYS]


def _start(internal: bool) -> tuple:
    state = state_of(StepRoute("a", frozenset({"Start"})), StepRoute("b", frozenset({"X"})))
    out = reduce(state, RunStarted("r1", "c1", env("Start"), None, now=0.0, internal=internal))
    for command in list(out):
        if isinstance(command, StartActor):
            out += reduce(state, ActorStarted(command.step, command.actor))
    return state, out


def test_each_invocation_is_preparing_while_no_actor_is_free_then_running_then_not_running():
    state, out = _start(internal=True)
    (call,) = calls(out)
    assert _internal(out) == [
        ("step", "a", "preparing", "<enqueued>", "Start", None),
        ("step", "a", "running", "0", "Start", None),
    ]
    out = reduce(state, CallFinished(call.call_id, [ItemDone("r1", output=env("X"))]))
    assert _internal(out)[0] == ("step", "a", "not_running", "0", "<class 'Start'>", "<class 'X'>")
    assert ("step", "b", "running", "0", "X", None) in _internal(out)


def test_nothing_internal_is_made_for_a_run_whose_caller_did_not_ask_until_it_asks():
    state, out = _start(internal=False)
    (call,) = calls(out)
    assert _internal(out) == []
    reduce(state, InternalAsked("r1"))
    out = reduce(state, CallFinished(call.call_id, [ItemDone("r1", output=env("X"))]))
    assert _internal(out)[0][:3] == ("step", "a", "not_running")


def test_a_run_paused_in_a_wait_is_said_idle_once():
    state, out = _start(internal=True)
    (call,) = calls(out)
    waiter = Waiter("w", ("Answer", "Event"), call.items[0].envelope)
    out = reduce(state, CallFinished(call.call_id, [ItemDone("r1", waiting=waiter)]))
    assert _internal(out)[-1] == ("idle",)
    assert state.runs["r1"].idle_told
