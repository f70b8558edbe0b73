"""Where Ray puts rayflow's actors: what a step actor reserves (CPUs, GPUs) and how Ray picks among the nodes that
have it; the nodes of an actor set's dispatcher and context actor.

Ray's own placement (``DEFAULT``) packs actors that reserve CPUs (``RAYFLOW_STEP_NUM_CPUS=1``, as on a cluster) on
the node that starts them, the dispatcher's, until half of its CPUs are taken: a pool that grows on a cluster of
large nodes would run on one node. Step pools are therefore spread (``RAYFLOW_STEP_SCHEDULING``, default
``SPREAD``): Ray hands each new actor to the next node that can hold it. (Actors that reserve nothing, the default
on one machine, Ray puts on any node.) A step with ``num_gpus`` goes only to nodes that declare GPUs, whatever the
strategy. On one node both strategies place alike.

An actor set's dispatcher and context actor hold every run of their instance: they stay on the node of the process
that starts them (:func:`here`), the dispatcher beside the driver and the context actor beside the dispatcher.
Ray's own placement would put these actors, which reserve nothing, on any node, and losing that node would fail
every run of the instance; the driver's node is one the program cannot lose anyway. The affinity is hard: the node
is alive (the caller runs there) and can take actors that reserve nothing, and a soft one did not keep them there
(Ray 2.60 put 3 of 4 zero-CPU actors with a soft affinity on other nodes of a 3-node ``Cluster``). Step actors may
go anywhere: a lost one is replaced and its events delivered again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

__all__ = ["SCHEDULING_STRATEGIES", "Placement", "here"]

#: Ray's scheduling strategies by name that rayflow accepts for step actors: ``SPREAD`` over the nodes, or Ray's
#: ``DEFAULT`` (Ray's own: pack on the creating node until half its CPUs are taken).
SCHEDULING_STRATEGIES = ("SPREAD", "DEFAULT")


@dataclass(frozen=True)
class Placement:
    """What one step actor reserves and how Ray places it."""

    num_cpus: float
    num_gpus: float
    #: One of ``SCHEDULING_STRATEGIES``.
    scheduling: str

    def __post_init__(self) -> None:
        if self.scheduling not in SCHEDULING_STRATEGIES:
            raise ValueError(
                f"RAYFLOW_STEP_SCHEDULING must be one of {', '.join(SCHEDULING_STRATEGIES)} (got {self.scheduling!r})"
            )


def here() -> Any:
    """The scheduling strategy that puts an actor on the calling process's node."""
    return NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
