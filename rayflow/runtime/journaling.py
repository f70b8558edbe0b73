"""What one journaled run writes to its journal while the driver drives it (``rayflow.journal`` holds the records).

A checkpoint is taken right after the run starts (or resumes), then every ``journal.interval_s`` seconds while it
runs, and the run's final record is written when it ends, before ``await handler`` returns. A checkpoint reads the
run's unfinished work from the dispatcher FIRST, then its context's state: a step that finishes in between has its
trigger still in the unfinished work and its state writes already in the state, so after a recovery it runs again
(its effects happen at least once, never lost) and state updates it made may apply twice, as in LlamaIndex's resumed
steps. Checkpoints are serialized and written off the event loop, one at a time; a checkpoint still being written
when the run ends never overwrites the final record.

A driver that dies leaves the record ``running``, with its last checkpoint: ``Workflow.resume(run_id)`` goes on from
there. Stream events are remembered by id, so a run resumed in place (its dispatcher or context actor died) does
not stream again what this driver streamed already; a run resumed by a new driver streams again what was written
after the checkpoint (its earlier handler never reached the new one).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from ray.exceptions import RayActorError

from rayflow.config import settings
from rayflow.context.snapshot import snapshot_data, snapshot_from_data
from rayflow.core.envelope import Envelope
from rayflow.core.state import Pending
from rayflow.errors import JournalError
from rayflow.events import StopEvent
from rayflow.journal import Journal, RunRecord, RunStatus
from rayflow.spec import WorkflowSpec

__all__ = ["RunJournal", "Take"]

#: Reads a run's unfinished work, then its state; None once the run ended (its dispatcher knows no unfinished work).
Take = Callable[[], Awaitable[tuple[Pending, Any] | None]]


class RunJournal:
    """The journal side of one run: its checkpoints, its final record, and the ids of the events it streamed."""

    def __init__(
        self, journal: Journal, run_id: str, spec: WorkflowSpec, workflow: str, record: RunRecord | None
    ) -> None:
        """``record``: the run's record when a new driver resumes it (its checkpoint is where a recovery goes back to
        until this driver wrote one)."""
        self.journal = journal
        self.run_id = run_id
        self._spec = spec
        self._workflow = workflow
        #: The latest checkpoint written (``ctx.to_dict()`` data), None until the first one is.
        self.checkpoint: dict[str, Any] | None = None if record is None else record.checkpoint
        self._checkpoints = 0 if record is None else record.checkpoints
        self.recoveries = 0 if record is None else record.recoveries
        #: Why a checkpoint could not be written: the run was cancelled, and this is its error.
        self.failure: JournalError | None = None
        self._lock = threading.Lock()
        self._final = False
        self._task: asyncio.Task[None] | None = None
        self._streamed: set[bytes] = set()

    def keep(self, take: Take, fail: Callable[[], object]) -> None:
        """Checkpoint the run now, then every interval, until it ends, its actors die, or ``stop``. A checkpoint
        that cannot be written sets ``failure`` and calls ``fail`` (which cancels the run)."""
        self._task = asyncio.ensure_future(self._keep(take, fail))

    async def stop(self) -> None:
        """Stop checkpointing (a write in progress finishes in its thread, unless the final record came first)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _keep(self, take: Take, fail: Callable[[], object]) -> None:
        while True:
            try:
                taken = await take()
                if taken is None:
                    return
                await asyncio.to_thread(self._write_checkpoint, *taken)
            except RayActorError:
                return  # the run's actors died: the stream's reader sees it and recovers
            except Exception as err:
                self.failure = JournalError(
                    f"Run {self.run_id} could not be journaled in {self.journal.location}, so it was stopped: "
                    f"{type(err).__name__}: {err}"
                )
                fail()
                return
            await asyncio.sleep(self.journal.interval_s)

    def _write_checkpoint(self, pending: Pending, state: Any) -> None:
        data = snapshot_data(state, pending, True, self.journal.serializer, self._spec.codec)
        with self._lock:
            if self._final:
                return
            self._checkpoints += 1
            self.journal.write(self._record(RunStatus.RUNNING, checkpoint=data))
            self.checkpoint = data

    def _record(self, status: RunStatus, **fields: Any) -> RunRecord:
        fields.setdefault("checkpoint", self.checkpoint)
        return RunRecord(
            self.run_id,
            self._workflow,
            status,
            checkpoints=self._checkpoints,
            recoveries=self.recoveries,
            **fields,
        )

    def recover(self, error: BaseException) -> tuple[Any, Pending | None] | None:
        """The state and unfinished work of the last checkpoint, for the run to go on from after ``error`` (its
        dispatcher or context actor died), counted as a recovery; None without a checkpoint or recoveries left."""
        limit = settings().journal_recoveries
        if self.checkpoint is None or self.recoveries >= limit:
            return None
        self.recoveries += 1
        state, pending = snapshot_from_data(self.checkpoint, self.journal.serializer, self._spec)
        print(
            f"rayflow: run {self.run_id} goes on from its last checkpoint (recovery {self.recoveries} of {limit}) "
            f"after: {error}",
            flush=True,
        )
        return state, pending

    def first_time(self, envelope: Envelope) -> bool:
        """Whether this driver has not streamed ``envelope`` yet (by its id; one without an id always streams)."""
        if not envelope.event_id:
            return True
        if envelope.event_id in self._streamed:
            return False
        self._streamed.add(envelope.event_id)
        return True

    async def done(self, stop: StopEvent) -> None:
        """The run's final record: done, with its result (or why the result could not be written)."""
        result, why = self.journal.result_data(stop)
        await self._final_record(self._record(RunStatus.DONE, checkpoint=None, result=result, result_error=why))

    async def ended(self, status: RunStatus, error: BaseException) -> None:
        """The run's final record for a run that did not finish: how it ended, and its last checkpoint."""
        record = self._record(status, error=str(error), error_type=type(error).__name__)
        await self._final_record(record)

    async def _final_record(self, record: RunRecord) -> None:
        def write() -> None:
            with self._lock:
                self._final = True
                self.journal.write(record)

        await asyncio.to_thread(write)
