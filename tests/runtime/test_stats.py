"""Seeing what runs: step statistics per run and per instance, the run's Chrome trace, OpenTelemetry spans, and
verbose output printed by the driver."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rayflow import Context, Event, StartEvent, StopEvent, Workflow, step
from rayflow.retry_policy import retry_policy, stop_after_attempt, wait_fixed
from rayflow.runtime import observer
from rayflow.stats import format_stats

pytestmark = pytest.mark.usefixtures("ray_env")


class Work(Event):
    i: int
    n: int
    fail: bool = False


class Done(Event):
    i: int
    n: int


class Counted(Workflow):
    """``begin`` sends n Work events (and lingers, if asked); ``middle`` fails twice on item 0 before it succeeds
    (or always, with ``fail``); ``end`` collects the n results."""

    @step
    async def begin(self, ctx: Context, ev: StartEvent) -> Work | None:
        for i in range(ev.n):
            ctx.send_event(Work(i=i, n=ev.n, fail=ev.get("fail", False)))
        await asyncio.sleep(ev.get("linger", 0))  # still running when the run ends: cancelled, counted all the same
        return None

    @step(num_workers=2, retry_policy=retry_policy(wait=wait_fixed(0.001), stop=stop_after_attempt(3)))
    async def middle(self, ctx: Context, ev: Work) -> Done:
        if ev.fail or (ev.i == 0 and ctx.retry_info().retry_number < 2):
            raise ValueError(f"flaky {ev.i}")
        return Done(i=ev.i, n=ev.n)

    @step
    async def end(self, ctx: Context, ev: Done) -> StopEvent | None:
        done = ctx.collect_events(ev, [Done] * ev.n)
        return None if done is None else StopEvent(result=len(done))


def _counts(stats: Any) -> dict[str, tuple[int, int, int, int, int]]:
    return {name: (s.events_in, s.events_out, s.retries, s.failures, s.queued) for name, s in stats.steps.items()}


async def test_stats_count_every_invocation_of_a_run_and_of_the_instance() -> None:
    async with Counted(timeout=60) as wf:
        began = time.perf_counter()
        handler = wf.run(n=3, linger=30)
        assert await handler == 3
        stats = await handler.stats()
        wall = time.perf_counter() - began
        assert stats.run_id == handler.run_id
        # begin: 1 in, 3 sent; middle: 3 events, item 0 tried 3 times; end: 3 in, the StopEvent out.
        assert _counts(stats) == {"begin": (1, 3, 0, 0, 0), "middle": (5, 3, 2, 0, 0), "end": (3, 1, 0, 0, 0)}
        for s in stats.steps.values():
            assert s.p50_s is not None and s.p95_s is not None and s.p99_s is not None and s.max_s is not None
            assert 0 < s.p50_s <= s.p95_s <= s.p99_s <= s.max_s <= wall
            assert set(s.busy_s) <= {f"{name}.{i}" for name in ("begin", "middle", "end") for i in (0, 1)}
            assert 0 < sum(s.busy_s.values()) <= wall * 2

        failing = wf.run(n=1, fail=True)
        with pytest.raises(ValueError, match="flaky 0"):
            await failing
        assert _counts(await failing.stats())["middle"] == (3, 0, 2, 1, 0)

        whole = await wf.stats()
        assert whole.runs == 2 and whole.run_id is None
        assert _counts(whole) == {"begin": (2, 4, 0, 0, 0), "middle": (8, 3, 4, 1, 0), "end": (3, 1, 0, 0, 0)}
        table = format_stats(whole)
        assert table.splitlines()[2].split()[:6] == ["middle", "8", "3", "0", "4", "1"]
        assert json.loads(json.dumps(whole.to_dict()))["steps"]["middle"]["retries"] == 4


class A(Event):
    x: int


class Chain(Workflow):
    @step
    async def first(self, ev: StartEvent) -> A:
        return A(x=ev.x)

    @step
    async def second(self, ev: A) -> StopEvent:
        if ev.x < 0:
            raise RuntimeError("negative")
        return StopEvent(result=ev.x + 1)


def _attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def _spans(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, InMemorySpanExporter]:
    """An SDK tracer whose spans land in memory, as rayflow's tracer (the global provider stays untouched)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    monkeypatch.setattr(observer, "otel_tracer", lambda: provider.get_tracer("rayflow"))
    return tracer, exporter


