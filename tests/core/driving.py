"""Driving the routing core in tests: envelopes, a dispatcher state, a started run, the calls among commands."""

from __future__ import annotations

from rayflow.core.commands import CallStep, EndRun, StartActor
from rayflow.core.envelope import Envelope, Kind
from rayflow.core.reducer import reduce
from rayflow.core.routing import RoutingTable, StepRoute
from rayflow.core.state import DispatcherState
from rayflow.core.ticks import (
    ActorStarted,
    RunStarted,
)


def env(name: str, kind: Kind = Kind.EVENT, target: str | None = None, bases: tuple[str, ...] = ()) -> Envelope:
    return Envelope((name, *bases, "Event"), payload=name.encode(), kind=kind, target=target)


def state_of(*routes: StepRoute, max_batch: int = 256, pipeline: int = 0) -> DispatcherState:
    return DispatcherState.of(RoutingTable.of(routes), max_batch=max_batch, pipeline=pipeline)


def started(state: DispatcherState, run: str = "r1", timeout: float | None = None) -> list:
    commands = reduce(state, RunStarted(run, "c1", env("Start"), timeout, now=100.0))
    for c in commands:
        if isinstance(c, StartActor):
            commands += reduce(state, ActorStarted(c.step, c.actor))
    return commands


def calls(commands: list) -> list[CallStep]:
    return [c for c in commands if isinstance(c, CallStep)]


def ends(commands: list) -> list[EndRun]:
    return [c for c in commands if isinstance(c, EndRun)]
