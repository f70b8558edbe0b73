"""``rayflow serve`` on the command line: what it serves under which name, and each refusal as one line on stderr
with exit status 2, before any Ray starts."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import rayflow.serve as serve_package
from rayflow.cli import rayflow as cli

REPO = Path(__file__).resolve().parents[2]
BRANCHING = f"{REPO / 'examples' / 'branching.py'}:TriageWorkflow"


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """What ``rayflow serve`` hands to the server, which is not started."""
    monkeypatch.delenv("RAYFLOW_TOKEN", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    seen: dict[str, Any] = {}
    monkeypatch.setattr(
        serve_package, "serve", lambda workflows, **options: seen.update(workflows=workflows, **options)
    )
    yield seen
    for name in set(sys.modules) - before:  # the example loaded from its file
        del sys.modules[name]


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["serve", *args], env=env)
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stderr


def test_each_workflow_is_served_under_its_class_name_or_the_name_given(served: dict[str, Any]) -> None:
    code, err = invoke(BRANCHING, f"triage={BRANCHING}", "--port", "9001", env={"RAYFLOW_TOKEN": "t"})
    assert (code, err) == (0, "")
    assert {name: type(wf).__name__ for name, wf in served["workflows"].items()} == {
        "TriageWorkflow": "TriageWorkflow",
        "triage": "TriageWorkflow",
    }
    assert (served["host"], served["port"], served["token"]) == ("127.0.0.1", 9001, "t")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host", "0.0.0.0", BRANCHING], "listening on 0.0.0.0 needs a bearer token"),
        (["--token", " ", BRANCHING], "the token is empty"),
        (["nosuchmodule:Flow"], "module not found: nosuchmodule"),
        ([BRANCHING, BRANCHING], "two workflows are served as 'TriageWorkflow'"),
    ],
)
def test_each_refusal_is_one_line_and_exit_status_two(served: dict[str, Any], args: list[str], message: str) -> None:
    code, err = invoke(*args)
    assert code == 2 and err.count("\n") == 1 and message in err
    assert served == {}


def test_a_token_lets_it_listen_beyond_this_machine(served: dict[str, Any]) -> None:
    code, _ = invoke("--host", "0.0.0.0", BRANCHING, env={"RAYFLOW_TOKEN": "t"})
    assert code == 0 and served["host"] == "0.0.0.0"
