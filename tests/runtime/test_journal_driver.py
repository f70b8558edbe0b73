"""A driver process SIGKILLed mid-run with a journal, and a new process resuming the run from its journal: the same
result as an undisturbed run. Each driver starts its own local Ray, in a session of its own, which the test ends
whole (a killed driver's Ray processes outlive it a while)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rayflow import Journal, Workflow
from tests.elsewhere import SOURCE_ROOT

pytestmark = [pytest.mark.usefixtures("ray_env"), pytest.mark.slow]  # two drivers, each with a Ray of its own: ~25 s

FLOWS = """
import asyncio

from rayflow import Context, Event, StartEvent, StopEvent, Workflow, step


class Unit(Event):
    i: int
    n: int


class Squared(Event):
    i: int
    n: int
    square: int


class Squares(Workflow):
    @step
    async def start(self, ctx: Context, ev: StartEvent) -> Unit | None:
        for i in range(ev.n):
            ctx.send_event(Unit(i=i, n=ev.n))
        return None

    @step(num_workers=2)
    async def work(self, ev: Unit) -> Squared:
        await asyncio.sleep(0.05)  # the work itself
        return Squared(i=ev.i, n=ev.n, square=ev.i * ev.i)

    @step
    async def gather(self, ctx: Context, ev: Squared) -> StopEvent | None:
        done = ctx.collect_events(ev, [Squared] * ev.n)
        if done is None:
            return None
        return StopEvent(result={"ids": sorted(d.i for d in done), "sum": sum(d.square for d in done)})
"""

DRIVER = """
import asyncio, json, sys

import rayflow
from durable_flows import Squares


async def main(journal: str, ray_dir: str, command: str, arg: str) -> None:
    rayflow.init(num_cpus=2, include_dashboard=False, _temp_dir=ray_dir)
    async with Squares(timeout=300, journal=journal) as wf:
        if command == "start":
            handler = wf.run(n=int(arg))
            print(handler.run_id, flush=True)
        else:
            handler = wf.resume(arg)
        print(json.dumps(await handler), flush=True)


asyncio.run(main(*sys.argv[1:]))
"""

N = 80


@pytest.fixture
def flows(tmp_path: Path) -> Iterator[Path]:
    """A directory holding the workflow's module and the driver program; the module importable here too."""
    (tmp_path / "durable_flows.py").write_text(FLOWS)
    (tmp_path / "driver.py").write_text(DRIVER)
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("durable_flows", None)


def _driver(flows: Path, journal: Path, ray_dir: Path, *args: str) -> subprocess.Popen[str]:
    """A driver process in a session of its own, with a local Ray of its own in ``ray_dir`` (a short path, as Ray's
    sockets need)."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join([str(SOURCE_ROOT), str(flows)])
    env["RAYFLOW_JOURNAL_INTERVAL_S"] = "0.1"
    return subprocess.Popen(
        [sys.executable, str(flows / "driver.py"), str(journal), str(ray_dir), *args],
        cwd=SOURCE_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )


def _end_session(process: subprocess.Popen[str]) -> None:
    """SIGKILL the driver and every process of its session: its local Ray (some Ray workers lead process groups of
    their own, and a killed driver's Ray processes outlive it a while)."""
    process.kill()
    process.wait()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) == process.pid:
                os.kill(int(entry.name), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


@pytest.fixture
def ray_dirs() -> Iterator[list[Path]]:
    """Temporary directories for the drivers' local Rays, removed at the end."""
    made: list[Path] = []
    yield made
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


def _collected(journal: Journal, run_id: str) -> int:
    """Events the run's collecting step had collected at its last checkpoint (0 before the first)."""
    if run_id not in journal.runs():
        return 0
    pending = (journal.read(run_id).checkpoint or {}).get("pending") or {}
    return sum(1 for item in pending.get("items", ()) if item["step"] == "gather")


def test_a_run_whose_driver_was_killed_is_resumed_by_a_new_process_with_the_undisturbed_result(
    flows: Path, ray_dirs: list[Path]
) -> None:
    from durable_flows import Squares  # type: ignore[import-not-found]

    async def undisturbed() -> object:
        async with Squares(timeout=120) as wf:
            workflow: Workflow = wf
            return await workflow.run(n=N)

    expected = asyncio.run(undisturbed())
    journal_dir = flows / "journal"
    journal = Journal(journal_dir)

    ray_dirs.extend(Path(tempfile.mkdtemp(prefix="rfj", dir="/tmp")) for _ in range(2))
    first = _driver(flows, journal_dir, ray_dirs[0], "start", str(N))
    try:
        assert first.stdout is not None
        run_id = first.stdout.readline().strip()
        deadline = time.monotonic() + 120
        # The journal is a file written by another process: nothing to await, so it is read every 50 ms.
        while (collected := _collected(journal, run_id)) < 10:
            assert first.poll() is None and time.monotonic() < deadline, "the first driver made no progress"
            time.sleep(0.05)
    finally:
        _end_session(first)
    assert collected < N and journal.read(run_id).status.value == "running"

    second = _driver(flows, journal_dir, ray_dirs[1], "resume", run_id)
    try:
        out, _ = second.communicate(timeout=240)
    finally:
        _end_session(second)
    assert second.returncode == 0
    assert expected == {"ids": list(range(N)), "sum": sum(i * i for i in range(N))}
    assert json.loads(out.strip().splitlines()[-1]) == expected
    assert journal.read(run_id).status.value == "done"
