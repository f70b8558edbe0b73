"""Collect buffers: LlamaIndex's semantics at O(1) amortized cost per event."""

from __future__ import annotations

from rayflow.core.collect import CollectBuffers


def test_returns_none_until_complete_then_events_in_expected_order():
    buffers = CollectBuffers()
    expected = ["A", "B", "B"]
    assert buffers.collect("k", "b1", "B", expected) is None
    assert buffers.collect("k", "a1", "A", expected) is None
    assert buffers.collect("k", "b2", "B", expected) == ["a1", "b1", "b2"]
    assert buffers.collect("k", "b3", "B", expected) is None  # the buffer was emptied


def test_types_the_list_does_not_need_are_dropped():
    buffers = CollectBuffers()
    assert buffers.collect("k", "c", "C", ["A"]) is None
    assert buffers.collect("k", "a2", "A", ["A", "A"]) is None
    assert buffers.collect("k", "a3", "A", ["A", "A"]) == ["a2", "a3"]


def test_empty_expected_list_returns_empty_list():
    assert CollectBuffers().collect("k", "x", "X", []) == []


def test_buffers_are_independent_by_key_and_dropped_by_run():
    buffers = CollectBuffers()
    buffers.collect(("r1", "s", "default"), 1, "A", ["A", "A"])
    buffers.collect(("r2", "s", "default"), 2, "A", ["A", "A"])
    buffers.drop_run("r1")
    assert buffers.collect(("r1", "s", "default"), 3, "A", ["A", "A"]) is None
    assert buffers.collect(("r2", "s", "default"), 4, "A", ["A", "A"]) == [2, 4]


def test_fingerprint_collision_never_releases_a_wrong_list():
    buffers = CollectBuffers()
    same_fingerprint_a = ["A", "A", "B", "A", "A"]
    same_fingerprint_b = ["A", "B", "B", "B", "A"]  # same length, first, middle and last
    buffers.collect("warm", 0, "A", same_fingerprint_a)
    for i, kind in enumerate(["A", "B", "B", "B"]):
        assert buffers.collect("k", i, kind, same_fingerprint_b) is None
    assert buffers.collect("k", 9, "A", same_fingerprint_b) == [0, 1, 2, 3, 9]


def test_expected_list_is_counted_once_per_release_not_per_event(monkeypatch):
    import rayflow.core.collect as collect

    counted = []
    real = collect.Counter

    def counting(items):
        counted.append(len(items))
        return real(items)

    monkeypatch.setattr(collect, "Counter", counting)
    buffers = CollectBuffers()
    n = 20_000
    expected = ["R"] * n
    for i in range(n):
        out = buffers.collect("k", i, "R", expected)
    assert out == list(range(n))
    assert len(counted) == 2  # the shape once, the exact check at release once: O(1) per event


def test_what_a_buffer_still_lacks_is_listed_by_run():
    buffers = CollectBuffers()
    buffers.collect(("r1", "merge", "default"), "a1", "A", ["A", "A", "A", "B"])
    buffers.collect(("r1", "merge", "default"), "b1", "B", ["A", "A", "A", "B"])
    buffers.collect(("r2", "merge", "default"), "a9", "A", ["A", "A"])
    assert buffers.missing("r1") == [(("r1", "merge", "default"), [("A", 1, 3)])]
    buffers.drop_run("r1")
    assert buffers.missing("r1") == []
