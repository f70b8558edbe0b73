"""Where each node of a workflow drawing goes: a layered layout computed here, with no drawing library.

The layer of a node is its longest path from the start event, top to bottom. Loops make the graph cyclic, so a
depth-first walk from the start event first marks the edges that go back to a node still on the walk's stack;
those back edges are left out of the layering and drawn as dashed curves on the right of the boxes they join.
The stop event always takes the last layer. Within a layer, nodes are ordered by the mean position of their
neighbours (a few sweeps down and up), then each is placed under the middle of its predecessors, pushed apart
where boxes would overlap.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rayflow.draw.graph import Edge, Graph

__all__ = ["Layout", "Route", "layout"]

#: Sizes in SVG pixels: an average 13 px sans-serif character, the space around and between boxes.
CHAR_WIDTH = 7.6
PADDING = 28.0
MIN_WIDTH = 90.0
HEIGHT = 38.0
HEIGHT_WITH_DETAIL = 52.0
GAP_X = 36.0
GAP_Y = 64.0
MARGIN = 24.0
BACK_EDGE_ROOM = 90.0  # on the right, for the curves of back edges
SWEEPS = 4


@dataclasses.dataclass(frozen=True)
class Route:
    """An edge as drawn: an SVG path, and whether it goes back (a loop)."""

    edge: Edge
    path: str
    back: bool


@dataclasses.dataclass(frozen=True)
class Layout:
    """The box ``(x, y, width, height)`` of each node id, the route of each edge, and the canvas size."""

    boxes: dict[str, tuple[float, float, float, float]]
    edges: list[Route]
    width: float
    height: float
    layers: dict[str, int]


def _back_edges(
    ids: Sequence[str], roots: Sequence[str], succ: dict[str, list[str]]
) -> tuple[set[tuple[str, str]], list[str]]:
    """The edges that close a cycle (to a node on the depth-first stack), and the nodes in reverse postorder."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    back: set[tuple[str, str]] = set()
    post: list[str] = []
    for root in [*roots, *ids]:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(succ[root]))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                state[node] = 2
                post.append(node)
            elif state.get(child) == 1:
                back.add((node, child))
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(succ[child])))
    return back, post[::-1]


def _layers(graph: Graph) -> tuple[dict[str, int], set[tuple[str, str]]]:
    ids = [n.id for n in graph.nodes]
    succ: dict[str, list[str]] = {i: [] for i in ids}
    for e in graph.edges:
        succ[e.source].append(e.target)
    roots = [n.id for n in graph.nodes if n.kind == "start"]
    back, order = _back_edges(ids, roots, succ)
    layer = dict.fromkeys(ids, 0)
    for node in order:  # a topological order of the graph without its back edges
        for child in succ[node]:
            if (node, child) not in back:
                layer[child] = max(layer[child], layer[node] + 1)
    last = max(layer.values(), default=0)
    for n in graph.nodes:
        if n.kind == "stop" and all(layer[t] <= layer[n.id] for s, t in _pairs(graph) if s == n.id):
            layer[n.id] = last
    return layer, back


def _pairs(graph: Graph) -> list[tuple[str, str]]:
    return [(e.source, e.target) for e in graph.edges]


def _order(graph: Graph, layer: dict[str, int], back: set[tuple[str, str]]) -> list[list[str]]:
    rows: list[list[str]] = [[] for _ in range(max(layer.values(), default=0) + 1)]
    for n in graph.nodes:
        rows[layer[n.id]].append(n.id)
    forward = [p for p in _pairs(graph) if p not in back]
    preds: dict[str, list[str]] = {i: [] for i in layer}
    succs: dict[str, list[str]] = {i: [] for i in layer}
    for s, t in forward:
        preds[t].append(s)
        succs[s].append(t)

    def rank(row: list[str], neighbours: dict[str, list[str]]) -> list[str]:
        where = {i: k - (len(r) - 1) / 2 for r in rows for k, i in enumerate(r)}
        mean = {i: sum(where[j] for j in neighbours[i]) / len(neighbours[i]) for i in row if neighbours[i]}
        return sorted(row, key=lambda i: mean.get(i, where[i]))

    for _ in range(SWEEPS):
        for k in range(1, len(rows)):
            rows[k] = rank(rows[k], preds)
        for k in range(len(rows) - 2, -1, -1):
            rows[k] = rank(rows[k], succs)
    return rows


