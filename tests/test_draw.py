"""``rayflow.draw``: the graph a workflow class compiles to, and that graph as Mermaid, DOT, SVG and HTML.

Everything here reads classes only; no Ray is started.
"""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET

from rayflow import (
    Context,
    Event,
    HumanResponseEvent,
    InputRequiredEvent,
    StartEvent,
    StepFailedEvent,
    StopEvent,
    Workflow,
    catch_error,
    step,
)
from rayflow.draw import Edge, Graph, graph_of, to_dot, to_html, to_mermaid, to_svg
from rayflow.draw.layout import layout

SVG = "{http://www.w3.org/2000/svg}"


class Left(Event):
    pass


class Right(Event):
    pass


class Branching(Workflow):
    @step
    async def choose(self, ev: StartEvent) -> Left | Right:
        return Left()

    @step(num_workers=2)
    async def go_left(self, ev: Left) -> StopEvent:
        return StopEvent()

    @step(num_workers=1)
    async def go_right(self, ev: Right) -> StopEvent:
        return StopEvent()


class Again(Event):
    n: int


class Looping(Workflow):
    @step
    async def begin(self, ev: StartEvent) -> Again:
        return Again(n=0)

    @step
    async def refine(self, ev: Again) -> Again | StopEvent:
        return StopEvent() if ev.n > 2 else Again(n=ev.n + 1)


class Base(Event):
    pass


class Derived(Base):
    pass


class Subclasses(Workflow):
    @step
    async def begin(self, ev: StartEvent) -> Derived:
        return Derived()

    @step(accept_event_subclasses=True)
    async def any_base(self, ev: Base) -> StopEvent:
        return StopEvent()


class Fragile(Workflow):
    @step
    async def work(self, ev: StartEvent) -> StopEvent:
        raise RuntimeError("boom")

    @catch_error(for_steps=["work"])
    async def recover(self, ev: StepFailedEvent) -> StopEvent:
        return StopEvent(result="recovered")


class Ask(InputRequiredEvent):
    pass


class Answer(HumanResponseEvent):
    pass


class Asking(Workflow):
    @step
    async def ask(self, ev: StartEvent) -> Ask:
        return Ask()

    @step
    async def hear(self, ctx: Context, ev: Answer) -> StopEvent:
        return StopEvent()


def named(graph: Graph) -> set[tuple[str, str]]:
    """The edges as (label, label) pairs."""
    label = {n.id: n.label for n in graph.nodes}
    return {(label[e.source], label[e.target]) for e in graph.edges}


def test_a_branching_workflow_has_a_node_per_step_and_event_and_edges_both_ways():
    graph = graph_of(Branching)
    kinds = {n.label: n.kind for n in graph.nodes}
    assert kinds == {
        "choose": "step",
        "go_left": "step",
        "go_right": "step",
        "StartEvent": "start",
        "Left": "event",
        "Right": "event",
        "StopEvent": "stop",
    }
    assert named(graph) == {
        ("StartEvent", "choose"),
        ("choose", "Left"),
        ("choose", "Right"),
        ("Left", "go_left"),
        ("Right", "go_right"),
        ("go_left", "StopEvent"),
        ("go_right", "StopEvent"),
    }


def test_a_step_shows_num_workers_only_above_one():
    details = {n.label: n.detail for n in graph_of(Branching).nodes}
    assert details["go_left"] == "num_workers=2"
    assert details["go_right"] == ""


def test_a_loop_is_an_edge_back_drawn_apart_and_left_out_of_the_layers():
    graph = graph_of(Looping)
    assert ("Again", "refine") in named(graph) and ("refine", "Again") in named(graph)
    placed = layout(graph)
    ids = {n.label: n.id for n in graph.nodes}
    layer = {label: placed.layers[i] for label, i in ids.items()}
    assert layer == {"StartEvent": 0, "begin": 1, "Again": 2, "refine": 3, "StopEvent": 4}
    back = [r.edge for r in placed.edges if r.back]
    assert back == [Edge(ids["refine"], ids["Again"])]


def test_a_step_accepting_subclasses_receives_the_subclass_event():
    assert ("Derived", "any_base") in named(graph_of(Subclasses))


def test_a_catch_error_handler_is_marked_and_fed_by_the_steps_it_covers():
    graph = graph_of(Fragile)
    recover = next(n for n in graph.nodes if n.label == "recover")
    assert recover.kind == "catch_error"
    assert "catch_error: work" in recover.detail
    assert {("work", "StepFailedEvent"), ("StepFailedEvent", "recover")} <= named(graph)


