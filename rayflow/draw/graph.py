"""A workflow as a plain graph: its compiled spec read into nodes and edges, the data every drawing is made from.

``graph_of(cls)`` reads only ``WorkflowSpec.of(cls)``: no Ray, no actor. The graph has one node per step and one
per event type the steps accept or return; an edge runs from an event to each step that receives it (the spec's
own delivery rule, so ``accept_event_subclasses`` counts) and from a step to each event it returns. Events for the
caller (``InputRequiredEvent`` out, ``HumanResponseEvent`` back) connect to a "caller" node, and the
``StepFailedEvent`` of a catch_error handler comes from each step it covers.
"""

from __future__ import annotations

import dataclasses
import re

from rayflow.events import HumanResponseEvent, InputRequiredEvent, StepFailedEvent
from rayflow.spec import WorkflowSpec, is_event_type

__all__ = ["CALLER", "KINDS", "Edge", "Graph", "Node", "graph_of"]

#: Node kinds: a step, a catch_error handler, an event, the start event, the stop event, the caller of a run.
KINDS = ("step", "catch_error", "event", "start", "stop", "caller")
CALLER = "caller"


@dataclasses.dataclass(frozen=True)
class Node:
    """One box of the drawing; ``detail`` is the second line of its label ("" for none)."""

    id: str
    label: str
    kind: str
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class Edge:
    """An arrow from ``source`` to ``target`` (node ids)."""

    source: str
    target: str


@dataclasses.dataclass(frozen=True)
class Graph:
    """A workflow as nodes (steps first, in definition order, then events) and edges."""

    name: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]

    def node(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.id == node_id)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def _step_id(name: str) -> str:
    return f"step_{_slug(name)}"


def graph_of(workflow_class: type) -> Graph:
    """The graph of ``workflow_class`` (``WorkflowConfigurationError`` when the class does not compile)."""
    spec = WorkflowSpec.of(workflow_class)
    nodes: list[Node] = []
    for name, step_spec in spec.steps.items():
        config = step_spec.config
        details = []
        if config.num_workers > 1:
            details.append(f"num_workers={config.num_workers}")
        if config.role == "catch_error":
            covers = ", ".join(config.catch_error_for_steps) if config.catch_error_for_steps else "any step"
            details.append(f"catch_error: {covers}")
        kind = "catch_error" if config.role == "catch_error" else "step"
        nodes.append(Node(_step_id(name), name, kind, "; ".join(details)))

    events = spec.events
    event_ids = {t: f"event_{_slug(spec.event_keys[t])}" for t in events}
    for t in events:
        kind = "start" if t is spec.start_event else "stop" if t is spec.stop_event else "event"
        nodes.append(Node(event_ids[t], t.__name__, kind))

    edges: list[Edge] = []
    for name, step_spec in spec.steps.items():
        step_id = _step_id(name)
        edges.extend(Edge(event_ids[t], step_id) for t in events if spec.accepts(name, t))
        edges.extend(Edge(step_id, event_ids[t]) for t in step_spec.config.return_types if is_event_type(t))

    asks = [t for t in events if issubclass(t, InputRequiredEvent)]
    answers = [t for t in events if issubclass(t, HumanResponseEvent)]
    if asks or answers:
        nodes.append(Node(CALLER, "caller", "caller"))
        edges.extend(Edge(event_ids[t], CALLER) for t in asks)
        edges.extend(Edge(CALLER, event_ids[t]) for t in answers)
    if StepFailedEvent in event_ids:
        # A StepFailedEvent comes from the runtime when a step spends its retries: drawn from each covered step.
        plain = [n for n, s in spec.steps.items() if s.config.role != "catch_error"]
        for handler in spec.steps.values():
            if handler.config.role == "catch_error":
                covered = handler.config.catch_error_for_steps or plain
                edges.extend(Edge(_step_id(s), event_ids[StepFailedEvent]) for s in covered if s in spec.steps)
    return Graph(spec.name, tuple(nodes), tuple(dict.fromkeys(edges)))
