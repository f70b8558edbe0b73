"""Running a tutorial program the way a user runs it, and reading what it printed.

A user saves the program, sets ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` (and has a warm Hugging Face cache), and
runs ``python program.py`` from a folder that holds ``data/``. rayflow then starts an embedded Ray from that
process, so every actor (step actors, model pool replicas) inherits the program's environment. Each run here is
such a process, with a Ray temp folder of its own so the test can check that the program's Ray ended with it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "examples" / "data"
API_KEY = "sk-rayflow-tutorial-test"
#: One program, Ray start included; the slowest (the RAG program) takes about 25 s on a busy 2-core machine.
RUN_TIMEOUT_S = 240.0
#: How long the processes of a program's Ray may take to exit after the program did.
RAY_EXIT_S = 30.0
# A line Ray forwards from an actor to the program's output: "(_StepWorker pid=123) ...", maybe colored.
_ACTOR_LINE = re.compile(r"^(\x1b\[[0-9;]*m)?\(\w+ pid=\d+(, ip=[\d.]+)?\)")


@dataclass
class Finished:
    """A program that ran to its end: exit status, and what it printed (Ray's forwarded actor lines apart)."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        """The program's own stdout lines: without the lines Ray forwards from actors."""
        return [line for line in self.stdout.splitlines() if not _ACTOR_LINE.match(line)]

    def explain(self) -> str:
        return f"exit status {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


@contextmanager
def workdir() -> Iterator[Path]:
    """A folder like a user's project: ``data/`` (a copy of examples/data) and room for the program."""
    with tempfile.TemporaryDirectory(prefix="rayflow-tutorial-") as folder:
        shutil.copytree(DATA, Path(folder) / "data")
        yield Path(folder)


def user_environment(openai_base_url: str, hf_home: Path | None = None) -> dict[str, str]:
    """This process's environment as a user's shell would have it for the tutorial: an OpenAI endpoint and key,
    offline Hugging Face (with ``hf_home`` as the cache when given), this checkout importable, no Ray to join."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "OPENAI_API_BASE")}
    env.update(
        OPENAI_BASE_URL=openai_base_url,
        OPENAI_API_KEY=API_KEY,
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    )
    if hf_home is not None:
        env["HF_HOME"] = str(hf_home)
    return env


def _ray_processes(ray_tmp: str) -> list[object]:
    """The live processes of the Ray whose temp folder is ``ray_tmp`` (its folder is on their command lines)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if any(ray_tmp in arg for arg in cmdline):
            found.append(proc)
    return found


def run_program(args: list[str], cwd: Path, env: Mapping[str, str]) -> Finished:
    """``python *args`` in ``cwd`` with ``env``, to its end; then wait for the processes of its embedded Ray to
    exit, and fail if any is still alive after ``RAY_EXIT_S`` (a program must not leave its Ray behind)."""
    import psutil

    # Short: Ray's socket paths live under it and must stay within the 107 characters a unix socket allows.
    ray_tmp = tempfile.mkdtemp(prefix="rf-ray-", dir="/tmp")
    try:
        proc = subprocess.run(
            [sys.executable, *args],
            cwd=cwd,
            env={**env, "RAY_TMPDIR": ray_tmp},
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
        )
    finally:
        _, alive = psutil.wait_procs(_ray_processes(ray_tmp), timeout=RAY_EXIT_S)  # type: ignore[arg-type]
        for leftover in alive:  # only this run's Ray: its temp folder is on their command lines
            leftover.kill()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert not alive, f"the program's Ray outlived it: {[p.info['cmdline'][:2] for p in alive]}"
    return Finished(proc.returncode, proc.stdout, proc.stderr)
