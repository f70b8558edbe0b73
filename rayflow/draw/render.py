"""A workflow graph as text and pictures: Mermaid and DOT for those tools, SVG and an HTML page drawn by us.

``to_svg`` places the nodes with ``rayflow.draw.layout``; ``to_html`` wraps that SVG in a page that needs nothing
but itself: no script, no stylesheet, font or image from anywhere else.
"""

from __future__ import annotations

import html

from rayflow.draw.graph import KINDS, Graph, Node
from rayflow.draw.layout import layout

__all__ = ["to_dot", "to_html", "to_mermaid", "to_svg"]


# -- Mermaid ------------------------------------------------------------------------------------------------


def _mermaid_label(node: Node) -> str:
    text = node.label if not node.detail else f"{node.label}<br/>{node.detail}"
    return '"' + text.replace('"', "#quot;") + '"'


_MERMAID_SHAPES = {
    "step": "[{}]",
    "catch_error": "[/{}/]",
    "event": "([{}])",
    "start": "(({}))",
    "stop": "((({})))",
    "caller": "{{{{{}}}}}",
}
_MERMAID_CLASSES = {
    "step": "fill:#e8f0fe,stroke:#1a56db",
    "catch_error": "fill:#fde8e8,stroke:#c81e1e",
    "event": "fill:#f3f4f6,stroke:#6b7280",
    "start": "fill:#def7ec,stroke:#057a55",
    "stop": "fill:#fdf6b2,stroke:#8e4b10",
    "caller": "fill:#edebfe,stroke:#5521b5",
}


def to_mermaid(graph: Graph) -> str:
    """A Mermaid ``flowchart`` of ``graph`` (labels quoted)."""
    lines = ["flowchart TD"]
    lines += [f"    {n.id}{_MERMAID_SHAPES[n.kind].format(_mermaid_label(n))}" for n in graph.nodes]
    lines += [f"    {e.source} --> {e.target}" for e in graph.edges]
    lines += [f"    classDef {kind} {style}" for kind, style in _MERMAID_CLASSES.items()]
    for kind in KINDS:
        members = [n.id for n in graph.nodes if n.kind == kind]
        if members:
            lines.append(f"    class {','.join(members)} {kind}")
    return "\n".join(lines) + "\n"


# -- DOT ----------------------------------------------------------------------------------------------------


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


_DOT_STYLES = {
    "step": 'shape=box, style=filled, fillcolor="#e8f0fe", color="#1a56db"',
    "catch_error": 'shape=box, style="filled,dashed", fillcolor="#fde8e8", color="#c81e1e"',
    "event": 'shape=box, style="rounded,filled", fillcolor="#f3f4f6", color="#6b7280"',
    "start": 'shape=ellipse, style=filled, fillcolor="#def7ec", color="#057a55"',
    "stop": 'shape=doublecircle, style=filled, fillcolor="#fdf6b2", color="#8e4b10"',
    "caller": 'shape=hexagon, style=filled, fillcolor="#edebfe", color="#5521b5"',
}


