"""A step actor that can serve one workflow instance after another: started blank or bound, unbound, bound again.

A parked set of actors (``rayflow.runtime.park``) keeps its step actors' processes. What a step actor keeps from one
instance to the next is its process: the Python interpreter, Ray's worker, the modules imported so far (rayflow's,
and those the workflow's code imported), and its name (``<set label>.<step>.<index>``: the holder name of the store
locks it takes). Everything the step actor built from an instance is forgotten when it is unbound: the workflow
object (its ``self`` copy and every attribute on it), the compiled spec and the step code, collect buffers, the
ended-run memory, the resources it built (LlamaIndex builds ``Resource``s once per workflow instance too), the outbox
and the settings read at construction. Binding runs the step actor's constructor again on the new blob: a re-bound
actor holds exactly what a newly started one would, in a process that already ran.

An actor refuses to be unbound (it answers False and is stopped instead) while anything of its instance still runs
on it: an invocation, events on their way out, or a thread a stopped sync step left running. Module-level state the
workflow's code set (globals, threads it started, caches) lives on in the process; that is why the park hands a set
that ran a class's code only to instances of that very class object (a redefined or reloaded class gets a set that
never ran user code, or new actors), never to another class.
"""

from __future__ import annotations

from typing import Any

from rayflow.runtime.step_worker import StepActorClass, StepWorker

__all__ = ["ReusableWorker"]


class _ReusableStepWorker(StepActorClass):
    def __init__(self, blob: bytes | None, step: str, dispatcher: Any, context: Any, label: str, verbose: bool) -> None:
        self._place = (step, dispatcher, context, label)
        if blob is not None:
            super().__init__(blob, step, dispatcher, context, label, verbose)

    async def alive(self) -> str:
        """Answers once the process runs (a blank actor has nothing else to load)."""
        return self._place[3]

    async def bind(self, blob: bytes, verbose: bool) -> str:
        """Serve the workflow instance in ``blob``: construct again on it (after ``unbind``), and be ready."""
        self._forget()
        StepActorClass.__init__(self, blob, *self._place, verbose)
        return await self.ready()

    async def unbind(self) -> bool:
        """Forget the instance served so far; False (nothing forgotten) while anything of it still runs here."""
        if not self._idle():
            return False
        self._forget()
        return True

    async def end_run(self, run_id: str) -> None:
        """As a bound actor does; an unbound one has no run to end (the call came after the instance let it go)."""
        if "_ended" in self.__dict__:
            await super().end_run(run_id)

    def _idle(self) -> bool:
        state = self.__dict__
        return not (state.get("_running") or state.get("_locks") or state.get("_retire"))

    def _forget(self) -> None:
        place = self._place
        self.__dict__.clear()  # every attribute the constructor and the runs set, whoever added it
        self._place = place


class ReusableWorker(StepWorker):
    """Typed client of a step actor that parked sets can bind to one workflow instance after another; started
    running a workflow, or blank (``blob`` None) until ``bind``."""

    actor_class = _ReusableStepWorker

    async def alive(self) -> None:
        """Wait until the actor's process runs."""
        await self._handle.alive.remote()

    async def bind(self, blob: bytes, verbose: bool) -> None:
        """Bind the actor to the workflow instance in ``blob``; raises what loading it raised."""
        await self._handle.bind.remote(blob, verbose)

    async def unbind(self) -> bool:
        """Have the actor forget its workflow instance; False if something of it still runs there."""
        forgotten: bool = await self._handle.unbind.remote()
        return forgotten
