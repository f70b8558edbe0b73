"""``rayflow run`` as a real process: events streamed then the result, ``--json`` lines, a failed run, and every user
mistake as one line on stderr with exit status 2 (those start no Ray)."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import COMMAND_TIMEOUT_S, ROOT, cli_env, command, rayflow, stderr_lines
from click.testing import CliRunner

from rayflow.cli import rayflow as rayflow_group


def test_run_streams_each_event_then_prints_the_result(ray_env: None) -> None:
    args = ["run", "cli_workflows:Greeter", "--kw", "name=ann", "--kw", "times=3", "--stats"]
    done = rayflow(args, cli_env(join_session=True))
    assert done.returncode == 0, done.stderr
    table = [line.split() for line in stderr_lines(done.stderr)]
    assert ["step", "in", "out", "queued"] == table[-2][:4] and table[-1][:3] == ["greet", "1", "4"]  # 3 sent, 1 back
    lines = [line for line in done.stdout.splitlines() if not line.startswith("(")]
    assert lines == [
        'Progress number=0 note="hello ann"',
        'Progress number=1 note="hello ann"',
        'Progress number=2 note="hello ann"',
        'result: {"greeting": "hello ann", "times": 3}',
    ]


def test_run_json_gives_one_object_per_line_and_a_failed_run_exits_1(ray_env: None, tmp_path: Path) -> None:
    (tmp_path / "in.json").write_text(json.dumps({"name": "fail", "times": 5}))
    args = ["run", "cli_workflows:Greeter", "--input", str(tmp_path / "in.json"), "--json"]
    done = rayflow(args, cli_env(join_session=True))
    assert done.returncode == 1, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert records == [
        {"event": "Progress", "data": {"number": 0, "note": "hello fail"}},
        {"error": "ValueError: no greeting for fail"},
    ]
    assert stderr_lines(done.stderr) == ["rayflow: run failed: ValueError: no greeting for fail"]


@pytest.fixture
def not_ray() -> Iterator[str]:
    """An address where something takes TCP connections and closes them at once: not a Ray cluster."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    server.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_each_user_mistake_is_one_line_and_exit_status_2(not_ray: str) -> None:
    refused = f"127.0.0.1:{_free_port()}"
    cases = {
        "module not found": (["nosuchmodule:Flow"], "module not found: nosuchmodule"),
        "not a workflow": (["cli_workflows:GreetStart"], "cli_workflows:GreetStart is not a rayflow Workflow"),
        "bad arguments": (
            ["cli_workflows:Greeter", "--kw", "name=ann", "--kw", "times=many"],
            "the arguments do not fit GreetStart: times: Input should be a valid integer",
        ),
        "address refused": (
            ["cli_workflows:Greeter", "--kw", "name=ann", "--address", refused],
            f"cannot reach the Ray cluster at {refused}",
        ),
        "address not Ray": (
            ["cli_workflows:Greeter", "--kw", "name=ann", "--address", not_ray],
            f"no Ray cluster answers at {not_ray}",
        ),
    }
    env = cli_env(join_session=False)
    started = {
        name: subprocess.Popen(
            command("run", *args), env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for name, (args, _) in cases.items()
    }
    for name, process in started.items():
        out, err = process.communicate(timeout=COMMAND_TIMEOUT_S)
        lines = err.splitlines()
        assert (process.returncode, out) == (2, ""), f"{name}: {err}"
        assert len(lines) == 1 and lines[0].startswith("rayflow: error: "), f"{name}: {err}"
        assert cases[name][1] in lines[0], f"{name}: {lines[0]}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cli_workflows:Greeter"], "the arguments do not fit GreetStart: name: Field required"),
        (["cli_workflows:Greeter", "--kw", "name"], "--kw expects key=value"),
        (["cli_workflows:Greeter", "--input", "missing.json"], "cannot read missing.json"),
    ],
)
def test_argument_mistakes_are_caught_before_ray_starts(
    args: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    result = CliRunner().invoke(rayflow_group, ["run", *args])
    assert result.exit_code == 2 and result.stdout == "", result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rayflow: error: ") and message in lines[0], result.stderr
