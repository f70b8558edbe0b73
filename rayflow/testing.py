"""``WorkflowTestRunner``: run a workflow end to end and keep what it streamed, for tests.

Mirrors ``workflows.testing``: the runner starts a run, reads the whole stream of the run's handler
(what steps wrote with ``ctx.write_event_to_stream`` and, last, the StopEvent or the failure, timeout
or cancel event), then awaits the handler. A run that fails raises its error from ``run()`` once the
stream has ended, like ``await handler`` does.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any

from rayflow.context import Context
from rayflow.events import Event, StartEvent
from rayflow.workflow import Workflow

__all__ = ["WorkflowTestResult", "WorkflowTestRunner"]

# LlamaIndex defines these in ``workflows.testing.runner``; tests that import from there port to
# ``rayflow.testing.runner`` by the usual rename, so that name is this module too.
sys.modules[f"{__name__}.runner"] = sys.modules[__name__]


@dataclass
class WorkflowTestResult:
    """What one run streamed, how many events of each type, its result and its context."""

    #: The streamed events, in stream order, without the excluded types.
    collected: list[Event]
    #: How many events of each type are in ``collected``.
    event_types: dict[type[Event], int]
    #: What ``await handler`` gave: ``StopEvent.result``, or the event itself for a StopEvent subclass.
    result: Any
    #: The run's context (``ctx.store`` reads the state the run left).
    ctx: Context[Any]


class WorkflowTestRunner:
    """Runs ``workflow`` end to end and collects the events it streams."""

    def __init__(self, workflow: Workflow) -> None:
        self._workflow = workflow

    async def run(
        self,
        start_event: StartEvent | None = None,
        ctx: Context[Any] | None = None,
        expose_internal: bool = True,
        exclude_events: list[type[Event]] | None = None,
        **kwargs: Any,
    ) -> WorkflowTestResult:
        """Run the workflow and collect its stream.

        ``start_event`` (or ``kwargs`` for the workflow's start event) starts the run, ``ctx`` continues
        an earlier context. Events whose exact type is in ``exclude_events`` are left out of ``collected``.
        ``expose_internal`` (True by default, as in LlamaIndex) collects the internal events too.
        Errors of the run (a step's exception, ``WorkflowTimeoutError``, ...) propagate.
        """
        handler = self._workflow.run(ctx=ctx, start_event=start_event, **kwargs)
        excluded = tuple(exclude_events or ())
        collected: list[Event] = []
        async for event in handler.stream_events(expose_internal=expose_internal):
            if type(event) in excluded:
                continue
            collected.append(event)
        result = await handler
        return WorkflowTestResult(
            collected=collected,
            event_types=dict(Counter(type(event) for event in collected)),
            result=result,
            ctx=handler.ctx,
        )