def test_input_for_the_caller_goes_out_to_it_and_the_answer_comes_back():
    graph = graph_of(Asking)
    assert {("ask", "Ask"), ("Ask", "caller"), ("caller", "Answer"), ("Answer", "hear")} <= named(graph)


def test_mermaid_text_is_a_flowchart_with_quoted_labels_and_styled_start_and_stop():
    text = to_mermaid(graph_of(Branching))
    assert text.startswith("flowchart TD\n")
    assert 'step_go_left["go_left<br/>num_workers=2"]' in text
    assert re.search(r'event_\w*StartEvent\(\("StartEvent"\)\)', text)
    assert re.search(r"\w*_Left --> step_go_left", text)
    assert "classDef start" in text and "classDef stop" in text
    # every node line quotes its label
    for line in text.splitlines()[1:8]:
        assert re.fullmatch(r'    \w+[\[\(\{/]+"[^"]*"[\]\)\}/]+', line), line


def test_dot_text_quotes_ids_and_labels():
    text = to_dot(graph_of(Branching))
    assert text.startswith('digraph "Branching" {')
    assert '"step_go_left" [label="go_left\\nnum_workers=2", shape=box' in text
    assert re.search(r'"event_\w*_Left" -> "step_go_left";', text)
    assert text.rstrip().endswith("}")


def test_the_svg_parses_with_one_group_per_node_and_a_path_per_edge():
    for workflow in (Branching, Looping, Subclasses, Fragile, Asking):
        graph = graph_of(workflow)
        root = ET.fromstring(to_svg(graph))
        groups = [g for g in root.iter(f"{SVG}g") if "node" in g.get("class", "").split()]
        assert sorted(g.get("id") for g in groups) == sorted(n.id for n in graph.nodes)
        assert len([p for p in root.iter(f"{SVG}path") if "edge" in p.get("class", "")]) == len(graph.edges)


def test_boxes_do_not_overlap_and_stay_on_the_canvas():
    for workflow in (Branching, Looping, Subclasses, Fragile, Asking):
        placed = layout(graph_of(workflow))
        boxes = list(placed.boxes.values())
        for x, y, w, h in boxes:
            assert x >= 0 and y >= 0 and x + w <= placed.width and y + h <= placed.height
        for k, (x1, y1, w1, h1) in enumerate(boxes):
            for x2, y2, w2, h2 in boxes[k + 1 :]:
                assert x1 + w1 <= x2 or x2 + w2 <= x1 or y1 + h1 <= y2 or y2 + h2 <= y1


def test_the_html_page_holds_the_svg_and_loads_nothing_from_elsewhere():
    page = to_html(graph_of(Branching))
    assert page.startswith("<!DOCTYPE html>")
    assert "<svg" in page and "</svg>" in page and 'id="step_go_left"' in page
    assert "<script" not in page
    assert "http" not in page
    assert not re.search(r"(src|href)\s*=", page)


class Long(Workflow):
    """StartEvent fans out to a short and a long branch; the long edge from ``begin`` skips four layers."""

    @step
    async def begin(self, ev: StartEvent) -> Left | Right | StopEvent:
        return Left()

    @step
    async def one(self, ev: Left) -> Again:
        return Again(n=1)

    @step
    async def two(self, ev: Again) -> Right:
        return Right()

    @step
    async def three(self, ev: Right) -> StopEvent:
        return StopEvent()


def test_an_edge_across_layers_bends_round_the_boxes_in_between():
    graph = graph_of(Long)
    placed = layout(graph)
    checked = 0
    for route in placed.edges:
        if route.back:
            continue
        numbers = [float(v) for v in re.findall(r"-?\d+\.\d+", route.path)]
        points = list(zip(numbers[::2], numbers[1::2], strict=True))
        # each straight run through a row sits on a virtual point: its middle must be inside no box
        runs = [(a, b) for a, b in itertools.pairwise(points) if a[0] == b[0] and b[1] > a[1]]
        for (x, y1), (_, y2) in runs:
            checked += 1
            y = (y1 + y2) / 2
            for bx, by, bw, bh in placed.boxes.values():
                assert not (bx < x < bx + bw and by < y < by + bh), (route.edge, x, y)
    assert checked >= 4  # the long edge's runs through the layers it crosses, at least
