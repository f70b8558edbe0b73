"""Where Ray puts a step actor: what it reserves (CPUs, GPUs) and how Ray picks among the nodes that have it.

Step actors reserve no CPU by default (``RAYFLOW_STEP_NUM_CPUS``), so Ray's default placement would put every one
of them on one node: the node of the dispatcher that starts them, which is never full of a resource no actor asks
for. Step pools are therefore spread (``RAYFLOW_STEP_SCHEDULING``, default ``SPREAD``): Ray hands each new actor to
the next node that can hold it, so a pool that grows on a cluster runs on several nodes. A step with ``num_gpus``
goes only to nodes that declare GPUs, whatever the strategy. On one node both strategies place alike.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SCHEDULING_STRATEGIES", "Placement"]

#: Ray's scheduling strategies by name that rayflow accepts for step actors: ``SPREAD`` over the nodes, or Ray's
#: ``DEFAULT`` (pack on the creating node until it is busy).
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