def to_dot(graph: Graph) -> str:
    """A Graphviz ``digraph`` of ``graph`` (ids and labels quoted)."""
    lines = [f"digraph {_dot_quote(graph.name)} {{", "    rankdir=TB;", '    node [fontname="Helvetica"];']
    for n in graph.nodes:
        label = n.label if not n.detail else f"{n.label}\n{n.detail}"
        lines.append(f"    {_dot_quote(n.id)} [label={_dot_quote(label)}, {_DOT_STYLES[n.kind]}];")
    lines += [f"    {_dot_quote(e.source)} -> {_dot_quote(e.target)};" for e in graph.edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- SVG and HTML -------------------------------------------------------------------------------------------

_SVG_STYLE = """
.node text { font: 13px sans-serif; text-anchor: middle; dominant-baseline: central; fill: #111827; }
.node text.detail { font-size: 11px; fill: #4b5563; }
.node.step rect { fill: #e8f0fe; stroke: #1a56db; }
.node.catch_error rect { fill: #fde8e8; stroke: #c81e1e; stroke-dasharray: 5 3; }
.node.event rect { fill: #f3f4f6; stroke: #6b7280; }
.node.start rect { fill: #def7ec; stroke: #057a55; stroke-width: 2; }
.node.stop rect { fill: #fdf6b2; stroke: #8e4b10; stroke-width: 2; }
.node.caller rect { fill: #edebfe; stroke: #5521b5; }
.node rect { stroke-width: 1.5; }
.edge { fill: none; stroke-linejoin: round; stroke: #6b7280; stroke-width: 1.4; }
.edge.back { stroke-dasharray: 6 4; }
"""


def _svg_node(node: Node, box: tuple[float, float, float, float]) -> str:
    x, y, w, h = box
    radius = 4 if node.kind in ("step", "catch_error") else h / 2
    label_y = y + h / 2 - (8 if node.detail else 0)
    parts = [
        f'<g class="node {node.kind}" id="{html.escape(node.id)}">',
        f"<title>{html.escape(node.label)} ({node.kind})</title>",
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{radius:.1f}"/>',
        f'<text x="{x + w / 2:.1f}" y="{label_y:.1f}">{html.escape(node.label)}</text>',
    ]
    if node.detail:
        parts.append(
            f'<text class="detail" x="{x + w / 2:.1f}" y="{label_y + 17:.1f}">{html.escape(node.detail)}</text>'
        )
    parts.append("</g>")
    return "".join(parts)


def to_svg(graph: Graph) -> str:
    """A standalone SVG drawing of ``graph``: one ``<g class="node ...">`` per node, one ``<path>`` per edge."""
    placed = layout(graph)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{placed.width:.0f}" height="{placed.height:.0f}" '
        f'viewBox="0 0 {placed.width:.0f} {placed.height:.0f}" role="img" '
        f'aria-label="workflow {html.escape(graph.name)}">',
        f"<style>{_SVG_STYLE}</style>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#6b7280"/></marker></defs>',
    ]
    for route in placed.edges:
        css = "edge back" if route.back else "edge"
        out.append(
            f'<path class="{css}" data-source="{html.escape(route.edge.source)}" '
            f'data-target="{html.escape(route.edge.target)}" d="{route.path}" marker-end="url(#arrow)"/>'
        )
    out += [_svg_node(n, placed.boxes[n.id]) for n in graph.nodes]
    out.append("</svg>")
    return "\n".join(out) + "\n"


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 24px; color: #111827; background: #fff; }}
h1 {{ font-size: 20px; margin: 0 0 4px; }}
p.legend {{ margin: 0 0 16px; font-size: 13px; color: #4b5563; }}
p.legend span {{ display: inline-block; padding: 1px 8px; margin-right: 6px; border: 1.5px solid; border-radius: 4px; }}
.drawing {{ overflow: auto; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="legend">
<span style="background:#e8f0fe;border-color:#1a56db">step</span>
<span style="background:#fde8e8;border-color:#c81e1e;border-style:dashed">catch_error</span>
<span style="background:#f3f4f6;border-color:#6b7280;border-radius:10px">event</span>
<span style="background:#def7ec;border-color:#057a55;border-radius:10px">start</span>
<span style="background:#fdf6b2;border-color:#8e4b10;border-radius:10px">stop</span>
<span style="background:#edebfe;border-color:#5521b5;border-radius:10px">caller</span>
dashed arrows go back (loops)
</p>
<div class="drawing">
{svg}</div>
</body>
</html>
"""


def to_html(graph: Graph) -> str:
    """A self-contained HTML page holding ``to_svg(graph)`` (renders offline; no script)."""
    # Inline SVG in HTML needs no namespace declaration; without it the page names no URL at all.
    svg = to_svg(graph).replace(' xmlns="http://www.w3.org/2000/svg"', "", 1)
    return _PAGE.format(title=html.escape(f"Workflow {graph.name}"), svg=svg)
