"""A step actor's side of its dispatcher: the events the actor emits, in the order it emits them, and what it tells
the dispatcher of its step (an invocation began; a call is seen awaiting). ``rayflow.runtime.step_worker`` holds
one; the dispatcher's methods it calls are ``rayflow.runtime.dispatcher_actor``'s ``started``, ``emit`` and
``call_waiting``.
"""

from __future__ import annotations

from typing import Any

from rayflow.core.envelope import Envelope
from rayflow.core.stats import StepStarted

__all__ = ["DispatcherInbox"]


class DispatcherInbox:
    """The step actor's side of its dispatcher: where emitted events go, in the order they were emitted."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self._last: Any = None

    def started(self, run_id: str, note: StepStarted) -> None:
        """Say that a step invocation began (``Workflow(verbose=True)``), in order with the emits."""
        self._last = self._handle.started.remote(run_id, note, self._last)

    def emit(self, run_id: str, step: str, envelopes: list[Envelope]) -> None:
        """Send ``envelopes``.

        Ray may start calls to an async actor out of order; each emit names the previous one as an
        argument, and Ray runs a call only once its arguments are ready, so emits apply in order.
        """
        self._last = self._handle.emit.remote(run_id, step, envelopes, self._last)

    def waiting(self, step: str) -> None:
        """Say that a call of ``step`` is seen awaiting (the step actor looks once, early in its first call); no
        answer is awaited."""
        self._handle.call_waiting.remote(step)

    async def delivered(self) -> None:
        """Return once every event emitted so far has reached the dispatcher (emits apply in order: the last one
        stands for all), so a step call returns after its emitted events."""
        if self._last is not None:
            await self._last
