"""What a step invocation comes to: what the dispatcher is told of it, and its record.

A step actor (``rayflow.runtime.step_worker``) runs an invocation; this turns how it ended into the ``ItemDone`` it
reports: the event it returned, encoded (large payloads by reference); a returned list, fanned out as the events of a
new stream; a retry after its policy's wait; or the step's failure, with the ``StepFailedEvent`` that
``@catch_error`` steps receive. A result that is not an event fails the step with an error that names it. Each
invocation also leaves a record (``rayflow.core.stats.Invocation``).
"""

from __future__ import annotations

import functools
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from rayflow.codec import EventCodec
from rayflow.core.commands import WorkItem
from rayflow.core.envelope import Envelope, Failure
from rayflow.core.stats import CANCELLED, DONE, FAILED, PAUSED, RETRY, Invocation
from rayflow.core.ticks import ItemDone
from rayflow.errors import WorkflowRuntimeError
from rayflow.events import Event, StepFailedEvent
from rayflow.runtime.state_replica import Known, newest
from rayflow.runtime.step_context import Attempts, Outbox, StepCode
from rayflow.spec import StepConfig

__all__ = ["StepResults", "class_name", "invocation_record", "known_of"]


class StepResults:
    """The outcomes of the invocations of one step actor, whose own step is ``step``."""

    def __init__(self, codec: EventCodec, step: str) -> None:
        self._codec = codec
        self._step = step

    def _step_of(self, name: str) -> str | None:
        """How an outcome names its step: None for the actor's own, the name of one run here on a local hop."""
        return None if name == self._step else name

    def returned(
        self,
        item: WorkItem,
        code: StepCode,
        result: Any,
        outbox: Outbox,
        known: Known,
        event: Event | None,
        attempts: Attempts,
    ) -> ItemDone:
        """The step returned ``result`` (not None): its event on its way on, a list fanned out, or a failure for
        a result that is not an event (or cannot be encoded)."""
        name, scope = code.name, item.envelope.scope
        if isinstance(result, list) and code.config.fan_out_types:
            return self._fanned_out(item, code, result, outbox, known, event, attempts)
        if not isinstance(result, Event):
            wrong = WorkflowRuntimeError(
                f"Step function {name} returned {type(result).__name__} instead of an Event instance."
            )
            return ItemDone(item.run_id, failure=self.failure(name, wrong, event, attempts, scope))
        try:
            _check_bare(code, result)
            output = self._codec.encode(
                result, step=name, event_id=outbox.returned_id(), state_version=known.version, copy=False, scope=scope
            )
        except Exception as err:
            return ItemDone(item.run_id, failure=self.failure(name, err, event, attempts, scope))
        return ItemDone(item.run_id, output=output, step=self._step_of(name))

    def _fanned_out(
        self,
        item: WorkItem,
        code: StepCode,
        result: list[Any],
        outbox: Outbox,
        known: Known,
        event: Event | None,
        attempts: Attempts,
    ) -> ItemDone:
        """A returned list: its events, each its own event of one new stream (opened by the dispatcher)."""
        name, scope = code.name, item.envelope.scope
        try:
            for position, member in enumerate(result):
                if not isinstance(member, Event):
                    raise WorkflowRuntimeError(
                        f"Step function {name} returned a list whose item {position} is a {type(member).__name__}, "
                        "not an Event instance"
                    )
            members = tuple(
                self._codec.encode(
                    member,
                    step=name,
                    event_id=outbox.member_id(position),
                    state_version=known.version,
                    copy=False,
                    scope=scope,
                )
                for position, member in enumerate(result)
            )
        except Exception as err:
            return ItemDone(item.run_id, failure=self.failure(name, err, event, attempts, scope))
        return ItemDone(item.run_id, fan_out=members, step=self._step_of(name))

    def failed(
        self, item: WorkItem, code: StepCode, err: Exception, event: Event | None, attempts: Attempts
    ) -> ItemDone:
        """The attempt failed with ``err``: a retry after the policy's wait, or the step's failure."""
        step = self._step_of(code.name)
        try:
            delay = _retry_delay(code.config, attempts, err)
        except Exception as policy_err:  # a user's retry condition or wait that raised fails the step
            err, delay = policy_err, None
        if delay is None:
            return ItemDone(
                item.run_id, failure=self.failure(code.name, err, event, attempts, item.envelope.scope), step=step
            )
        retry = replace(item, tries=attempts.failed(err, self._codec.dumps), timed_out=None, deliveries=0)
        return ItemDone(item.run_id, retry=retry, retry_after=delay, step=step)

    def failure(
        self, step: str, err: Exception, event: Event | None, attempts: Attempts, scope: tuple[str, ...] = ()
    ) -> Failure:
        """The step failed for good after ``attempts``: its error and the ``StepFailedEvent`` for ``@catch_error``."""
        message = f"{type(err).__name__}: {err}"
        elapsed = attempts.elapsed()
        try:
            error: Any = self._codec.dumps(err)
        except Exception:
            error = self._codec.dumps(WorkflowRuntimeError(f"Step {step!r} failed with {message}"))
        failed = StepFailedEvent(
            step_name=step,
            input_event=event,
            exception=err,
            attempts=attempts.number,
            elapsed_seconds=elapsed,
            failed_at=datetime.now(timezone.utc),
        )
        try:
            failed_envelope: Envelope | None = self._codec.encode(failed, step=step, scope=scope)
        except Exception:
            failed_envelope = None
        return Failure(step, error, message, failed_envelope, attempts.number, elapsed)


