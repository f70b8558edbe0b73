"""A large numpy payload through a chain of three steps: rayflow vs LlamaIndex Workflows vs raw Ray, in one run.

The workflow is written once against the API module (``rayflow`` or LlamaIndex's ``workflows``): ``first`` takes
the array from the start event, ``second`` and ``third`` take it from ``Hop`` events, each step reads the array
(``--touch sum``: its sum, a full read; ``none``: it only passes it on) and hands the same array on; the last step
returns ``StopEvent(result=array)``, so the caller gets the array back. The raw-Ray baseline ``ray.put``s the
array and passes the ref, nested in a list, through three actors doing the same reads.

Each engine is warmed up with one run; then ``--rounds`` rounds run each engine once, in turn, and the median and
best are printed. With ``grpcio`` importable (Ray's ``memory_summary`` needs it; this benchmark only reads the
object store's counters with it), each rayflow and raw-Ray run also reports how many bytes it created in the object
store (in payload copies) and the store's usage after the run against before it.

    python benchmarks/payload.py                          # 100 MB, 5 rounds, steps sum the array
    python benchmarks/payload.py --mb 10 --rounds 3 --touch none
"""

# No `from __future__ import annotations`: the workflow classes are built inside a function, and the engines
# resolve step annotations from module globals, where the local event classes do not exist.

import argparse
import asyncio
import gc
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout import llama_api

ENGINES = ("rayflow", "llama", "ray")


