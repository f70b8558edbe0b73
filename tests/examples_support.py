"""Running ``examples/`` scripts as subprocesses that join the test session's Ray."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def example_env(drop: Iterable[str] = ()) -> dict[str, str]:
    """This environment less ``drop``, with the session cluster's address and this checkout on the path."""
    import ray

    dropped = set(drop)
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_example(env: dict[str, str], script: str, *args: str, timeout: float) -> str:
    """Run ``examples/<script>`` to completion; fail with its output unless it exits 0. Returns its stdout."""
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, (
        f"{script} exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    )
    return proc.stdout
