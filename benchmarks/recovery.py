"""Recovery after a process dies mid-run: rayflow's supervision against raw Ray's actor restarts, in one run.

The same work both ways: N tasks of D ms each (a sleep: the time an I/O-bound step waits) over a pool of W actors.
One actor process is SIGKILLed once 30% of the results are in, and we measure

* **recovery**: seconds from the kill to the first result from the process that replaced it;
* **total**: the whole run, against an undisturbed run of the same size;
* **exactness**: results delivered, and how many distinct; rayflow must give N distinct, each once.

rayflow: a fan-out workflow (start -> W-actor ``work`` step -> ``collect_events`` gather), run once to start its
actors, then undisturbed, then with a kill of a ``work`` actor, then with a kill of the collecting step's actor.
Raw Ray: W sync actors (one call at a time, like a step actor) with ``max_restarts=1, max_task_retries=-1`` (Ray
restarts the actor and re-executes its lost calls, at least once), one call per task, no streaming, no fan-in.
LlamaIndex Workflows runs in one process: a killed process ends the run (no recovery to measure): no column.

    python benchmarks/recovery.py                  # N=400, D=20 ms, W=4
    python benchmarks/recovery.py --n 200 --delay-ms 10
"""

# No `from __future__ import annotations`: the workflow's step annotations must be real classes at definition time.

import argparse
import asyncio
import os
import signal
import time
from dataclasses import dataclass


@dataclass
class Outcome:
    total: float
    recovery: float | None
    delivered: int
    distinct: int


def _workflow_class():
    from rayflow import Context, Event, StartEvent, StopEvent, Workflow, step

    class Work(Event):
        i: int
        n: int
        delay: float

    class Done(Event):
        i: int
        n: int
        pid: int

    class Progress(Event):
        pid: int
        step: str

    class FanOut(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> Work | None:
            for i in range(ev.n):
                ctx.send_event(Work(i=i, n=ev.n, delay=ev.delay))
            return None

        @step(num_workers=4)
        async def work(self, ctx: Context, ev: Work) -> Done:
            await asyncio.sleep(ev.delay)
            ctx.write_event_to_stream(Progress(pid=os.getpid(), step="work"))
            return Done(i=ev.i, n=ev.n, pid=os.getpid())

        @step
        async def gather(self, ctx: Context, ev: Done) -> StopEvent | None:
            ctx.write_event_to_stream(Progress(pid=os.getpid(), step="gather"))
            got = ctx.collect_events(ev, [Done] * ev.n)
            return None if got is None else StopEvent(result=[d.i for d in got])

    return FanOut, Progress


async def rayflow_run(wf, progress_type, n: int, delay: float, kill: str | None) -> Outcome:
    """One run; with ``kill`` ("work" or "gather"), SIGKILL that step's actor once 30% of the work is done."""
    began = time.perf_counter()
    handler = wf.run(n=n, delay=delay)
    done = 0
    killed_pid, killed_at, recovered_at = None, None, None
    seen: set[int] = set()
    async for ev in handler.stream_events():
        if not isinstance(ev, progress_type):
            continue
        if ev.step == "work":
            done += 1
        if killed_at is not None and recovered_at is None and ev.step == kill and ev.pid not in seen:
            recovered_at = time.perf_counter()
        if killed_at is None:
            seen.add(ev.pid)
        if kill is not None and killed_at is None and ev.step == kill and done >= 0.3 * n:
            killed_pid = ev.pid
            os.kill(killed_pid, signal.SIGKILL)
            killed_at = time.perf_counter()
    result = await handler
    total = time.perf_counter() - began
    recovery = None if killed_at is None or recovered_at is None else recovered_at - killed_at
    return Outcome(total, recovery, len(result), len(set(result)))


def raw_ray_run(n: int, delay: float, workers: int, kill: bool) -> Outcome:
    import ray

    @ray.remote(max_restarts=1, max_task_retries=-1)
    class Worker:
        def pid(self) -> int:
            return os.getpid()

        def work(self, i: int) -> tuple[int, int]:
            time.sleep(delay)  # one call at a time per actor, as a rayflow step actor runs its events
            return i, os.getpid()

    pool = [Worker.remote() for _ in range(workers)]  # type: ignore[attr-defined]
    pids = ray.get([w.pid.remote() for w in pool])
    began = time.perf_counter()
    pending = [pool[i % workers].work.remote(i) for i in range(n)]
    results: list[int] = []
    killed_at, recovered_at = None, None
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        i, pid = ray.get(ready[0])
        results.append(i)
        if killed_at is not None and recovered_at is None and pid not in pids:
            recovered_at = time.perf_counter()
        if kill and killed_at is None and len(results) >= 0.3 * n:
            os.kill(pids[0], signal.SIGKILL)
            killed_at = time.perf_counter()
    total = time.perf_counter() - began
    for w in pool:
        ray.kill(w)
    recovery = None if killed_at is None or recovered_at is None else recovered_at - killed_at
    return Outcome(total, recovery, len(results), len(set(results)))


def _row(name: str, base: Outcome, hit: Outcome) -> str:
    recovery = "n/a" if hit.recovery is None else f"{hit.recovery:.2f}"
    exact = "yes" if hit.delivered == hit.distinct else f"no ({hit.delivered - hit.distinct} repeated)"
    return (
        f"| {name} | {base.total:.2f} | {hit.total:.2f} | {hit.total / base.total:.2f}x | {recovery} | "
        f"{hit.distinct} of {hit.delivered} | {exact} |"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    args = parser.parse_args()
    n, delay = args.n, args.delay_ms / 1000

    import rayflow

    rayflow.init(num_cpus=4, include_dashboard=False)
    FanOut, Progress = _workflow_class()
    print(f"N={n} tasks of {args.delay_ms:g} ms, 4 actors; load average {os.getloadavg()[0]:.1f} at start")
    rows = ["| case | undisturbed (s) | one kill (s) | slowdown | recovery (s) | distinct of delivered | exact |"]
    rows.append("|---|---:|---:|---:|---:|---:|---|")
    async with FanOut(timeout=600) as wf:
        await rayflow_run(wf, Progress, 4 * 8, delay, None)  # the pool grows to its 4 actors
        base = await rayflow_run(wf, Progress, n, delay, None)
        rows.append(_row("rayflow, a `work` actor killed", base, await rayflow_run(wf, Progress, n, delay, "work")))
        await rayflow_run(wf, Progress, 4 * 8, delay, None)  # back to 4 warm actors
        rows.append(
            _row("rayflow, the collecting actor killed", base, await rayflow_run(wf, Progress, n, delay, "gather"))
        )
    raw_base = raw_ray_run(n, delay, 4, kill=False)
    rows.append(_row("raw Ray, `max_restarts=1`, `max_task_retries=-1`", raw_base, raw_ray_run(n, delay, 4, True)))
    print("\n".join(rows))
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    asyncio.run(main())
