"""What a fresh workflow instance costs: rayflow vs LlamaIndex Workflows, in one run.

What users feel before anything is warm (the cases ``benchmarks/fanout.py`` warms up first):

* **three steps**: a chain of three trivial steps (start -> a -> b -> stop). Timed: the first run of instance 1 of
  the class, its second run, then the first run of a second, equal instance of the same class (the same
  constructor arguments) created at once while the first is alive, and that instance's second run. rayflow starts
  actors for instance 1's first run; the second instance shares them (``RAYFLOW_SHARE_SETS``). Then the first run
  of a third instance that is not equal to them (another ``timeout``), created once the spare started for the
  class runs (``RAYFLOW_SPARE_SETS``), and of a fourth, not equal either, created after the first three were
  closed: it takes a set they released (``RAYFLOW_PARK_SETS``).
* **fan-out**: a fresh instance of a new fan-out class (a start step ``send_event``s N events to a
  ``@step(num_workers=W)`` worker, a collector ``collect_events`` them) run once with N events: on rayflow the
  worker pool's actors start during that one run (``warm=1``, the default) or before its first event
  (``warm=W``). LlamaIndex's fan-in is quadratic: it runs ``--llama-fanout`` events (1,000 by default).

The classes are built by one function from each API module, so both engines run identical code.

    python benchmarks/fresh.py                   # three steps, then a fan-out of 5,000 through num_workers=4
    python benchmarks/fresh.py --fanout 0        # three steps only
    python benchmarks/fresh.py --engines rayflow --rounds 3
"""

# No `from __future__ import annotations`: the classes are built inside a function, and the engines resolve step
# annotations from module globals, where the local event classes do not exist.

import argparse
import asyncio
import gc
import logging
import os
import platform
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout import build_workflows, close_workflow, llama_api


def build(api: ModuleType, workers: int, warm: int = 1) -> tuple[type, type]:
    """The three-step class, and ``fanout.py``'s fan-out class, written once against ``api`` (rayflow or
    LlamaIndex); on rayflow the fan-out's worker pool starts ``warm`` actors (``@step(warm=...)``, rayflow's own)."""
    warm_option = {"warm": warm} if getattr(api, "__name__", "") == "rayflow" else {}
    Event, StartEvent, StopEvent = api.Event, api.StartEvent, api.StopEvent

    class AEvent(Event):
        x: int

    class BEvent(Event):
        x: int

    class ThreeSteps(api.Workflow):
        @api.step
        async def begin(self, ev: StartEvent) -> AEvent:
            return AEvent(x=int(ev.get("x", 1)))

        @api.step
        async def middle(self, ev: AEvent) -> BEvent:
            return BEvent(x=ev.x + 1)

        @api.step
        async def end(self, ev: BEvent) -> StopEvent:
            return StopEvent(result=ev.x)

    fan_out, _ = build_workflows(api, workers, warm_option)
    return ThreeSteps, fan_out


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


async def _time(wf: Any, expected: Any, **kwargs: Any) -> float:
    t0 = time.perf_counter()
    got = await wf.run(**kwargs)
    seconds = time.perf_counter() - t0
    if got != expected:
        raise RuntimeError(f"run returned {got!r}, expected {expected!r}")
    return seconds


async def _close(*workflows: Any) -> None:
    for wf in workflows:
        await close_workflow(wf)


async def three_steps(api: ModuleType, label: str, workers: int) -> dict[str, float]:
    """Seconds of each timed run of the three-step class (see the module docstring)."""
    three, _ = build(api, workers)  # a new class each round: nothing of an earlier round is reused
    times: dict[str, float] = {}
    first = three(timeout=60)
    times["instance 1, run 1"] = await _time(first, 2, x=1)
    times["instance 1, run 2"] = await _time(first, 3, x=2)
    second = three(timeout=60)  # equal to the first: on rayflow it shares the first's actors
    times["instance 2, run 1"] = await _time(second, 4, x=3)
    times["instance 2, run 2"] = await _time(second, 5, x=4)
    if getattr(api, "__name__", "") == "rayflow":
        from rayflow.config import settings
        from rayflow.runtime.park import current

        # The spare starts once the class's instances have had no run for RAYFLOW_SPARE_AFTER_S; wait until it runs.
        deadline = time.monotonic() + settings().spare_after_s + 30
        while not len(current()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.to_thread(current().settled_sync)
    third = three(timeout=61)  # not equal to the first two (another timeout): it needs a set of its own
    times["instance 3, run 1, not equal (spare ready)"] = await _time(third, 6, x=5)
    await _close(first, second, third)
    fourth = three(timeout=62)  # takes a set an earlier instance of the class released
    times["instance 4, run 1, not equal (released set)"] = await _time(fourth, 7, x=6)
    await _close(fourth)
    for what, seconds in times.items():
        _log(f"[{label}] three steps, {what}: {seconds * 1e3:8.1f} ms")
    return times


async def fan_out(api: ModuleType, label: str, workers: int, n: int, warm: int = 1) -> float:
    """Seconds of the one run of a fresh fan-out instance (of a new class: no parked set or spare fits it)."""
    _, cls = build(api, workers, warm)
    wf = cls(timeout=None)
    seconds = await _time(wf, n, n=n)
    await _close(wf)
    rate = n / seconds
    _log(f"[{label}] fresh fan-out of {n:,}, num_workers={workers}, warm={warm}: {seconds:.2f} s ({rate:,.0f} ev/s)")
    return seconds


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="rayflow,llama", help="comma-separated: rayflow, llama")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each case, each on new classes")
    parser.add_argument("--fanout", type=int, default=5000, help="events of the fresh fan-out (0: skip it)")
    parser.add_argument("--workers", type=int, default=4, help="num_workers of the fan-out's worker step")
    parser.add_argument("--llama-fanout", type=int, default=1000, help="events of LlamaIndex's fan-out (quadratic)")
    args = parser.parse_args()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    apis: dict[str, ModuleType] = {}
    if "rayflow" in engines:
        import ray

        import rayflow

        t0 = time.perf_counter()
        rayflow.init(include_dashboard=False, logging_level=logging.ERROR)
        _log(f"[rayflow] ray.init: {time.perf_counter() - t0:.1f} s")
        apis["rayflow"] = rayflow
        _log(f"rayflow {rayflow.__file__}, Ray {ray.__version__}")
    if "llama" in engines:
        llama = llama_api()
        apis["llama"] = llama
    _log(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    for round_ in range(args.rounds):
        for label, api in apis.items():
            gc.collect()
            await three_steps(api, f"{label} r{round_ + 1}", args.workers)
        if args.fanout:
            for label, api in apis.items():
                gc.collect()
                tag = f"{label} r{round_ + 1}"
                if label == "rayflow":
                    await fan_out(api, tag, args.workers, args.fanout, warm=1)
                    await fan_out(api, tag, args.workers, args.fanout, warm=args.workers)
                elif args.llama_fanout:
                    await fan_out(api, tag, args.workers, args.llama_fanout)
    _log(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
