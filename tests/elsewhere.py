"""Running a few lines in a fresh Python that imports the ``rayflow`` under test and nothing of the test suite:
how tests show that what rayflow ships between processes (routes, specs, event payloads) needs no test code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import rayflow

#: The directory holding the ``rayflow`` package under test.
SOURCE_ROOT = Path(rayflow.__file__).resolve().parents[1]

#: A line for such a program, after it loaded what it was sent: no test module came with it.
NO_TEST_MODULE = (
    "assert not [m for m in sys.modules if m.split('.')[0] in ('tests', 'conftest') or m.startswith('test_')], "
    "'a test module was imported'\n"
)


def run_elsewhere(program: str, stdin: bytes, cwd: Path) -> bytes:
    """Run ``program`` (which imports ``sys`` itself) with ``stdin`` in a fresh Python in ``cwd``; its stdout."""
    env = {**os.environ, "PYTHONPATH": str(SOURCE_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", program], input=stdin, capture_output=True, cwd=cwd, env=env, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout
