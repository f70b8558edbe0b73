"""The contexts of one workflow instance, seen from the driver: where each one's state lives, and for how long.

A ``Context(workflow)`` gets a caller's face (``rayflow.runtime.caller_face``); its state lives in the instance's
context actor from the first time the context is used there (``context_actor``: the face's *seed*, the state a
snapshot gave it or the one kept across a release, goes in first). While the context lives, so does its state:
when the ``Context`` is garbage-collected, its state is dropped from the context actor, unless another live
``Context`` has the same id. When the instance lets go of its context actor while contexts live (an idle release;
a close while equal instances share the actors, ``rayflow.runtime.sharing``), each live context's state is read
back into its face's seed (``keep_states``), so its next run finds it in whatever context actor serves that run.
A context actor that died took its contexts' states with it: the next use says so, and starts them empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import warnings
import weakref
from typing import Any

from ray.exceptions import RayActorError

from rayflow.context.state_store import DictState
from rayflow.errors import ContextStateError, WorkflowActorDiedError
from rayflow.runtime.actors import first_line
from rayflow.runtime.caller_face import CallerFace, FaceHost
from rayflow.runtime.context_actor import ContextActor
from rayflow.runtime.runtime import WorkflowRuntime
from rayflow.spec import WorkflowSpec

__all__ = ["InstanceContexts"]


class InstanceContexts:
    """The caller's faces of an instance's live contexts, and their states in its context actor."""

    def __init__(self, spec: WorkflowSpec, owner: weakref.ReferenceType[object]) -> None:
        self._spec = spec
        self._owner = owner
        self._faces: weakref.WeakSet[CallerFace] = weakref.WeakSet()
        #: The instance's actors; set by the session once it made them (they need ``keep_states``).
        self.runtime: WorkflowRuntime

    def face(self, host: FaceHost, ctx_id: str) -> CallerFace:
        """A new caller's face of context ``ctx_id``, for ``Context(workflow)``."""
        workflow = self._owner()
        if workflow is None:
            raise ContextStateError("The workflow of this context was garbage-collected")
        face = CallerFace(host, ctx_id, workflow)
        self._faces.add(face)
        # The finalizer holds this object, never the face; at interpreter exit it does not run (Ray may be gone).
        weakref.finalize(face, self._forget, ctx_id).atexit = False
        return face

    def _forget(self, ctx_id: str) -> None:
        """A ``Context`` was garbage-collected: its state goes, unless another live ``Context`` has its id."""
        if not any(face.ctx_id == ctx_id for face in self._faces):
            self.runtime.forget_context(ctx_id)

    async def context_actor(self, face: CallerFace) -> ContextActor:
        """The context actor, started if needed, with ``face``'s context seeded (its state type, and the state it
        starts from: a snapshot's, or the one kept across an idle release)."""
        _, context = await self.runtime.start()
        if face.seeded_into is not context:
            if face.seeded_into is not None and face.seed is None:
                warnings.warn(
                    f"rayflow: the state of context {face.ctx_id} was lost with the actors of workflow "
                    f"{self.runtime.label}, which died; it starts again empty",
                    RuntimeWarning,
                    stacklevel=2,
                )
            # Marked seeded before the call: a call made meanwhile reaches the actor after the seed.
            seed, face.seed, face.seeded_into = face.seed, None, context
            try:
                face.known = await context.seed(face.ctx_id, self._spec.state_type, seed, floor=face.known)
            except RayActorError as err:
                face.seed, face.seeded_into = seed, None
                raise self.context_died(context, err) from err
        return context

    def context_died(self, context: ContextActor, err: RayActorError) -> WorkflowActorDiedError:
        """``context`` did not answer: forget its set of actors (if still this instance's); the error to raise."""
        dispatcher = self.runtime.dispatcher
        if dispatcher is not None and self.runtime.context is context:
            self.runtime.died(dispatcher)
        return WorkflowActorDiedError(
            f"The context actor of workflow {self.runtime.label} died: the state of its contexts is lost "
            f"({first_line(err)})"
        )

    def read_state(self, ctx_id: str) -> Any:
        """The state of context ``ctx_id`` (a new one's before the instance's actors start)."""
        if not self.runtime.started:
            state_type = self._spec.state_type
            return state_type() if state_type is not None else DictState()
        _, context = self.runtime.start_blocking()
        try:
            return context.get_state_sync(ctx_id)
        except RayActorError as err:
            raise self.context_died(context, err) from err

    async def keep_states(self, context: ContextActor) -> None:
        """Before the instance lets go of ``context`` (an idle release; a close while other instances share it): the
        state of each live ``Context`` seeded there becomes its face's seed, and leaves ``context``. A state that
        cannot be read is said loudly."""
        faces = [face for face in list(self._faces) if face.seeded_into is context]
        if not faces:
            return
        try:
            states = await context.states([face.ctx_id for face in faces])
        except Exception as err:
            states, reason = {}, f"{type(err).__name__}: {err}"
        else:
            reason = "the context actor no longer held it"
        released = []
        for face in faces:
            face.seeded_into = None
            if face.ctx_id in states:
                face.seed = states[face.ctx_id]
                released.append(context.release(face.ctx_id))  # the set may serve others (rayflow.runtime.sharing)
            else:
                warnings.warn(
                    f"rayflow: the state of context {face.ctx_id} could not be kept across the idle release of "
                    f"workflow {self.runtime.label}'s actors ({reason}); its next run starts from an empty state",
                    RuntimeWarning,
                    stacklevel=1,
                )
        with contextlib.suppress(RayActorError):
            await asyncio.gather(*released)
