"""Fan-out streams in the routing core, driven by plain ticks: a join runs once its stream's work is over (or at
its Take), in the parent stream, with the events in arrival order; a paused or retried item keeps its stream open;
a snapshot holds a join's waiting events; several-parameter steps pair the oldest of each."""

from __future__ import annotations

from dataclasses import replace

from driving import calls, env, started, state_of

from rayflow.core.commands import CallStep, Publish, StartActor, Warn
from rayflow.core.envelope import Envelope, Waiter
from rayflow.core.reducer import reduce
from rayflow.core.routing import StepRoute
from rayflow.core.ticks import ActorStarted, CallFinished, EventsEmitted, ItemDone, RunResumed


def _fan(*members: str) -> tuple[Envelope, ...]:
    return tuple(replace(env(m), event_id=f"{m}-{n}".encode()) for n, m in enumerate(members))


def _out(call: CallStep, name: str, payload: bytes = b"") -> Envelope:
    """What a step actor returns for the call's item: an event made in the item's scope."""
    return replace(env(name), payload=payload or name.encode(), scope=call.items[0].envelope.scope)


def _finish(state, call: CallStep, **done) -> list:
    return reduce(state, CallFinished(call.call_id, [ItemDone(item.run_id, **done) for item in call.items]))


def _routes(take: int | None = None) -> tuple[StepRoute, ...]:
    return (
        StepRoute("split", frozenset({"Start"}), fans_out=True),
        StepRoute("work", frozenset({"Part"}), num_workers=1),
        StepRoute("join", frozenset({"Done"}), joins=frozenset({"split"}), take=take),
    )


def _split(state, *members: str) -> list[CallStep]:
    (call,) = calls(started(state))
    return calls(_finish(state, call, fan_out=_fan(*members)))


def test_a_join_runs_once_the_streams_work_is_over_with_the_events_in_arrival_order():
    state = state_of(*_routes(), max_batch=1)
    (first,) = _split(state, "Part", "Part", "Part")
    out = _finish(state, first, output=_out(first, "Done", b"a"))
    (second,) = calls(out)
    assert second.step == "work"  # one actor, one event a call: the join waits for the other two
    out = _finish(state, second)  # this one's work returns nothing
    (third,) = calls(out)
    out = _finish(state, third, output=_out(third, "Done", b"c"))
    (join,) = calls(out)
    assert join.step == "join" and [m.payload for m in join.items[0].members] == [b"a", b"c"]
    assert join.items[0].envelope.scope == ()  # the join runs where the list was returned
    assert not state.runs["r1"].streams


def test_an_empty_list_joins_at_once_with_nothing():
    state = state_of(*_routes())
    (join,) = _split(state)
    assert join.step == "join" and join.items[0].members == ()


def test_take_runs_the_join_at_the_nth_event_and_later_events_reach_no_join():
    state = state_of(*_routes(take=1), max_batch=1)
    (work,) = _split(state, "Part", "Part")
    out = calls(_finish(state, work, output=_out(work, "Done")))
    (join,) = [c for c in out if c.step == "join"]
    (work2,) = [c for c in out if c.step == "work"]  # the list's other event still runs
    assert len(join.items[0].members) == 1
    assert not [c for c in calls(_finish(state, work2, output=_out(work2, "Done"))) if c.step == "join"]


def test_an_item_paused_in_a_wait_keeps_its_stream_open():
    state = state_of(*_routes())
    (work,) = _split(state, "Part")
    waiter = Waiter("w", ("Answer", "Event"), work.items[0].envelope)
    assert not calls(_finish(state, work, waiting=waiter))  # paused: no join yet
    assert state.runs["r1"].streams


def test_inner_streams_join_in_the_outer_stream_which_stays_open_for_them():
    state = state_of(
        StepRoute("docs", frozenset({"Start"}), fans_out=True),
        StepRoute("chunks", frozenset({"Doc"}), fans_out=True),
        StepRoute("per_doc", frozenset({"Chunk"}), joins=frozenset({"chunks"})),
        StepRoute("all", frozenset({"DocDone"}), joins=frozenset({"docs"})),
    )
    (docs,) = calls(started(state))
    (chunks,) = calls(_finish(state, docs, fan_out=_fan("Doc")))
    (per_doc,) = calls(_finish(state, chunks, fan_out=_fan("Chunk", "Chunk")))
    assert per_doc.step == "per_doc" and len(per_doc.items[0].members) == 2
    outer = per_doc.items[0].envelope.scope
    assert len(outer) == 1 and outer[0].startswith("docs#")  # the inner join runs in the outer stream
    (all_docs,) = calls(_finish(state, per_doc, output=replace(env("DocDone"), scope=outer)))
    assert all_docs.step == "all" and len(all_docs.items[0].members) == 1


def test_a_snapshot_holds_a_joins_waiting_events_and_a_resumed_run_joins_them():
    state = state_of(*_routes(), max_batch=1)
    (first, *_) = _split(state, "Part", "Part")
    _finish(state, first, output=_out(first, "Done"))
    pending = state.pending("r1")
    assert [name for name, _ in pending.items].count("join") == 1
    fresh = state_of(*_routes(), max_batch=1)
    out = reduce(fresh, RunResumed("r2", "c2", pending, None, now=0.0))
    out += reduce(fresh, EventsEmitted("r2", "split", []))
    for command in list(out):
        if isinstance(command, StartActor):
            out += reduce(fresh, ActorStarted(command.step, command.actor))
    (work,) = [c for c in calls(out) if c.step == "work"]
    (join,) = calls(_finish(fresh, work, output=_out(work, "Done")))
    assert join.step == "join" and len(join.items[0].members) == 2


def test_an_event_outside_any_stream_of_a_join_is_dropped_with_a_warning():
    state = state_of(*_routes())
    started(state)
    out = reduce(state, EventsEmitted("r1", "split", [env("Done")]))
    (warn,) = [c for c in out if isinstance(c, Warn)]
    assert "outside any stream of split" in warn.message
    assert not [c for c in out if isinstance(c, Publish)]


def test_a_step_of_several_parameters_pairs_the_oldest_event_of_each():
    state = state_of(
        StepRoute("start", frozenset({"Start"})),
        StepRoute("pair", frozenset({"L", "R"}), slots=(frozenset({"L"}), frozenset({"R"}))),
    )
    started(state)
    left = [replace(env("L"), payload=b"l1"), replace(env("L"), payload=b"l2")]
    right = [replace(env("R"), payload=b"r1"), replace(env("R"), payload=b"r2")]
    out = reduce(state, EventsEmitted("r1", "start", [*left, *right]))
    pairs = [[m.payload for m in item.members] for call in calls(out) for item in call.items]
    assert pairs == [[b"l1", b"r1"], [b"l2", b"r2"]]