def _size(graph: Graph, node_id: str) -> tuple[float, float]:
    node = graph.node(node_id)
    chars = max(len(node.label), len(node.detail) * 0.85)
    return max(MIN_WIDTH, chars * CHAR_WIDTH + PADDING), HEIGHT_WITH_DETAIL if node.detail else HEIGHT


def _place_row(row: list[str], desired: dict[str, float], widths: dict[str, float]) -> dict[str, float]:
    """Centres for ``row`` in order: each as near its desired centre as boxes that must not overlap allow."""
    centre: dict[str, float] = {}
    right = float("-inf")
    for i in row:
        centre[i] = max(desired[i], right + GAP_X + widths[i] / 2)
        right = centre[i] + widths[i] / 2
    shift = sum(desired[i] - centre[i] for i in row) / len(row)
    return {i: c + shift for i, c in centre.items()}


def _curve(x1: float, y1: float, x2: float, y2: float) -> str:
    mid = (y1 + y2) / 2
    return f"M{x1:.1f},{y1:.1f} C{x1:.1f},{mid:.1f} {x2:.1f},{mid:.1f} {x2:.1f},{y2:.1f}"


def _ports(centre: float, width: float, count: int) -> list[float]:
    step = min(14.0, width / (count + 1))
    return [centre + (k - (count - 1) / 2) * step for k in range(count)]


def layout(graph: Graph) -> Layout:
    """Boxes and routes for ``graph``, top to bottom from the start event."""
    layer, back = _layers(graph)
    rows = _order(graph, layer, back)
    sizes = {n.id: _size(graph, n.id) for n in graph.nodes}
    widths = {i: w for i, (w, _) in sizes.items()}
    preds: dict[str, list[str]] = {i: [] for i in layer}
    for s, t in _pairs(graph):
        if (s, t) not in back:
            preds[t].append(s)

    centre: dict[str, float] = {}
    for row in rows:
        desired = {i: sum(centre[p] for p in preds[i]) / len(preds[i]) if preds[i] else 0.0 for i in row}
        centre.update(_place_row(row, desired, widths))
    left = min((centre[i] - widths[i] / 2 for i in centre), default=0.0)
    boxes: dict[str, tuple[float, float, float, float]] = {}
    top = MARGIN
    for row in rows:
        height = max((sizes[i][1] for i in row), default=HEIGHT)
        for i in row:
            w, h = sizes[i]
            boxes[i] = (centre[i] - left + MARGIN - w / 2, top + (height - h) / 2, w, h)
        top += height + GAP_Y

    routes = _routes(graph, boxes, back)
    width = max((x + w for x, _, w, _ in boxes.values()), default=0.0) + MARGIN + (BACK_EDGE_ROOM if back else 0.0)
    height = top - GAP_Y + MARGIN
    return Layout(boxes, routes, width, height, layer)


def _routes(
    graph: Graph, boxes: dict[str, tuple[float, float, float, float]], back: set[tuple[str, str]]
) -> list[Route]:
    def cx(i: str) -> float:
        x, _, w, _ = boxes[i]
        return x + w / 2

    forward = [e for e in graph.edges if (e.source, e.target) not in back]
    out_port: dict[tuple[str, str], float] = {}
    in_port: dict[tuple[str, str], float] = {}
    for node in boxes:
        outs = sorted((e for e in forward if e.source == node), key=lambda e: cx(e.target))
        for e, x in zip(outs, _ports(cx(node), boxes[node][2], len(outs)), strict=True):
            out_port[(e.source, e.target)] = x
        ins = sorted((e for e in forward if e.target == node), key=lambda e: cx(e.source))
        for e, x in zip(ins, _ports(cx(node), boxes[node][2], len(ins)), strict=True):
            in_port[(e.source, e.target)] = x

    routes = []
    for rank, e in enumerate(graph.edges):
        sx, sy, sw, sh = boxes[e.source]
        tx, ty, tw, th = boxes[e.target]
        if (e.source, e.target) in back:
            # Out of the right side of the later box, round the right, into the right side of the earlier one.
            bulge = max(sx + sw, tx + tw) + 40 + 8 * (rank % 3)
            path = (
                f"M{sx + sw:.1f},{sy + sh / 2:.1f} C{bulge:.1f},{sy + sh / 2:.1f} "
                f"{bulge:.1f},{ty + th / 2:.1f} {tx + tw:.1f},{ty + th / 2:.1f}"
            )
            routes.append(Route(e, path, True))
        else:
            key = (e.source, e.target)
            routes.append(Route(e, _curve(out_port[key], sy + sh, in_port[key], ty), False))
    return routes