def make_array(mb: int) -> np.ndarray:
    """The payload: ``mb`` MB of float64, the same every time."""
    return np.random.default_rng(0).random(mb * 1_000_000 // 8)


def build_workflow(api: ModuleType, touch: str) -> type:
    """The three-step chain, written against ``api`` (rayflow or LlamaIndex). The first step takes the array from
    the start event, or makes it when the start event carries its size (``mb``) instead."""
    Event, StartEvent, StopEvent = api.Event, api.StartEvent, api.StopEvent

    def read(data: Any) -> float:
        return float(data.sum()) if touch == "sum" else 0.0

    class Hop(Event):
        data: Any
        seen: float

    class Hop2(Event):
        data: Any
        seen: float

    class ThreeSteps(api.Workflow):
        @api.step
        async def first(self, ev: StartEvent) -> Hop:
            data = ev.get("data")
            if data is None:
                data = make_array(int(ev.get("mb")))
            return Hop(data=data, seen=read(data))

        @api.step
        async def second(self, ev: Hop) -> Hop2:
            return Hop2(data=ev.data, seen=ev.seen + read(ev.data))

        @api.step
        async def third(self, ev: Hop2) -> StopEvent:
            read(ev.data)
            return StopEvent(result=ev.data)

    return ThreeSteps


class StoreStats:
    """The local object store's counters (bytes in use, bytes ever created), when ``grpcio`` is importable."""

    def __init__(self) -> None:
        self._read: Callable[[], Any] | None = None
        try:
            import ray
            from ray._private.internal_api import get_memory_info_reply, get_state_from_address

            state = get_state_from_address(ray.get_runtime_context().gcs_address)
            get_memory_info_reply(state)
            self._read = lambda: get_memory_info_reply(state).store_stats
        except Exception as err:  # grpcio missing: no store numbers
            _log(f"object store counters unavailable ({type(err).__name__}: {err})")

    def read(self) -> tuple[int, int] | None:
        if self._read is None:
            return None
        stats = self._read()
        return int(stats.object_store_bytes_used), int(stats.cumulative_created_bytes)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


async def _settle(stats: StoreStats, baseline: int, timeout: float = 5.0) -> int | None:
    """The store's usage once Ray freed what the run released (freeing is asynchronous), or after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        now = stats.read()
        if now is None:
            return None
        if now[0] <= baseline or time.monotonic() > deadline:
            return now[0]
        await asyncio.sleep(0.05)


def raw_ray_chain(touch: str, mb: int) -> Callable[[np.ndarray | None], Any]:
    """Three actors reading the array from a ref nested in a list, then the caller reading it back; with no array
    given, the first actor makes it (``ray.put``: it owns it)."""
    import ray

    @ray.remote(num_cpus=0)
    class Reader:
        def read(self, refs: list[Any] | None, seen: float) -> tuple[list[Any], float]:
            if refs is None:
                refs = [ray.put(make_array(mb))]
            data = ray.get(refs[0])
            return refs, seen + (float(data.sum()) if touch == "sum" else 0.0)

    actors = [Reader.remote() for _ in range(3)]

    def run(data: np.ndarray | None) -> Any:
        refs, seen = None if data is None else [ray.put(data)], 0.0
        for actor in actors:
            refs, seen = ray.get(actor.read.remote(refs, seen))
        return ray.get(refs[0])

    return run


async def bench(args: argparse.Namespace) -> dict[str, list[float]]:
    import ray

    import rayflow

    data = make_array(args.mb)
    size = data.nbytes
    checksum = float(data.sum())
    stats = StoreStats()
    flows: dict[str, Any] = {}
    if "rayflow" in args.engines:
        flows["rayflow"] = build_workflow(rayflow, args.touch)(timeout=None)
    if "llama" in args.engines:
        flows["llama"] = build_workflow(llama_api(), args.touch)(timeout=None)
    raw = raw_ray_chain(args.touch, args.mb) if "ray" in args.engines else None

    async def once(engine: str) -> float:
        gc.collect()
        before = stats.read()
        t0 = time.perf_counter()
        if engine == "ray":
            assert raw is not None
            result = await asyncio.to_thread(raw, data if args.source == "caller" else None)
        elif args.source == "caller":
            result = await flows[engine].run(data=data)
        else:
            result = await flows[engine].run(mb=args.mb)
        elapsed = time.perf_counter() - t0
        if float(result.sum()) != checksum:
            raise RuntimeError(f"{engine} returned a different array")
        del result
        gc.collect()
        note = ""
        if before is not None and engine != "llama":
            after = stats.read()
            assert after is not None
            settled = await _settle(stats, before[0])
            created = (after[1] - before[1]) / size
            note = (
                f"  store: created {created:.2f} copies, usage after {((settled or 0) - before[0]) / size:+.2f} copies"
            )
        _log(f"[{engine}] {elapsed * 1e3:8.1f} ms{note}")
        return elapsed

    times: dict[str, list[float]] = {engine: [] for engine in args.engines}
    try:
        for engine in args.engines:
            _log(f"[{engine}] warm-up")
            await once(engine)
        for _ in range(args.rounds):
            for engine in args.engines:
                times[engine].append(await once(engine))
    finally:
        wf = flows.get("rayflow")
        if wf is not None:
            await wf.close()
    del ray
    return times


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=100, help="payload size in MB (default 100)")
    parser.add_argument("--rounds", type=int, default=5, help="timed runs per engine, alternating (default 5)")
    parser.add_argument("--touch", choices=("sum", "none"), default="sum", help="what each step does with the array")
    parser.add_argument(
        "--source",
        choices=("caller", "step"),
        default="caller",
        help="where the array is made: by the caller, passed in the start event (default), or by the first step",
    )
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated subset of rayflow,llama,ray")
    args = parser.parse_args(argv)
    args.engines = [e for e in args.engines.split(",") if e]
    unknown = set(args.engines) - set(ENGINES)
    if unknown:
        parser.error(f"unknown engines: {sorted(unknown)}")
    return args


async def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import rayflow

    rayflow.init(include_dashboard=False, logging_level=logging.WARNING)
    print(
        f"# {args.mb} MB numpy array, made by the {args.source}, through 3 steps (steps: {args.touch}), "
        f"{args.rounds} rounds; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    times = await bench(args)
    print("| engine | median ms | best ms | median / LlamaIndex |")
    print("|---|---|---|---|")
    llama = statistics.median(times["llama"]) if times.get("llama") else None
    for engine, runs in times.items():
        median = statistics.median(runs)
        ratio = f"{median / llama:.2f}x" if llama else "-"
        print(f"| {engine} | {median * 1e3:.1f} | {min(runs) * 1e3:.1f} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
