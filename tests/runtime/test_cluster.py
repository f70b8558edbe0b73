"""The Ray rayflow starts by itself: it outlives the event loop that started it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

PROGRAM = textwrap.dedent(
    """
    import asyncio
    from rayflow import StartEvent, StopEvent, Workflow, step

    class Echo(Workflow):
        @step
        async def echo(self, ev: StartEvent) -> StopEvent:
            return StopEvent(result=ev.get("x"))

    async def once(x):
        async with Echo(timeout=60) as wf:
            return await wf.run(x=x)

    print(asyncio.run(once(1)))
    print(asyncio.run(once(2)))  # a second event loop in the same program finds the same Ray
    """
)


def test_embedded_ray_survives_the_first_event_loop(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    script = tmp_path / "two_loops.py"
    script.write_text(PROGRAM)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["1", "2"]
