"""The step actors of one actor set (a dispatcher and the actors it owns), by step and number.

Those *serving* run the current workflow instance's steps; those *parked* are kept from an earlier instance, or were
started blank (a spare set), until a pool starts its actor of that step and number, which binds the parked one
instead of starting a process (``rayflow.runtime.reusable_worker``). Keeping the number keeps the actor's name,
which is the holder name of the store locks it takes. The dispatcher (``rayflow.runtime.dispatcher_actor``) decides
when; this keeps the roster and asks its actors what the dispatcher needs to know from them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any

import ray
from ray.exceptions import RayActorError

from rayflow.config import settings
from rayflow.core.commands import Checks
from rayflow.runtime.context_actor import ContextActor
from rayflow.runtime.placement import Placement
from rayflow.runtime.reusable_worker import ReusableWorker

__all__ = ["StepActors"]

Key = tuple[str, int]


class StepActors:
    """The roster of one set's step actors."""

    def __init__(self, label: str, dispatcher: Any, context: ContextActor) -> None:
        """``dispatcher``: the set's dispatcher's own handle (where step actors send their events)."""
        self._label = label
        self._dispatcher = dispatcher
        self._context = context
        #: The actors serving the current instance.
        self.serving: dict[Key, ReusableWorker] = {}
        self._parked: dict[Key, ReusableWorker] = {}

    def _new(self, step: str, index: int, blob: bytes | None, verbose: bool, num_gpus: float) -> ReusableWorker:
        config = settings()
        return ReusableWorker.start(
            blob=blob,
            step=step,
            dispatcher=self._dispatcher,
            context=self._context,
            name=f"{self._label}.{step}.{index}",
            verbose=verbose,
            placement=Placement(config.step_num_cpus, num_gpus, config.step_scheduling),
        )

    def start(
        self, step: str, index: int, blob: bytes, verbose: bool, num_gpus: float
    ) -> tuple[ReusableWorker, Awaitable[None]]:
        """The actor of ``step`` number ``index`` for the instance in ``blob``: the parked one bound, or a new one
        reserving ``num_gpus``; and what to await until it is ready (raising what loading the workflow raised)."""
        worker = self._parked.pop((step, index), None)
        if worker is None:
            worker = self._new(step, index, blob, verbose, num_gpus)
            ready = worker.ready()
        else:
            ready = worker.bind(blob, verbose)
        self.serving[(step, index)] = worker
        return worker, ready

    async def spare(self, shape: list[tuple[str, int, float]]) -> None:
        """Start blank actors, ``count`` for each ``(step, count, num_gpus)`` of ``shape``, parked; return once they
        run."""
        for step, count, num_gpus in shape:
            for index in range(count):
                self._parked[(step, index)] = self._new(step, index, None, False, num_gpus)
        await asyncio.gather(*(worker.alive() for worker in self._parked.values()))

    async def park(self) -> None:
        """Have every actor forget its instance and park it; one that cannot (something of it still runs there) is
        killed instead."""
        workers = {**self._parked, **self.serving}
        answers = await asyncio.gather(*(worker.unbind() for worker in workers.values()), return_exceptions=True)
        self.serving, self._parked = {}, {}
        for key, answer in zip(workers, answers, strict=True):
            if answer is True:
                self._parked[key] = workers[key]
            else:
                ray.kill(workers[key].handle, no_restart=True)

    def take_all(self) -> list[ReusableWorker]:
        """Every actor, serving or parked, handed over to be stopped; the roster is empty after."""
        workers = [*self.serving.values(), *self._parked.values()]
        self.serving, self._parked = {}, {}
        return workers

    def stop(self, key: Key) -> bool:
        """End the serving actor ``key`` (dead, blocked or retiring): killed, since it may be blocked. False if no
        actor serves as ``key`` (any more)."""
        worker = self.serving.pop(key, None)
        if worker is None:
            return False
        ray.kill(worker.handle, no_restart=True)
        return True

    def end_run(self, run_id: str) -> None:
        """Tell every serving actor that the run is over (without waiting)."""
        for worker in self.serving.values():
            worker.end_run(run_id)

    async def confirm_stopped(self, key: Key, run_id: str, within: float) -> bool:
        """Have actor ``key`` stop what it runs of a run that ended; False if it could not answer within ``within``
        seconds (it is blocked). A dead or unknown actor counts as stopped: a dead one's call comes back lost."""
        worker = self.serving.get(key)
        if worker is None:
            return True
        try:
            await asyncio.wait_for(worker.end_run(run_id), within)
        except TimeoutError:
            return False
        except RayActorError:
            pass
        return True

    async def collect_status(self, keys: Iterable[Key], run_id: str, within: float) -> list[str]:
        """What the collect buffers of a run on actors ``keys`` still wait for, one line each (the actors that
        answer within ``within`` seconds)."""
        workers = [w for w in (self.serving.get(key) for key in keys) if w is not None]
        answers = await asyncio.gather(
            *(asyncio.wait_for(w.collect_status(run_id), within) for w in workers), return_exceptions=True
        )
        return [line for answer in answers if isinstance(answer, list) for line in answer]

    async def matches(self, key: Key, type_name: str, payload: bytes, checks: Checks) -> tuple[int, ...]:
        """Which of ``checks`` (``wait_for_event`` requirements) the event in ``payload`` meets, read by actor
        ``key``; none if it cannot answer (gone, or the event does not load)."""
        worker = self.serving.get(key)
        if worker is None:
            return ()
        try:
            return await worker.matches(payload, checks)
        except Exception as err:
            print(f"rayflow: cannot check {type_name} against wait_for_event requirements: {err}", flush=True)
            return ()
