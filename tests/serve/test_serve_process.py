"""``rayflow serve`` as a real process joined to the session's Ray: it serves a run, and Ctrl-C (SIGINT) stops it
through the app's shutdown, which closes its workflow. (That closing leaves no actor is checked in
test_serve_api.py, where the server's process lives on; here the actors would die with the process anyway.)"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
import ray

from tests.conftest import live_rayflow_actors

REPO = Path(__file__).resolve().parents[2]
BRANCHING = f"{REPO / 'examples' / 'branching.py'}:TriageWorkflow"


@pytest.mark.slow
def test_the_command_serves_and_an_interrupt_closes_its_workflows(ray_env: None) -> None:
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "rayflow.cli", "serve", BRANCHING, "--port", "0"]
    process = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        url = None
        for line in process.stderr:  # uvicorn says where it listens once the app has started
            found = re.search(r"Uvicorn running on (http://\S+)", line)
            if found:
                url = found.group(1)
                break
        assert url is not None, "the server ended before it listened"
        rest: list[str] = []
        drain = threading.Thread(target=lambda: rest.extend(process.stderr or ()), daemon=True)
        drain.start()  # keeps the pipe from filling up

        done = httpx.post(f"{url}/workflows/TriageWorkflow/run", json={"start_event": {"question": "a; b"}}, timeout=60)
        assert done.status_code == 200 and done.json()["result"]["value"]["result"].startswith("in depth: 2 lookups")
        assert live_rayflow_actors() != []  # the served instance's actors, in this session's Ray

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
        drain.join(timeout=60)
        said = "".join(rest)
        assert "Application shutdown complete" in said and "closing a served workflow failed" not in said
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert live_rayflow_actors() == []
