"""``rayflow batch``: a resumable JSON-lines output (``ResultsFile``, in process), and the real command: every input
recorded with its result or error, and a batch stopped by SIGINT then run again recording each input exactly once."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
from cli_support import COMMAND_TIMEOUT_S, ROOT, cli_env, command, rayflow, stderr_lines

from rayflow.commands import UserError
from rayflow.commands.results import ResultsFile


def _write_inputs(path: Path, inputs: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(item) + "\n" for item in inputs))


def _records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_results_file_drops_a_cut_off_last_line_and_a_repeated_index(tmp_path: Path) -> None:
    inputs: list[dict[str, object]] = [{"x": i} for i in range(4)]
    out = tmp_path / "out.jsonl"
    whole = [{"index": i, "input": {"x": i}, "result": i, "error": None} for i in (0, 2)]
    out.write_text("".join(json.dumps(r) + "\n" for r in [*whole, whole[0]]) + '{"index": 3, "inp')
    results = ResultsFile(out)
    found = results.recover(inputs)
    results.append({"index": 1, "input": {"x": 1}, "result": 1, "error": None})
    results.close()
    assert (found.done, found.dropped) == ({0, 2}, 2)
    assert [r["index"] for r in _records(out)] == [0, 2, 1]


def test_results_file_refuses_the_results_of_other_inputs_and_retries_failures_on_demand(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text(json.dumps({"index": 0, "input": {"x": 0}, "result": None, "error": "ValueError: x"}) + "\n")
    with pytest.raises(UserError, match="holds the results of other inputs"):
        ResultsFile(out).recover([{"x": 5}])
    results = ResultsFile(out)
    found = results.recover([{"x": 0}], retry_failed=True)
    results.close()
    assert (found.done, found.retried, out.read_text()) == (set(), 1, "")


def test_batch_records_every_input_with_its_result_or_error(ray_env: None, tmp_path: Path) -> None:
    inputs: list[dict[str, object]] = [{"x": i} for i in range(6)]
    inputs[2] = {"x": -2}
    inputs[4] = {"x": 4, "opaque": True}
    _write_inputs(tmp_path / "in.jsonl", inputs)
    args = ["batch", "cli_workflows:Square", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.jsonl")]
    done = rayflow([*args, "--concurrency", "3"], cli_env(join_session=True))
    assert done.returncode == 0, done.stderr
    by_index = {r["index"]: r for r in _records(tmp_path / "out.jsonl")}
    assert sorted(by_index) == list(range(6))
    assert [by_index[i]["input"] for i in range(6)] == inputs
    assert by_index[2]["error"] == "ValueError: negative input -2" and by_index[2]["result"] is None
    assert by_index[4] == {"index": 4, "input": inputs[4], "result": "(4+1j)", "error": None}  # not JSON: its repr
    assert [by_index[i]["result"] for i in (0, 1, 3, 5)] == [0, 1, 9, 25]
    assert stderr_lines(done.stderr)[-1].startswith("rayflow: 6 inputs: 5 succeeded, 1 failed;")


def test_a_batch_stopped_by_sigint_then_run_again_records_each_input_exactly_once(
    ray_env: None, tmp_path: Path
) -> None:
    total = 40
    _write_inputs(tmp_path / "in.jsonl", [{"x": i, "delay": 0.2} for i in range(total)])
    out = tmp_path / "out.jsonl"
    args = ["batch", "cli_workflows:Square", str(tmp_path / "in.jsonl"), "-o", str(out), "--concurrency", "3"]
    env = cli_env(join_session=True)
    first = subprocess.Popen(command(*args), env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    assert first.stderr is not None
    for _line in first.stderr:  # tqdm's bar: one refresh per recorded run at least (each ends with '\r', not '\n')
        if out.exists() and len(out.read_text().splitlines()) >= 5:
            break
    first.send_signal(signal.SIGINT)
    rest = first.stderr.read()
    assert first.wait(timeout=COMMAND_TIMEOUT_S) == 130, rest
    assert any("stopped by SIGINT" in line and "run again" in line for line in stderr_lines(rest)), rest
    recorded = _records(out)
    assert 5 <= len(recorded) < total, "the batch was not stopped mid-way"
    with out.open("a") as cut_off:
        cut_off.write('{"index": 39, "input": {"x"')  # a line a killed process left half-written
    again = rayflow(args, env)
    assert again.returncode == 0, again.stderr
    indices = [r["index"] for r in _records(out)]
    assert sorted(indices) == list(range(total))
    assert all(r["result"] == r["index"] ** 2 for r in _records(out))
