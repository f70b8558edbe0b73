"""The ``rayflow`` command: argument parsing only; what each subcommand does lives in the library below it.

``rayflow draw MODULE:WORKFLOW`` loads a workflow class (a module on ``sys.path`` with the current directory
first, as ``python -m`` has it, or a file path such as ``examples/branching.py``) and writes its graph
(``rayflow.draw``). ``rayflow run``, ``rayflow batch`` and ``rayflow bench`` run workflows on Ray
(``rayflow.commands``). A user's mistake is one line on stderr and exit status 2, never a traceback.

``rayflow serve [NAME=]MODULE:WORKFLOW...`` serves workflows over HTTP (``rayflow.serve``).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import click

from rayflow.commands import UserError
from rayflow.draw import graph_of, to_dot, to_html, to_mermaid, to_svg
from rayflow.errors import ServeConfigurationError, WorkflowConfigurationError
from rayflow.workflow import Workflow

__all__ = ["main", "rayflow"]

_FORMATS = {"mermaid": to_mermaid, "dot": to_dot, "svg": to_svg, "html": to_html}
_SUFFIXES = {
    ".mmd": "mermaid",
    ".mermaid": "mermaid",
    ".dot": "dot",
    ".gv": "dot",
    ".svg": "svg",
    ".html": "html",
    ".htm": "html",
}


def _fail(message: str) -> None:
    click.echo(f"rayflow: error: {' '.join(message.split())}", err=True)
    sys.exit(2)


def _load_module(name: str) -> ModuleType:
    if name.endswith(".py") or os.sep in name or "/" in name:
        path = Path(name)
        if not path.is_file():
            raise UserError(f"no such file: {name}")
        module_name = path.stem
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise UserError(f"cannot load {name} as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # classes defined in it resolve their annotations through it
        sys.path.insert(0, str(path.resolve().parent))
        try:
            spec.loader.exec_module(module)
        except Exception as err:
            sys.modules.pop(module_name, None)
            raise UserError(f"importing {name} failed: {type(err).__name__}: {err}") from err
        return module
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name is not None and name.startswith(err.name):
            raise UserError(f"module not found: {name}") from err
        raise UserError(f"importing {name} failed: {type(err).__name__}: {err}") from err
    except Exception as err:
        raise UserError(f"importing {name} failed: {type(err).__name__}: {err}") from err


def _resolve(target: str) -> object:
    """What ``MODULE:NAME`` (or ``path/to/file.py:NAME``) names."""
    module_name, colon, attribute = target.rpartition(":")
    if not colon or not module_name or not attribute:
        raise UserError(f"expected MODULE:WORKFLOW (for example examples/branching.py:TriageWorkflow), got {target!r}")
    module = _load_module(module_name)
    found: object = module
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise UserError(f"{module_name} has no attribute {attribute!r}")
        found = getattr(found, part)
    return found


def _is_workflow_class(found: object) -> bool:
    return isinstance(found, type) and issubclass(found, Workflow) and found is not Workflow


def load_workflow(target: str) -> type[Workflow]:
    """The ``Workflow`` subclass that ``MODULE:CLASS`` (or ``path/to/file.py:CLASS``) names."""
    found = _resolve(target)
    if not _is_workflow_class(found):
        raise UserError(f"{target} is not a rayflow Workflow subclass")
    return found  # type: ignore[return-value]


def workflow_maker(target: str, timeout: float | None) -> tuple[Callable[[], Workflow], bool]:
    """How to make the workflow instance ``MODULE:NAME`` names, and whether that needs Ray first.

    NAME is a ``Workflow`` subclass (built with no arguments, or ``timeout=`` when given), a ``Workflow`` instance,
    or a function that returns one (called once Ray is up, since building it may start actors: an index, a model).
    """
    found = _resolve(target)

    def build() -> Workflow:
        try:
            if _is_workflow_class(found):
                made = found(**({} if timeout is None else {"timeout": timeout}))  # type: ignore[operator]
            elif isinstance(found, Workflow):
                made = found
            else:
                made = found()  # type: ignore[operator]
        except Exception as err:
            raise UserError(f"making the workflow {target} failed: {type(err).__name__}: {err}") from err
        if not isinstance(made, Workflow):
            raise UserError(f"{target}() returned {type(made).__name__}, not a rayflow Workflow")
        return made

    if _is_workflow_class(found) or isinstance(found, Workflow):
        return build, False
    if callable(found) and not isinstance(found, type):
        return build, True
    raise UserError(f"{target} is not a rayflow Workflow subclass, instance, or a function returning one")


def _ready_workflow(
    target: str, kwargs: dict[str, object] | None, timeout: float | None, address: str | None, log_to_driver: bool
) -> Workflow:
    """The workflow ``target`` names, checked (its graph, and ``kwargs`` against its StartEvent when given), on a
    connected Ray. What can be checked without Ray is checked before Ray starts."""
    from rayflow.commands.connect import connect
    from rayflow.commands.run import check_arguments, check_workflow

    make, needs_ray = workflow_maker(target, timeout)
    workflow = None if needs_ray else make()
    if workflow is not None:
        check_workflow(workflow)
        if kwargs is not None:
            check_arguments(workflow, kwargs)
    connect(address, log_to_driver=log_to_driver)
    if workflow is None:
        workflow = make()
        check_workflow(workflow)
        if kwargs is not None:
            check_arguments(workflow, kwargs)
    return workflow


def _format_of(fmt: str | None, output: str | None) -> str:
    if fmt is not None:
        if fmt not in _FORMATS:
            raise UserError(f"unknown format {fmt!r}; choose one of {', '.join(_FORMATS)}")
        return fmt
    if output is None:
        return "mermaid"
    suffix = Path(output).suffix.lower()
    if suffix not in _SUFFIXES:
        raise UserError(f"cannot tell the format from {output!r}; pass --format ({', '.join(_FORMATS)})")
    return _SUFFIXES[suffix]


@click.group(name="rayflow")
def rayflow() -> None:
    """rayflow: LlamaIndex-style workflows, run as actors on Ray."""


@rayflow.command()
@click.argument("target", metavar="MODULE:WORKFLOW")
@click.option("-o", "--output", help="File to write; its suffix picks the format. Default: stdout.")
@click.option("--format", "fmt", metavar="mermaid|dot|svg|html", help="Output format (default: from -o, else mermaid).")
def draw(target: str, output: str | None, fmt: str | None) -> None:
    """Draw the steps and events of a workflow class, without starting Ray.

    MODULE:WORKFLOW is a module on the path (the current directory first) or a .py file, and a class in it:
    `rayflow draw examples/branching.py:TriageWorkflow -o graph.html`.
    """
    try:
        chosen = _format_of(fmt, output)
        workflow_class = load_workflow(target)
        try:
            graph = graph_of(workflow_class)
        except WorkflowConfigurationError as err:
            raise UserError(f"{target} does not compile: {err}") from err
        text = _FORMATS[chosen](graph)
        if output is None:
            click.echo(text, nl=False)
        else:
            try:
                Path(output).write_text(text, encoding="utf-8")
            except OSError as err:
                raise UserError(f"cannot write {output}: {err.strerror}") from err
    except UserError as err:
        _fail(str(err))


def _served(targets: tuple[str, ...]) -> dict[str, Workflow]:
    """One workflow instance per ``[NAME=]MODULE:WORKFLOW``, by the name clients use (the class name by default)."""
    served: dict[str, Workflow] = {}
    for target in targets:
        name, equals, location = target.partition("=")
        if not equals or ":" in name:
            name, location = "", target
        workflow_class = load_workflow(location)
        name = name or workflow_class.__name__
        if name in served:
            raise UserError(f"two workflows are served as {name!r}; name one with NAME=MODULE:WORKFLOW")
        try:
            served[name] = workflow_class()
        except Exception as err:
            raise UserError(f"{location}() failed: {type(err).__name__}: {err}") from err
    return served


@rayflow.command()
@click.argument("targets", nargs=-1, required=True, metavar="[NAME=]MODULE:WORKFLOW...")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option(
    "--token",
    envvar="RAYFLOW_TOKEN",
    help="Bearer token every request must carry (env RAYFLOW_TOKEN); required off 127.0.0.1.",
)
def serve(targets: tuple[str, ...], host: str, port: int, token: str | None) -> None:
    """Serve workflows over HTTP with the REST API of LlamaIndex's workflow server.

    Each MODULE:WORKFLOW is served under its class name (or NAME=MODULE:WORKFLOW under NAME), one instance each:
    `rayflow serve examples/branching.py:TriageWorkflow --port 8000`.
    """
    try:
        try:
            from rayflow.serve import check_binding
            from rayflow.serve import serve as serve_workflows
        except ImportError as err:
            raise UserError(f"rayflow serve needs FastAPI and uvicorn: pip install 'rayflow[serve]' ({err})") from err
        try:
            check_binding(host, token)
        except ServeConfigurationError as err:
            raise UserError(str(err)) from err
        workflows = _served(targets)
        serve_workflows(workflows, host=host, port=port, token=token)
    except UserError as err:
        _fail(str(err))


_ADDRESS_HELP = "Ray cluster to join (host:port, ray://host:port, auto); default: RAY_ADDRESS, else a local Ray."


@rayflow.command()
@click.argument("target", metavar="MODULE:WORKFLOW")
@click.option(
    "--kw", "pairs", multiple=True, metavar="KEY=VALUE", help="A keyword argument; VALUE as JSON if it parses."
)
@click.option(
    "--input", "input_file", metavar="FILE.json", help="A JSON object of keyword arguments (--kw adds to it)."
)
@click.option("--address", help=_ADDRESS_HELP)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line: each event, then the result.")
@click.option("--timeout", type=float, help="Seconds the run may take (default: the workflow's own timeout).")
@click.option("--stats", "stats", is_flag=True, help="Then the run's per-step statistics (stderr; with --json a line).")
def run(
    target: str,
    pairs: tuple[str, ...],
    input_file: str | None,
    address: str | None,
    as_json: bool,
    timeout: float | None,
    stats: bool,
) -> None:
    """Run a workflow once, printing its streamed events as they arrive, then its result.

    `rayflow run examples/streaming.py:StreamingWorkflow --kw topic=rayflow`. Exit status 1 when the run fails.
    """
    from rayflow.commands.run import keyword_arguments, run_command

    try:
        kwargs = keyword_arguments(pairs, input_file)
        workflow = _ready_workflow(target, kwargs, timeout, address, log_to_driver=not as_json)
    except UserError as err:
        _fail(str(err))
    try:
        code = asyncio.run(run_command(workflow, kwargs, as_json, timeout, stats))
    except KeyboardInterrupt:
        click.echo("rayflow: interrupted; the run was cancelled", err=True)
        code = 130
    sys.exit(code)


@rayflow.command()
@click.argument("target", metavar="MODULE:WORKFLOW")
@click.argument("inputs", metavar="INPUTS.jsonl")
@click.option("-o", "--output", required=True, metavar="RESULTS.jsonl", help="Where each run's record is appended.")
@click.option("--concurrency", default=8, show_default=True, help="Most runs in flight at once.")
@click.option("--address", help=_ADDRESS_HELP)
@click.option("--timeout", type=float, help="Seconds each run may take (default: the workflow's own timeout).")
@click.option("--retry-failed", is_flag=True, help="Run again the inputs recorded as failed in the output.")
def batch(
    target: str,
    inputs: str,
    output: str,
    concurrency: int,
    address: str | None,
    timeout: float | None,
    retry_failed: bool,
) -> None:
    """Run a workflow once per line of INPUTS.jsonl (a JSON object of keyword arguments), all on one instance.

    Each run's record, {"index", "input", "result", "error"}, is appended to RESULTS.jsonl as the run ends; a rerun
    with the same -o skips the inputs recorded there. Ctrl-C stops cleanly (exit status 130).
    """
    from rayflow.commands.batch import batch_command, open_output, read_inputs

    try:
        if concurrency < 1:
            raise UserError(f"--concurrency must be at least 1, got {concurrency}")
        loaded = read_inputs(Path(inputs))
        out, recovered = open_output(Path(output), loaded, retry_failed)
        workflow = _ready_workflow(target, None, timeout, address, log_to_driver=True)
    except UserError as err:
        _fail(str(err))
    again = shlex.join(["rayflow", *sys.argv[1:]]) if sys.argv[1:2] == ["batch"] else "the same command"
    sys.exit(asyncio.run(batch_command(workflow, loaded, out, recovered, concurrency, timeout, again)))


@rayflow.command()
@click.option("--events", default="1000,5000,10000", show_default=True, help="Comma-separated fan-out sizes.")
@click.option("--workers", default=4, show_default=True, help="num_workers of the fan-out's worker step.")
@click.option("--chain", default=2000, show_default=True, help="Hops of the sequential chains (0 skips them).")
@click.option(
    "--llama-max", default=5000, show_default=True, help="Largest size LlamaIndex runs (its fan-in is quadratic)."
)
@click.option("--repeat", default=1, show_default=True, help="Timed runs per measurement; the best is kept.")
@click.option("--engines", default=None, help="Comma-separated subset of rayflow,llama,ray (default: all there are).")
@click.option(
    "--quick",
    is_flag=True,
    help="Sizes 1000,5000, LlamaIndex to 1000, 100 hops: well under a minute on a quiet machine.",
)
@click.option("--address", help=_ADDRESS_HELP)
def bench(
    events: str,
    workers: int,
    chain: int,
    llama_max: int,
    repeat: int,
    engines: str | None,
    quick: bool,
    address: str | None,
) -> None:
    """Time a fan-out/fan-in and two chains on rayflow, LlamaIndex Workflows (when installed) and raw Ray.

    Prints a table of events/s, ms per hop and the ratios. `rayflow bench --quick`.
    """
    from rayflow.commands.bench import ENGINES, llama_available, render, run_bench
    from rayflow.commands.connect import connect

    try:
        llama_warm_up = 1000
        if quick:
            events, llama_max, chain, llama_warm_up = "1000,5000", 1000, 100, 100
        try:
            sizes = sorted({int(size) for size in events.split(",") if size.strip()})
        except ValueError as err:
            raise UserError(f"--events takes comma-separated integers, got {events!r}") from err
        if not sizes or sizes[0] < 1 or workers < 1 or repeat < 1 or chain < 0:
            raise UserError("--events sizes, --workers and --repeat must be at least 1, --chain at least 0")
        chosen = [e.strip() for e in engines.split(",")] if engines else [e for e in ENGINES]
        unknown = sorted(set(chosen) - set(ENGINES))
        if unknown:
            raise UserError(f"unknown engines {', '.join(unknown)}; choose from {','.join(ENGINES)}")
        if "llama" in chosen and not llama_available():
            if engines:
                raise UserError("LlamaIndex Workflows is not installed (pip install llama-index-workflows)")
            chosen.remove("llama")
            click.echo("rayflow: LlamaIndex Workflows is not installed: rayflow and raw Ray only", err=True)
        connect(address, log_to_driver=False)  # stdout is the table's
    except UserError as err:
        _fail(str(err))
    results = asyncio.run(run_bench(chosen, sizes, workers, chain, repeat, llama_max, llama_warm_up))
    click.echo(render(results, sizes, chain))


def main() -> None:
    """The console script ``rayflow``."""
    rayflow(prog_name="rayflow")


if __name__ == "__main__":
    main()
