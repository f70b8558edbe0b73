"""``rayflow batch``: every line of a JSON-lines file is one run's keyword arguments, all run on ONE warm workflow
instance, at most ``concurrency`` at a time, each result appended to the output as its run ends (``results``).

A failing input is recorded with its error and the batch goes on. SIGINT or SIGTERM stops the batch cleanly: the
runs in flight are cancelled and their inputs left for the next batch over the same output, which skips every
input already recorded there.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rayflow.commands import UserError
from rayflow.commands.records import error_text, jsonable
from rayflow.commands.results import Recovered, ResultsFile
from rayflow.commands.run import check_arguments, play
from rayflow.workflow import Workflow

__all__ = ["Outcome", "batch_command", "open_output", "read_inputs", "run_batch"]


def read_inputs(path: Path) -> list[dict[str, Any]]:
    """The JSON object on each non-blank line of ``path``; ``UserError`` naming the first line that is not one."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror}") from err
    inputs: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as err:
            raise UserError(f"{path} line {number} is not JSON: {err}") from err
        if not isinstance(value, dict):
            raise UserError(f"{path} line {number} is not a JSON object (a run's keyword arguments)")
        inputs.append(value)
    return inputs


def open_output(path: Path, inputs: list[dict[str, Any]], retry_failed: bool) -> tuple[ResultsFile, Recovered]:
    """The batch's output, repaired and open for appending, and what it already holds (``ResultsFile.recover``)."""
    output = ResultsFile(path)
    recovered = output.recover(inputs, retry_failed)
    if recovered.dropped:
        print(
            f"rayflow: {path}: dropped {recovered.dropped} incomplete or repeated line(s) left by an interrupted"
            " batch; their inputs run again",
            file=sys.stderr,
        )
    return output, recovered


@dataclass
class Outcome:
    """How a batch ended: runs recorded now and before, failures among all, and whether a signal stopped it."""

    total: int
    recorded_before: int
    recorded_now: int = 0
    failed: int = 0
    stopped_by: str | None = None


async def _one(workflow: Workflow, index: int, kwargs: dict[str, Any], timeout_s: float | None) -> dict[str, Any]:
    """The record of one run: its result, or its error as ``Type: message``."""
    record: dict[str, Any] = {"index": index, "input": jsonable(kwargs), "result": None, "error": None}
    try:
        check_arguments(workflow, kwargs)
        record["result"] = await play(workflow, kwargs, lambda _: None, timeout_s)
    except UserError as err:
        record["error"] = f"InvalidInput: {err}"
    except Exception as err:
        record["error"] = error_text(err)
    return record


async def run_batch(
    workflow: Workflow,
    inputs: list[dict[str, Any]],
    output: ResultsFile,
    recovered: Recovered,
    concurrency: int,
    timeout_s: float | None = None,
    progress: bool = True,
) -> Outcome:
    """Run each input not in ``recovered.done`` on ``workflow``, ``concurrency`` at a time, recording each in
    ``output`` (recovered, open) as it ends."""
    from tqdm import tqdm

    outcome = Outcome(total=len(inputs), recorded_before=len(recovered.done), failed=len(recovered.failed))
    pending: Iterator[int] = iter([i for i in range(len(inputs)) if i not in recovered.done])
    bar = tqdm(
        total=len(inputs), initial=len(recovered.done), unit="run", file=sys.stderr, disable=not progress, smoothing=0.1
    )
    bar.set_postfix(failed=outcome.failed, refresh=False)

    async def worker() -> None:
        for index in pending:  # one iterator shared by every worker: each takes the next input
            record = await _one(workflow, index, inputs[index], timeout_s)
            output.append(record)
            outcome.recorded_now += 1
            if record["error"] is not None:
                outcome.failed += 1
                bar.set_postfix(failed=outcome.failed, refresh=False)
            bar.update(1)

    workers = [asyncio.ensure_future(worker()) for _ in range(max(1, concurrency))]
    loop = asyncio.get_running_loop()

    def stop(signum: int) -> None:
        if outcome.stopped_by is not None:
            return
        outcome.stopped_by = signal.Signals(signum).name
        for task in workers:
            task.cancel()

    handled = [s for s in (signal.SIGINT, signal.SIGTERM) if _handle(loop, s, stop)]
    try:
        await asyncio.gather(*workers)
    except asyncio.CancelledError:
        if outcome.stopped_by is None:
            raise
        await asyncio.gather(*workers, return_exceptions=True)  # each cancels its run in flight
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
        bar.close()
        output.close()
    return outcome


def _handle(loop: asyncio.AbstractEventLoop, signum: int, stop: Any) -> bool:
    try:
        loop.add_signal_handler(signum, stop, signum)
    except (NotImplementedError, RuntimeError, ValueError):
        return False  # not the main thread, or a platform without loop signal handlers
    return True


async def batch_command(
    workflow: Workflow,
    inputs: list[dict[str, Any]],
    output: ResultsFile,
    recovered: Recovered,
    concurrency: int,
    timeout_s: float | None,
    again: str,
) -> int:
    """``rayflow batch``'s run and summary on stderr; the exit status: 0 once every input has its record (failed
    runs included), 130 after SIGINT and 143 after SIGTERM, with how to go on (``again``: the command to rerun)."""
    try:
        outcome = await run_batch(workflow, inputs, output, recovered, concurrency, timeout_s)
    finally:
        await workflow.close()
    done = outcome.recorded_before + outcome.recorded_now
    if outcome.stopped_by is not None:
        print(
            f"rayflow: stopped by {outcome.stopped_by}: {done} of {outcome.total} inputs recorded in {output.path}"
            f" ({outcome.failed} failed), the runs in flight cancelled; to go on, run again: {again}",
            file=sys.stderr,
        )
        return 130 if outcome.stopped_by == "SIGINT" else 143
    skipped = f", {outcome.recorded_before} recorded before" if outcome.recorded_before else ""
    print(
        f"rayflow: {outcome.total} inputs: {outcome.total - outcome.failed} succeeded, {outcome.failed} failed"
        f"{skipped}; results in {output.path}",
        file=sys.stderr,
    )
    return 0