def _retry_delay(config: StepConfig, attempts: Attempts, error: Exception) -> float | None:
    """The seconds to wait before running the step again after ``error``, or None to give up."""
    policy = config.retry_policy
    if policy is None:
        return None
    return policy.next(attempts.elapsed(), attempts.number, error)


def _check_bare(code: StepCode, result: Event) -> None:
    """Refuse an event returned on its own whose type the step's annotation declares only inside a list."""
    config = code.config
    if not config.fan_out_types or any(isinstance(result, t) for t in config.bare_return_types if isinstance(t, type)):
        return
    if any(isinstance(result, t) for t in config.fan_out_types):
        kind = type(result).__name__
        raise WorkflowRuntimeError(
            f"Step function {code.name} returned a single {kind}, but its return annotation has {kind} only inside "
            f"a list: return [{kind}(...)] to fan out, or add {kind} to the return annotation (-> list[...] | "
            f"{kind}) to send it on its own"
        )


def invocation_record(
    run_id: str,
    step: str,
    actor: str,
    node: str,
    started: float,
    seconds: float,
    event: str,
    outbox: Outbox,
    done: ItemDone | None,
) -> Invocation:
    """The record of one invocation that ended with ``done`` (None: it was cancelled)."""
    emitted, returned, error = outbox.emitted, None, None
    if done is None:
        outcome = CANCELLED
    elif done.retry is not None:
        outcome, error = RETRY, done.retry.tries.message
    elif done.failure is not None:
        outcome, error = FAILED, done.failure.message
    elif done.waiting is not None:
        outcome = PAUSED
    else:
        outcome = DONE
        if done.output is not None:
            returned = class_name(done.output.type_name)
            emitted += 1
        elif done.fan_out is not None:
            returned = "list"
            emitted += len(done.fan_out)
    return Invocation(run_id, step, actor, node, started, seconds, event, emitted, returned, outcome, error)


@functools.lru_cache(maxsize=1024)
def class_name(type_name: str) -> str:
    """An event type's class name (its type key without the module), one string per type for the records."""
    return type_name.rsplit(".", 1)[-1]


def known_of(item: WorkItem) -> Known:
    """What the invocation of ``item`` starts knowing of its state: its event's version, and those of the events
    that answered its waits (unknown if any of them is)."""
    answers = (envelope.state_version for _, envelope in item.resolved if envelope is not None)
    return Known(newest((item.envelope.state_version, *answers)))