async def test_verbose_trace_and_spans_show_each_invocation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tracer, exporter = _spans(monkeypatch)
    async with Chain(verbose=True, timeout=60) as wf:
        with tracer.start_as_current_span("caller") as caller:
            handler = wf.run(x=1)
            assert await handler == 2
        failing = wf.run(x=-1)
        with pytest.raises(RuntimeError, match="negative"):
            await failing

    # verbose: a start and an end line per invocation, printed by the driver, with the run, actor and node.
    out = capsys.readouterr().out
    run = handler.run_id[:8]
    where = rf"\(run {run}, actor (first|second)\.0, node [0-9a-f]{{8}}\)"
    starts = [m.start() for m in re.finditer(rf"Running step (first|second) {where}", out)]
    first_end = re.search(rf"Step first produced event A in [0-9.]+ ms {where}", out)
    second_end = re.search(rf"Step second produced event StopEvent in [0-9.]+ ms {where}", out)
    assert len(starts) == 2 and first_end and second_end
    assert starts[0] < first_end.start() < starts[1] < second_end.start()
    assert re.search(r"Step second failed: RuntimeError: negative in [0-9.]+ ms \(run " + failing.run_id[:8], out)

    # the trace: one complete slice per invocation, on its actor's track, with the events it carried.
    trace = handler.trace()
    slices = [e for e in trace["traceEvents"] if e["ph"] == "X" and e["cat"] == "step"]
    assert [s["name"] for s in slices] == ["first", "second"]
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "thread_name"}
    for piece, event, returned in zip(slices, ("StartEvent", "A"), ("A", "StopEvent"), strict=True):
        assert isinstance(piece["pid"], int) and isinstance(piece["tid"], int) and piece["dur"] >= 0
        assert threads[(piece["pid"], piece["tid"])] == piece["args"]["actor"]
        assert piece["args"]["run_id"] == handler.run_id
        assert (piece["args"]["event"], piece["args"]["returned"], piece["args"]["emitted"]) == (event, returned, 1)
    assert slices[0]["ts"] <= slices[1]["ts"]
    (whole,) = [e for e in trace["traceEvents"] if e.get("cat") == "run"]
    assert whole["ts"] <= slices[0]["ts"] and whole["args"]["outcome"] == "done"
    handler.save_trace(tmp_path / "run.json")
    assert json.loads((tmp_path / "run.json").read_text()) == json.loads(json.dumps(trace))

    # OpenTelemetry: a run span under the caller's span, a child span per invocation.
    spans = {(span.name, _attrs(span).get("rayflow.run_id")): span for span in exporter.get_finished_spans()}
    run_span = spans[("rayflow.run Chain", handler.run_id)]
    assert run_span.parent is not None and run_span.parent.span_id == caller.get_span_context().span_id
    for name, event in (("first", "StartEvent"), ("second", "A")):
        span = spans[(f"rayflow.step {name}", handler.run_id)]
        assert span.parent is not None and span.parent.span_id == run_span.context.span_id
        assert _attrs(span)["rayflow.step"] == name and _attrs(span)["rayflow.event_in"] == event
        assert _attrs(span)["rayflow.actor"].endswith(".0") and len(_attrs(span)["rayflow.node"]) == 8
        assert _attrs(span)["rayflow.events_out"] == 1 and "rayflow.error" not in _attrs(span)
    failed = spans[("rayflow.step second", failing.run_id)]
    assert _attrs(failed)["rayflow.error"] == "RuntimeError: negative" and not failed.status.is_ok
    assert _attrs(spans[("rayflow.run Chain", failing.run_id)])["rayflow.outcome"] == "failed"


def test_no_spans_without_an_sdk_tracer_provider() -> None:
    # The API's default provider is a proxy: rayflow makes no spans and asks for no records.
    assert observer.otel_tracer() is None
