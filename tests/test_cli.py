"""The ``rayflow`` command: ``rayflow draw`` through click's runner, once as a real process, and every user error
as one line on stderr with exit status 2."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from rayflow.cli import rayflow

REPO = Path(__file__).resolve().parent.parent
BRANCHING = f"{REPO / 'examples' / 'branching.py'}:TriageWorkflow"

MODULE = textwrap.dedent(
    """
    from rayflow import Event, StartEvent, StopEvent, Workflow, step

    class Middle(Event):
        pass

    class Good(Workflow):
        @step
        async def first(self, ev: StartEvent) -> Middle:
            return Middle()

        @step
        async def second(self, ev: Middle) -> StopEvent:
            return StopEvent()

    class NoStop(Workflow):
        @step
        async def first(self, ev: StartEvent) -> Middle:
            return Middle()

    NOT_A_CLASS = 3

    class Plain:
        pass
    """
)


@pytest.fixture
def in_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A current directory holding ``drawme.py``, importable as a module; the modules it loads are dropped after."""
    (tmp_path / "drawme.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def draw(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(rayflow, ["draw", *args])
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_draw_prints_mermaid_by_default(in_project: Path) -> None:
    code, out, _ = draw("drawme:Good")
    assert code == 0
    assert out.startswith("flowchart TD\n") and "step_first --> " in out


@pytest.mark.parametrize(
    ("name", "fmt", "start"),
    [("g.html", "html", "<!DOCTYPE html>"), ("g.svg", "svg", "<svg"), ("g.dot", "dot", "digraph")],
)
def test_draw_takes_the_format_from_the_output_suffix(in_project: Path, name: str, fmt: str, start: str) -> None:
    code, out, _ = draw("drawme:Good", "-o", name)
    assert (code, out) == (0, "")
    assert (in_project / name).read_text().startswith(start)


def test_format_wins_over_the_suffix_and_writes_to_stdout_without_output(in_project: Path) -> None:
    code, out, _ = draw("drawme:Good", "--format", "dot")
    assert code == 0 and out.startswith('digraph "Good"')
    code, _, _ = draw("drawme:Good", "-o", "graph.txt", "--format", "svg")
    assert code == 0
    ET.fromstring((in_project / "graph.txt").read_text())


def test_draw_loads_a_file_path(in_project: Path) -> None:
    code, out, _ = draw(BRANCHING, "--format", "mermaid")
    assert code == 0
    assert '(["SeveralParts"])' in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuchmodule:Good"], "module not found: nosuchmodule"),
        (["no/such/file.py:Good"], "no such file: no/such/file.py"),
        (["drawme:Missing"], "drawme has no attribute 'Missing'"),
        (["drawme:NOT_A_CLASS"], "drawme:NOT_A_CLASS is not a rayflow Workflow subclass"),
        (["drawme:Plain"], "drawme:Plain is not a rayflow Workflow subclass"),
        (["drawme"], "expected MODULE:WORKFLOW"),
        (["drawme:NoStop"], "drawme:NoStop does not compile: At least one Event of type StopEvent must be returned"),
        (["drawme:Good", "--format", "png"], "unknown format 'png'; choose one of mermaid, dot, svg, html"),
        (["drawme:Good", "-o", "graph.png"], "cannot tell the format from 'graph.png'"),
    ],
)
def test_each_mistake_is_one_line_on_stderr_and_exit_status_two(
    in_project: Path, args: list[str], message: str
) -> None:
    code, out, err = draw(*args)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("rayflow: error: ")
    assert message in err
    assert "Traceback" not in err


def test_draw_runs_as_a_real_process_on_the_branching_example(tmp_path: Path) -> None:
    page = tmp_path / "graph.html"
    done = subprocess.run(
        [sys.executable, "-m", "rayflow.cli", "draw", "examples/branching.py:TriageWorkflow", "-o", str(page)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert 'id="step_answer_in_depth"' in page.read_text()

    failed = subprocess.run(
        [sys.executable, "-m", "rayflow.cli", "draw", "examples/branching.py:Nope"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failed.returncode == 2
    assert failed.stderr.strip().splitlines() == ["rayflow: error: examples/branching.py has no attribute 'Nope'"]
