"""Running the ``rayflow`` console script in a subprocess for the CLI tests, on the session's Ray or on none."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent

#: Bound on one command: a guard against a hang, not a measurement.
COMMAND_TIMEOUT_S = 180.0


def cli_env(join_session: bool) -> dict[str, str]:
    """This environment with this checkout and ``tests/`` (``cli_workflows``) on the path; ``join_session``: the
    session cluster's address in ``RAY_ADDRESS``, else no address at all (no Ray is needed or started)."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), str(TESTS), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    if join_session:
        import ray

        env["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
    return env


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "rayflow.cli", *args]


def rayflow(args: Sequence[str], env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``rayflow ARGS`` to its end: exit status, stdout and stderr."""
    return subprocess.run(command(*args), env=env, cwd=cwd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)


def stderr_lines(text: str) -> list[str]:
    """stderr's lines less Ray's own log lines (prefixed with a timestamp or a worker tag) and progress bars."""
    return [
        line
        for line in text.replace("\r", "\n").splitlines()
        if line.strip() and not line.startswith(("20", "(", "\x1b[36m(", "[20")) and "run/s" not in line
    ]
