"""``rayflow draw``'s library: a workflow class as a graph (``graph``), laid out (``layout``), and written as
Mermaid, DOT, SVG or a self-contained HTML page (``render``). Reads the compiled spec only; starts no Ray."""

from rayflow.draw.graph import Edge, Graph, Node, graph_of
from rayflow.draw.render import to_dot, to_html, to_mermaid, to_svg

__all__ = ["Edge", "Graph", "Node", "graph_of", "to_dot", "to_html", "to_mermaid", "to_svg"]
