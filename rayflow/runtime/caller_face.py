"""The caller's face of a ``Context`` (``Context(workflow)``, ``handler.ctx``): the store through the context actor,
events sent into the running run, and what a snapshot starts from. Its session (``rayflow.runtime.session``) is the
``FaceHost`` it asks for the context actor and the dispatcher; a dead context actor reaches the caller as
``WorkflowActorDiedError`` (``GuardedContext``), never as a Ray error.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, Protocol

from ray.exceptions import RayActorError

from rayflow.context.context import WaitOptions
from rayflow.context.state_store import StateStore
from rayflow.core.envelope import Envelope, Kind
from rayflow.core.state import Pending
from rayflow.errors import ContextStateError, WorkflowActorDiedError
from rayflow.events import Event
from rayflow.retry_policy import RetryInfo
from rayflow.runtime.context_actor import ContextActor
from rayflow.runtime.runtime import WorkflowRuntime
from rayflow.spec import WorkflowSpec

__all__ = ["CallerFace", "FaceHost", "GuardedContext"]


class FaceHost(Protocol):
    """What a caller's face uses of its session."""

    @property
    def spec(self) -> WorkflowSpec: ...
    @property
    def runtime(self) -> WorkflowRuntime: ...
    async def context_actor(self, face: CallerFace) -> ContextActor: ...
    def context_died(self, context: ContextActor, err: RayActorError) -> WorkflowActorDiedError: ...
    def read_state(self, ctx_id: str) -> Any: ...
    def read_pending(self, run_id: str) -> Pending | None: ...


class CallerFace:
    """The caller's side of one ``Context``: the store through the context actor, events into its run.

    It holds its workflow: a context (and so a handler) keeps the workflow, and its actors, alive.
    """

    def __init__(self, session: FaceHost, ctx_id: str, workflow: object) -> None:
        self.session = session
        self.workflow = workflow
        self.ctx_id = ctx_id
        self.spec = session.spec
        self.run_id: str | None = None
        self.running = False
        #: Events sent before the run reached the dispatcher; None once it has.
        self.pending: list[Envelope] | None = None
        #: The state the context starts from (a snapshot's, or one kept across an idle release), until the context
        #: actor has it (``seeded_into``).
        self.seed: Any = None
        #: The context actor this context was seeded into (a new one after a release or a death needs seeding).
        self.seeded_into: ContextActor | None = None
        #: A snapshot's unfinished work, until a run resumes it.
        self.resume: Pending | None = None
        #: The newest version of the context's state the caller has seen (seeded, written, read, or carried by an
        #: event of the stream): what the events it sends carry (``rayflow.runtime.state_replica``).
        self.known = 0
        #: The handler of this context's latest run (``Workflow.run`` sets it).
        self.handler: Any = None

    def see(self, version: int) -> None:
        if version > self.known:
            self.known = version

    def store(self, ctx_id: str) -> StateStore[Any]:
        async def actor() -> Any:
            return GuardedContext(await self.session.context_actor(self), self.session, self)

        return StateStore(ctx_id, actor)

    def send_event(self, event: Event, step: str | None) -> None:
        if not self.running:
            raise ContextStateError("send_event() called before workflow started. Call workflow.run() first.")
        if step is not None:
            self.spec.check_target(step, event)
        event_id = uuid.uuid4().bytes
        self._emit(self.spec.codec.encode(event, target=step, event_id=event_id, state_version=self.known))

    def write_event_to_stream(self, event: Event) -> None:
        if not self.running:
            raise ContextStateError("write_event_to_stream() called before workflow started.")
        event_id = uuid.uuid4().bytes
        self._emit(self.spec.codec.encode(event, kind=Kind.STREAM, event_id=event_id, state_version=self.known))

    def _emit(self, envelope: Envelope) -> None:
        dispatcher = self.session.runtime.dispatcher
        if self.pending is not None or dispatcher is None or self.run_id is None:
            assert self.pending is not None
            self.pending.append(envelope)  # sent as soon as the run has reached the dispatcher
        else:
            dispatcher.emit(self.run_id, [envelope])

    def collect_events(self, event: Event, expected: list[type[Event]], buffer_id: str) -> list[Event] | None:
        raise ContextStateError("collect_events only works inside a step")

    async def wait_for_event(self, event_type: type[Event], options: WaitOptions) -> Event:
        raise ContextStateError("wait_for_event only works inside a step")

    def retry_info(self) -> RetryInfo:
        if self.run_id is None:
            raise ContextStateError("retry_info() needs a running workflow: call workflow.run() first")
        raise ContextStateError("retry_info() only works inside a step: it describes the running step's retries")

    @property
    def is_running(self) -> bool:
        return self.running

    def read_state(self) -> Any:
        return self.session.read_state(self.ctx_id)

    def read_pending(self) -> Pending | None:
        return None if self.run_id is None else self.session.read_pending(self.run_id)

    async def running_steps(self) -> list[str]:
        """The steps with an invocation of this context's run going on, as its dispatcher sees them now."""
        dispatcher = self.session.runtime.dispatcher
        if not self.running or self.pending is not None or dispatcher is None or self.run_id is None:
            return []  # no run, or one that has not reached its dispatcher yet
        try:
            return await dispatcher.running_steps(self.run_id)
        except RayActorError:
            return []  # the run fails with WorkflowActorDiedError: nothing of it runs


class GuardedContext:
    """The context actor's client as the caller's ``ctx.store`` uses it: a dead actor raises
    ``WorkflowActorDiedError``, never a Ray error; the versions it reads and writes raise its face's ``known``."""

    def __init__(self, client: ContextActor, session: FaceHost, face: CallerFace) -> None:
        self._client = client
        self._session = session
        self._face = face

    @asynccontextmanager
    async def edit(self, ctx_id: str) -> AsyncIterator[Any]:
        """``ContextActor.edit``, guarded the same way."""

        def saved(before: int, after: int, state: Any) -> None:
            self._face.see(after)

        try:
            async with self._client.edit(ctx_id, saved) as state:
                yield state
        except RayActorError as err:
            raise self._session.context_died(self._client, err) from err

    async def get(self, ctx_id: str, path: str) -> tuple[bool, Any]:
        found, value, version = await self._guarded(self._client.get_versioned(ctx_id, path))
        self._face.see(version)
        return found, value

    async def get_state(self, ctx_id: str) -> Any:
        version, state = await self._guarded(self._client.read(ctx_id, -1, whole=True))
        self._face.see(version)
        return state

    async def set(self, ctx_id: str, path: str, value: Any) -> None:
        self._face.see(await self._guarded(self._client.set(ctx_id, path, value)))

    async def set_state(self, ctx_id: str, state: Any) -> None:
        self._face.see(await self._guarded(self._client.set_state(ctx_id, state)))

    async def clear(self, ctx_id: str) -> None:
        self._face.see(await self._guarded(self._client.clear(ctx_id)))

    async def _guarded(self, call: Coroutine[Any, Any, Any]) -> Any:
        try:
            return await call
        except RayActorError as err:
            raise self._session.context_died(self._client, err) from err
