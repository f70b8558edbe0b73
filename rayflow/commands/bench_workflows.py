"""The benchmark's workflows (``rayflow.commands.bench``), written once against an engine's API module.

The event and workflow classes derive from the classes of the module passed in, known only at run time, so the
type checker cannot follow them here (hence the codes disabled below, for this module alone).
"""

# mypy: disable-error-code="valid-type, misc, name-defined, attr-defined"
# No `from __future__ import annotations` here on purpose: the workflow classes are built inside a function,
# and the engines resolve step annotations from the module globals, where the local event classes do not
# exist. Evaluating the annotations when the steps are defined hands the engines real classes, not strings.

from typing import Any

__all__ = ["build_workflows", "expected_list"]


_EXPECTED: dict[tuple[type, int], list[type]] = {}


def expected_list(event_type: type, n: int) -> list[type]:
    """``[event_type] * n``, built once per size (per process: each rayflow actor has its own cache).

    The fan-in step runs once per event; building the n-long list in each call would add O(n) of the
    benchmark's own work per event, an O(n^2) term that measures neither engine. (A plain dict, not
    ``functools.lru_cache``: cloudpickle cannot ship an lru_cache-wrapped function of ``__main__``.)
    """
    found = _EXPECTED.get((event_type, n))
    if found is None:
        found = _EXPECTED[(event_type, n)] = [event_type] * n
    return found


def build_workflows(api: Any, workers: int, work_options: dict[str, Any] | None = None) -> tuple[type, dict[str, type]]:
    """The fan-out workflow class and the chain ones by kind, written once against ``api`` (rayflow or LlamaIndex).

    ``api`` must expose ``Workflow``, ``step``, ``Context``, ``Event``, ``StartEvent`` and ``StopEvent`` the
    way ``llama_index.core.workflow`` does. N rides on every event so that one instance serves every size.
    ``work_options``: more ``@step`` options of the fan-out's worker step (an engine's own, such as rayflow's ``warm``).
    """
    Event, StartEvent, StopEvent, Context = api.Event, api.StartEvent, api.StopEvent, api.Context

    class WorkEvent(Event):
        i: int
        n: int

    class ResultEvent(Event):
        i: int
        n: int

    class HopEvent(Event):
        count: int
        total: int

    class PongEvent(Event):
        count: int
        total: int

    class FanOutWorkflow(api.Workflow):
        @api.step
        async def fan_out(self, ctx: Context, ev: StartEvent) -> WorkEvent | None:
            n = int(ev.get("n"))
            for i in range(n):
                ctx.send_event(WorkEvent(i=i, n=n))
            return None

        @api.step(num_workers=workers, **(work_options or {}))
        async def work(self, ev: WorkEvent) -> ResultEvent:
            return ResultEvent(i=ev.i * 2, n=ev.n)

        @api.step
        async def fan_in(self, ctx: Context, ev: ResultEvent) -> StopEvent | None:
            results = ctx.collect_events(ev, expected_list(ResultEvent, ev.n))
            if results is None:
                return None
            return StopEvent(result=len(results))

    class SelfLoopWorkflow(api.Workflow):
        @api.step
        async def begin(self, ev: StartEvent) -> HopEvent:
            return HopEvent(count=0, total=int(ev.get("hops")))

        @api.step
        async def hop(self, ev: HopEvent) -> HopEvent | StopEvent:
            if ev.count + 1 >= ev.total:
                return StopEvent(result=ev.count + 1)
            return HopEvent(count=ev.count + 1, total=ev.total)

    class PingPongWorkflow(api.Workflow):
        @api.step
        async def begin(self, ev: StartEvent) -> HopEvent:
            return HopEvent(count=0, total=int(ev.get("hops")))

        @api.step
        async def ping(self, ev: HopEvent) -> PongEvent | StopEvent:
            if ev.count + 1 >= ev.total:
                return StopEvent(result=ev.count + 1)
            return PongEvent(count=ev.count + 1, total=ev.total)

        @api.step
        async def pong(self, ev: PongEvent) -> HopEvent | StopEvent:
            if ev.count + 1 >= ev.total:
                return StopEvent(result=ev.count + 1)
            return HopEvent(count=ev.count + 1, total=ev.total)

    return FanOutWorkflow, {"self-loop": SelfLoopWorkflow, "ping-pong": PingPongWorkflow}
