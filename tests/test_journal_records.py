"""Journals without Ray: records written whole and read back, in a local directory or through fsspec; results that
round-trip with their classes, and those that cannot be written said so; what a journal refuses to read."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
from pydantic import BaseModel

from rayflow import Journal, JournalError, StartEvent, StopEvent, Workflow, step
from rayflow.context.serializers import JsonSerializer
from rayflow.journal import RunRecord, RunStatus
from rayflow.spec import WorkflowSpec


class Answer(BaseModel):
    text: str


class Answered(StopEvent):
    answer: str


class Asks(Workflow):
    @step
    async def ask(self, ev: StartEvent) -> Answered:
        return Answered(answer="yes")


def test_a_record_is_replaced_whole_and_read_back_and_runs_are_listed(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "runs")
    assert journal.runs() == []
    journal.write(RunRecord("b", "m.W", RunStatus.RUNNING, checkpoint={"version": 1}, checkpoints=1))
    journal.write(RunRecord("a", "m.W", RunStatus.RUNNING))
    journal.write(RunRecord("b", "m.W", RunStatus.DONE, checkpoints=2, result={"stop": None, "result": 3}))
    assert journal.runs() == ["a", "b"]
    record = journal.read("b")
    assert (record.status, record.checkpoint, record.checkpoints, record.result) == (
        RunStatus.DONE,
        None,
        2,
        {"stop": None, "result": 3},
    )
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["a.json", "b.json"]  # no temporary file left


def test_a_journal_at_an_fsspec_url_keeps_records_the_same_way() -> None:
    url = f"memory://rayflow-{uuid.uuid4().hex}/runs"
    journal = Journal(url)
    journal.write(RunRecord("r1", "m.W", RunStatus.FAILED, error="boom", error_type="ValueError"))
    assert Journal(url).runs() == ["r1"]
    assert Journal(url).read("r1").error == "boom"
    with pytest.raises(JournalError, match=f"^The journal {url} has no run 'r2'$"):
        journal.read("r2")


def test_a_url_without_fsspec_installed_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fsspec", None)  # what an environment without fsspec imports
    with pytest.raises(JournalError, match=r"^The journal 's3://bucket/runs' is a URL: reading it needs fsspec"):
        Journal("s3://bucket/runs")


def test_records_of_a_newer_format_or_not_records_at_all_are_refused(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    (tmp_path / "new.json").write_text('{"version": 99, "run_id": "new"}')
    (tmp_path / "junk.json").write_text("not json")
    with pytest.raises(JournalError, match="has version 99; rayflow reads up to version 1"):
        journal.read("new")
    with pytest.raises(JournalError, match="cannot be read: JSONDecodeError"):
        journal.read("junk")


def test_a_result_round_trips_with_the_workflows_own_classes_and_the_allowed_ones(tmp_path: Path) -> None:
    spec = WorkflowSpec.of(Asks)
    journal = Journal(tmp_path)
    data, why = journal.result_data(Answered(answer="yes"))
    assert why is None
    stop = journal.stop_event(RunRecord("r", "m.W", RunStatus.DONE, result=data), spec)
    assert type(stop) is Answered and stop.answer == "yes"

    data, _ = journal.result_data(StopEvent(result=Answer(text="hi")))
    with pytest.raises(JournalError, match="which is not among the allowed types"):
        journal.stop_event(RunRecord("r", "m.W", RunStatus.DONE, result=data), spec)
    allowed = Journal(tmp_path, serializer=JsonSerializer(allowed_types=[Answer]))
    assert allowed.stop_event(RunRecord("r", "m.W", RunStatus.DONE, result=data), spec).result == Answer(text="hi")


def test_a_result_the_serializer_cannot_write_is_said_in_the_record_and_on_reading_it(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    data, why = journal.result_data(StopEvent(result={1, 2}))
    assert data is None and why == "ContextSerdeError: Cannot serialize a set to JSON; use PickleSerializer"
    record = RunRecord("r", "m.W", RunStatus.DONE, result=data, result_error=why)
    with pytest.raises(JournalError, match=r"could not store its result \(ContextSerdeError: Cannot serialize a set"):
        journal.stop_event(record, WorkflowSpec.of(Asks))
