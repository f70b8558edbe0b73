"""The pure parts of step statistics: the latency sketch, the books, the text table, the Chrome trace."""

from __future__ import annotations

import json
import random

from rayflow.core.stats import (
    RELATIVE_ERROR,
    Invocation,
    RunWatch,
    Sketch,
    StatsBook,
    format_stats,
)
from rayflow.core.timeline import RunSpan, chrome_trace


def _record(step: str, seconds: float, outcome: str = "done", actor: str = "", run_id: str = "r1") -> Invocation:
    return Invocation(run_id, step, actor or f"{step}.0", "abcd1234", 100.0, seconds, "StartEvent", 1, None, outcome)


def test_the_sketch_quantiles_are_within_its_relative_error_and_ordered() -> None:
    values = [n / 1000 for n in range(1, 1001)]  # 1 ms .. 1 s
    random.Random(7).shuffle(values)
    sketch = Sketch()
    for value in values:
        sketch.add(value)
    p50, p95, p99, top = sketch.quantiles((0.5, 0.95, 0.99, 1.0))
    ordered = sorted(values)
    for got, q in ((p50, 0.5), (p95, 0.95), (p99, 0.99)):
        exact = ordered[round(q * (len(values) - 1))]
        assert got is not None and abs(got - exact) <= 2 * RELATIVE_ERROR * exact + 1e-3
    assert p50 is not None and p95 is not None and p99 is not None and top is not None
    assert p50 <= p95 <= p99 <= top <= 1.0
    assert Sketch().quantiles((0.5,)) == [None]


def test_the_sketch_stays_small_and_merges_as_if_one() -> None:
    rng = random.Random(3)
    one, left, right = Sketch(), Sketch(), Sketch()
    for n in range(50_000):
        value = rng.lognormvariate(-5, 3)  # from microseconds to minutes
        one.add(value)
        (left if n % 2 else right).add(value)
    assert len(one.buckets) < 1800  # bounded by the range of latencies, not their number
    left.merge(right)
    assert left.buckets == one.buckets and left.count == one.count == 50_000
    assert left.quantiles((0.5, 0.99)) == one.quantiles((0.5, 0.99))


def test_a_book_counts_invocations_retries_failures_and_busy_time_per_actor() -> None:
    book = StatsBook(runs=1)
    for record in (
        _record("a", 0.01),
        _record("b", 0.02, "retry", actor="b.0"),
        _record("b", 0.03, "retry", actor="b.1"),
        _record("b", 0.04, "failed", actor="b.1"),
    ):
        book.add(record)
    stats = book.snapshot(["a", "b", "c"], {"c": 5}, run_id="r1")
    assert list(stats.steps) == ["a", "b", "c"]
    b = stats["b"]
    assert (b.events_in, b.events_out, b.retries, b.failures, b.queued) == (3, 3, 2, 1, 0)
    assert b.busy_s == {"b.0": 0.02, "b.1": 0.07}
    assert b.max_s == 0.04 and b.p50_s is not None and b.p99_s is not None and b.p50_s <= b.p99_s <= 0.04
    c = stats["c"]
    assert (c.events_in, c.queued, c.p50_s, c.busy_s) == (0, 5, None, {})
    whole = StatsBook()
    whole.merge(book)
    whole.merge(book)
    assert whole.runs == 2 and whole.snapshot()["b"].retries == 4

    data = json.loads(json.dumps(stats.to_dict()))
    assert data["run_id"] == "r1" and data["steps"]["b"]["busy_s"] == {"b.0": 0.02, "b.1": 0.07}
    table = format_stats(stats).splitlines()
    assert table[0].split()[:6] == ["step", "in", "out", "queued", "retries", "failed"]
    assert table[2].split()[:6] == ["b", "3", "3", "0", "2", "1"] and table[2].endswith("(2)")
    assert table[3].split()[:4] == ["c", "0", "0", "5"] and "-" in table[3].split()


def test_a_run_watch_forwards_records_up_to_its_bound_and_counts_all() -> None:
    watch = RunWatch(StatsBook(), forward=3)
    assert len(watch.take([_record("a", 0.1)] * 2)) == 2
    assert len(watch.take([_record("a", 0.1)] * 2)) == 1
    assert watch.take([_record("a", 0.1)]) == []
    assert (watch.dropped, watch.book.steps["a"].events_in) == (2, 5)
    every = RunWatch(StatsBook(), forward=-1)
    assert len(every.take([_record("a", 0.1)] * 4)) == 4


def test_the_chrome_trace_has_a_slice_per_invocation_on_a_track_per_actor() -> None:
    records = [
        Invocation("r1", "a", "a.0", "node0001", 10.0, 0.5, "StartEvent", 2, "X", "done"),
        Invocation("r1", "b", "b.0", "node0002", 10.5, 0.25, "X", 0, None, "failed", "ValueError: no"),
        Invocation("r1", "a", "a.0", "node0001", 11.0, 0.5, "X", 1, "StopEvent", "done"),
    ]
    trace = json.loads(json.dumps(chrome_trace(RunSpan("r1", "Flow", 9.5, 12.0, "done"), records)))
    slices = [e for e in trace["traceEvents"] if e["ph"] == "X" and e["cat"] == "step"]
    assert [(s["name"], s["ts"], s["dur"]) for s in slices] == [
        ("a", 10e6, 0.5e6),
        ("b", 10.5e6, 0.25e6),
        ("a", 11e6, 0.5e6),
    ]
    assert slices[0]["pid"] == slices[2]["pid"] != slices[1]["pid"] and slices[0]["tid"] != slices[1]["tid"]
    assert slices[1]["args"]["error"] == "ValueError: no" and slices[0]["args"]["emitted"] == 2
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "thread_name"}
    assert names[(slices[0]["pid"], slices[0]["tid"])] == "a.0"
    processes = {e["pid"]: e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "process_name"}
    assert processes[slices[1]["pid"]] == "node node0002"
    (run,) = [e for e in trace["traceEvents"] if e.get("cat") == "run"]
    assert (run["ts"], run["dur"], run["args"]["outcome"]) == (9.5e6, 2.5e6, "done")
