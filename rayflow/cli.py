"""The ``rayflow`` command: argument parsing only; what each subcommand does lives in the library below it.

``rayflow draw MODULE:WORKFLOW`` loads a workflow class (a module on ``sys.path`` with the current directory
first, as ``python -m`` has it, or a file path such as ``examples/branching.py``) and writes its graph
(``rayflow.draw``). A user's mistake is one line on stderr and exit status 2, never a traceback.

``rayflow serve [NAME=]MODULE:WORKFLOW...`` serves workflows over HTTP (``rayflow.serve``).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import click

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


class UserError(Exception):
    """A mistake in the command line or in the code it names; shown as one line, exit status 2."""


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


def load_workflow(target: str) -> type[Workflow]:
    """The ``Workflow`` subclass that ``MODULE:CLASS`` (or ``path/to/file.py:CLASS``) names."""
    module_name, colon, attribute = target.rpartition(":")
    if not colon or not module_name or not attribute:
        raise UserError(f"expected MODULE:WORKFLOW (for example examples/branching.py:TriageWorkflow), got {target!r}")
    module = _load_module(module_name)
    found = module
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise UserError(f"{module_name} has no attribute {attribute!r}")
        found = getattr(found, part)
    if not (isinstance(found, type) and issubclass(found, Workflow)) or found is Workflow:
        raise UserError(f"{target} is not a rayflow Workflow subclass")
    return found


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


def main() -> None:
    """The console script ``rayflow``."""
    rayflow(prog_name="rayflow")


if __name__ == "__main__":
    main()
