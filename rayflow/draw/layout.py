"""Where each node of a workflow drawing goes: a layered layout computed here, with no drawing library.

The layer of a node is its longest path from the start event, top to bottom. Loops make the graph cyclic, so a
depth-first walk from the start event first marks the edges that go back to a node still on the walk's stack;
those back edges are left out of the layering and drawn dashed, round the right of the drawing, through the gaps
between rows. An edge across several layers passes through a virtual point in each, placed like a small node, so
it bends round the boxes in between.
The stop event always takes the last layer. Within a layer, nodes are ordered by the mean position of their
neighbours (a few sweeps down and up), then each is placed under the middle of its predecessors, pushed apart
where boxes would overlap.
"""

from __future__ import annotations

import dataclasses
import itertools
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
POINT = "\0point:"  # the id prefix of the virtual points long edges pass through
POINT_WIDTH = 12.0


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


def _chains(
    graph: Graph, layer: dict[str, int], back: set[tuple[str, str]]
) -> tuple[dict[tuple[str, str], list[str]], dict[str, int]]:
    """For each forward edge, the virtual points it passes through, one per layer it crosses (none for an edge
    to the next layer). Laid out like small nodes, they keep long edges off the boxes in between."""
    chains: dict[tuple[str, str], list[str]] = {}
    points: dict[str, int] = {}
    for k, (s, t) in enumerate(_pairs(graph)):
        if (s, t) in back:
            continue
        chain = [f"{POINT}{k}.{row}" for row in range(layer[s] + 1, layer[t])]
        points.update((p, row) for p, row in zip(chain, range(layer[s] + 1, layer[t]), strict=True))
        chains[(s, t)] = chain
    return chains, points


def _order(graph: Graph, layer: dict[str, int], segments: list[tuple[str, str]]) -> list[list[str]]:
    rows: list[list[str]] = [[] for _ in range(max(layer.values(), default=0) + 1)]
    for i, row in layer.items():
        rows[row].append(i)
    preds: dict[str, list[str]] = {i: [] for i in layer}
    succs: dict[str, list[str]] = {i: [] for i in layer}
    for s, t in segments:
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
    if node_id.startswith(POINT):
        return POINT_WIDTH, 0.0
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


def _ports(centre: float, width: float, count: int) -> list[float]:
    step = min(14.0, width / (count + 1))
    return [centre + (k - (count - 1) / 2) * step for k in range(count)]


Box = tuple[float, float, float, float]


def layout(graph: Graph) -> Layout:
    """Boxes and routes for ``graph``, top to bottom from the start event."""
    layer, back = _layers(graph)
    chains, points = _chains(graph, layer, back)
    segments = [pair for (s, t), chain in chains.items() for pair in itertools.pairwise([s, *chain, t])]
    rows = _order(graph, {**layer, **points}, segments)
    sizes = {i: _size(graph, i) for row in rows for i in row}
    widths = {i: w for i, (w, _) in sizes.items()}
    preds: dict[str, list[str]] = {i: [] for i in sizes}
    for s, t in segments:
        preds[t].append(s)

    centre: dict[str, float] = {}
    for row in rows:
        desired = {i: sum(centre[p] for p in preds[i]) / len(preds[i]) if preds[i] else 0.0 for i in row}
        centre.update(_place_row(row, desired, widths))
    left = min((centre[i] - widths[i] / 2 for i in centre), default=0.0)
    boxes: dict[str, Box] = {}
    top = MARGIN
    for row in rows:
        height = max((sizes[i][1] for i in row), default=HEIGHT)
        for i in row:
            w, h = sizes[i]
            h = h or height  # a virtual point spans its whole row
            boxes[i] = (centre[i] - left + MARGIN - w / 2, top + (height - h) / 2, w, h)
        top += height + GAP_Y

    real = {i: b for i, b in boxes.items() if not i.startswith(POINT)}
    right = max((x + w for x, _, w, _ in real.values()), default=0.0)
    routes = _routes(graph, boxes, chains, right)
    width = right + MARGIN + (BACK_EDGE_ROOM if back else 0.0)
    return Layout(real, routes, width, top - GAP_Y + MARGIN, layer)


def _routes(graph: Graph, boxes: dict[str, Box], chains: dict[tuple[str, str], list[str]], right: float) -> list[Route]:
    def cx(i: str) -> float:
        x, _, w, _ = boxes[i]
        return x + w / 2

    out_port: dict[tuple[str, str], float] = {}
    in_port: dict[tuple[str, str], float] = {}
    for node in boxes:
        outs = sorted((k for k in chains if k[0] == node), key=lambda k: cx([*chains[k], k[1]][0]))
        out_port.update(zip(outs, _ports(cx(node), boxes[node][2], len(outs)), strict=True))
        ins = sorted((k for k in chains if k[1] == node), key=lambda k: cx([k[0], *chains[k]][-1]))
        in_port.update(zip(ins, _ports(cx(node), boxes[node][2], len(ins)), strict=True))

    routes = []
    for rank, e in enumerate(graph.edges):
        key = (e.source, e.target)
        sx, sy, sw, sh = boxes[e.source]
        tx, ty, tw, _ = boxes[e.target]
        if key not in chains:
            # A loop: up out of the later box, along the gap above its row to the right of everything, up, and
            # along the gap above the earlier box into its top: it crosses edges, never a box.
            bulge = right + 24 + 10 * (rank % 4)
            x1, x2 = sx + sw * 0.8, tx + tw * 0.8
            y1, y2 = sy - GAP_Y / 2 + 6, ty - GAP_Y / 2 - 6
            corners = [(x1, sy), (x1, y1), (bulge, y1), (bulge, y2), (x2, y2), (x2, ty)]
            path = "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in corners)
            routes.append(Route(e, path, True))
            continue
        x, y = out_port[key], sy + sh
        path = f"M{x:.1f},{y:.1f}"
        for point in chains[key]:
            px, py, pw, ph = boxes[point]
            path += _curve(x, y, px + pw / 2, py) + f" L{px + pw / 2:.1f},{py + ph:.1f}"
            x, y = px + pw / 2, py + ph
        routes.append(Route(e, path + _curve(x, y, in_port[key], ty), False))
    return routes


def _curve(x1: float, y1: float, x2: float, y2: float) -> str:
    mid = (y1 + y2) / 2
    return f" C{x1:.1f},{mid:.1f} {x2:.1f},{mid:.1f} {x2:.1f},{y2:.1f}"
