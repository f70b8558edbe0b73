"""``rayflow run``: one run of a workflow, its streamed events handed on as they arrive, then its result.

Before anything starts, the run's keyword arguments are checked against the workflow's StartEvent and its event
graph is validated, so a mistake in either is a ``UserError`` naming the field or the event, not a failed run.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rayflow.commands import UserError
from rayflow.commands.records import dumps, error_text, event_fields, event_line
from rayflow.errors import WorkflowConfigurationError, WorkflowTimeoutError, WorkflowValidationError
from rayflow.events import Event, StopEvent
from rayflow.handler import WorkflowHandler
from rayflow.stats import format_stats
from rayflow.workflow import Workflow

__all__ = ["check_arguments", "check_workflow", "keyword_arguments", "play", "run_command", "validation_text"]


def _value(text: str) -> Any:
    """JSON when the text parses as JSON (``3``, ``true``, ``[1, 2]``, ``"x"``), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def keyword_arguments(pairs: Iterable[str], input_file: str | None) -> dict[str, Any]:
    """The run's keyword arguments: ``input_file``'s JSON object, then each ``key=value`` of ``pairs`` over it."""
    kwargs: dict[str, Any] = {}
    if input_file is not None:
        try:
            loaded = json.loads(Path(input_file).read_text(encoding="utf-8"))
        except OSError as err:
            raise UserError(f"cannot read {input_file}: {err.strerror}") from err
        except ValueError as err:
            raise UserError(f"{input_file} is not JSON: {err}") from err
        if not isinstance(loaded, dict):
            raise UserError(f"{input_file} must hold a JSON object (the run's keyword arguments)")
        kwargs.update(loaded)
    for pair in pairs:
        key, equals, text = pair.partition("=")
        if not equals or not key.isidentifier():
            raise UserError(f"--kw expects key=value with a Python name as the key, got {pair!r}")
        kwargs[key] = _value(text)
    return kwargs


def validation_text(err: ValidationError) -> str:
    """A pydantic error as ``field: what is wrong`` for each field, on one line."""
    return "; ".join(
        f"{'.'.join(str(p) for p in problem['loc']) or '(event)'}: {problem['msg']}" for problem in err.errors()
    )


def check_arguments(workflow: Workflow, kwargs: dict[str, Any]) -> None:
    """``UserError`` naming each field when ``kwargs`` do not make the workflow's StartEvent."""
    start = workflow.start_event_class
    try:
        start(**kwargs)
    except ValidationError as err:
        raise UserError(f"the arguments do not fit {start.__name__}: {validation_text(err)}") from err
    except TypeError as err:
        raise UserError(f"the arguments do not fit {start.__name__}: {err}") from err


def check_workflow(workflow: Workflow) -> None:
    """``UserError`` when the workflow's event graph is invalid (what ``Workflow.validate`` finds)."""
    try:
        workflow.validate()
    except (WorkflowValidationError, WorkflowConfigurationError) as err:
        raise UserError(f"{type(workflow).__name__} is not a valid workflow: {err}") from err


async def play(
    workflow: Workflow,
    kwargs: dict[str, Any],
    on_event: Callable[[Event], None],
    timeout_s: float | None,
    on_end: Callable[[WorkflowHandler], Awaitable[None]] | None = None,
) -> Any:
    """Run ``workflow`` with ``kwargs``, handing ``on_event`` every streamed event but the one that ends the run;
    return the result (``await handler``'s) or raise the run's error.

    ``timeout_s`` bounds the whole run from here: past it the run is cancelled and ``WorkflowTimeoutError`` raised.
    Cancelling the task that awaits this cancels the run too. ``on_end(handler)`` runs once the run is over, however
    it ended (``--stats`` reads the run's statistics there).
    """
    handler = workflow.run(**kwargs)

    async def follow() -> Any:
        async for event in handler.stream_events():
            if not isinstance(event, StopEvent):
                on_event(event)
        return await handler

    task = asyncio.ensure_future(follow())
    try:
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout_s)
        except asyncio.CancelledError:
            task.cancel()
            await handler.cancel_run()
            raise
        if not done:
            task.cancel()
            await handler.cancel_run()
            raise WorkflowTimeoutError(f"the run took longer than {timeout_s:g} s (--timeout); it was cancelled")
        return task.result()
    finally:
        if on_end is not None:
            await on_end(handler)


async def run_command(
    workflow: Workflow, kwargs: dict[str, Any], as_json: bool, timeout_s: float | None, stats: bool = False
) -> int:
    """``rayflow run``'s output: each streamed event on a line of stdout as it arrives, then the result; the exit
    status (0, or 1 when the run failed, its error on one line of stderr).

    ``as_json``: each line a JSON object, ``{"event": type, "data": fields}``, then ``{"result": ...}`` or
    ``{"error": "Type: message"}``. Otherwise ``Type field=value ...`` lines, then ``result: ...`` (a string as it
    is, anything else as JSON). ``stats``: then the run's per-step statistics (``handler.stats()``), as the table of
    ``format_stats`` on stderr, or as ``{"stats": ...}`` (before the result) with ``as_json``.
    """

    async def report(handler: WorkflowHandler) -> None:
        if not stats:
            return
        figures = await handler.stats()
        if as_json:
            print(dumps({"stats": figures.to_dict()}), flush=True)
        else:
            print(format_stats(figures), file=sys.stderr, flush=True)

    def show(event: Event) -> None:
        if as_json:
            print(dumps({"event": type(event).__name__, "data": event_fields(event)}), flush=True)
        else:
            print(event_line(event), flush=True)

    try:
        result = await play(workflow, kwargs, show, timeout_s, report)
    except Exception as err:
        if as_json:
            print(dumps({"error": error_text(err)}), flush=True)
        print(f"rayflow: run failed: {error_text(err)}", file=sys.stderr, flush=True)
        return 1
    finally:
        await workflow.close()
    if as_json:
        print(dumps({"result": result}), flush=True)
    else:
        print(f"result: {result if isinstance(result, str) else dumps(result)}", flush=True)
    return 0
