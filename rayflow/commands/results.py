"""A batch's output: one JSON object per finished run, one per line, appended and flushed as each run ends.

The file is its own progress record. Opening it again for the same inputs keeps each complete record and drops what
a killed process may have left: a last line cut off mid-write, a line that does not parse, a second record of an
index; the file is then rewritten (to a temporary file, then renamed over it) without them, so every index appears
at most once and each line is whole. A record whose input differs from the input now at its index means the file
belongs to other inputs: that is refused rather than mixed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from rayflow.commands import UserError
from rayflow.commands.records import dumps, jsonable

__all__ = ["Recovered", "ResultsFile"]


class Recovered:
    """What an existing output file held: the indices done and failed, and how many lines were dropped."""

    def __init__(self) -> None:
        self.done: set[int] = set()
        self.failed: set[int] = set()
        self.dropped = 0
        self.retried = 0


class ResultsFile:
    """The JSON-lines output of a batch over ``inputs``; :meth:`recover` first, then :meth:`append` per run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._out: IO[str] | None = None

    def recover(self, inputs: list[dict[str, Any]], retry_failed: bool = False) -> Recovered:
        """Read what an earlier batch wrote, repair the file, and open it for appending.

        ``retry_failed`` drops the records of failed runs as well, so their inputs run again.
        """
        found = Recovered()
        kept: list[str] = []
        text = self._read()
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the file ends with a newline: no cut-off line
        for number, line in enumerate(lines, start=1):
            record = self._parse(line)
            if record is None:
                found.dropped += 1
                continue
            index = record["index"]
            if index in found.done:
                found.dropped += 1
                continue
            if not 0 <= index < len(inputs):
                raise UserError(f"{self.path} line {number} has index {index}, beyond the {len(inputs)} inputs")
            if record.get("input") != jsonable(inputs[index]):
                raise UserError(
                    f"{self.path} holds the results of other inputs (line {number}, index {index}, differs); "
                    "choose another -o"
                )
            if retry_failed and record.get("error") is not None:
                found.retried += 1
                continue
            found.done.add(index)
            if record.get("error") is not None:
                found.failed.add(index)
            kept.append(line)
        if found.dropped or found.retried or (text and not text.endswith("\n")):
            self._rewrite(kept)
        try:
            self._out = self.path.open("a", encoding="utf-8")
        except OSError as err:
            raise UserError(f"cannot write {self.path}: {err.strerror}") from err
        return found

    def append(self, record: dict[str, Any]) -> None:
        """Write one record as one line and flush it (a reader sees whole lines only)."""
        assert self._out is not None, "recover() opens the file"
        self._out.write(dumps(record) + "\n")
        self._out.flush()

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def _read(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        except OSError as err:
            raise UserError(f"cannot read {self.path}: {err.strerror}") from err

    @staticmethod
    def _parse(line: str) -> dict[str, Any] | None:
        try:
            record = json.loads(line)
        except ValueError:
            return None
        if not isinstance(record, dict) or type(record.get("index")) is not int:
            return None
        return record

    def _rewrite(self, lines: list[str]) -> None:
        temporary = self.path.with_name(self.path.name + ".tmp")
        try:
            with temporary.open("w", encoding="utf-8") as out:
                out.writelines(line + "\n" for line in lines)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        except OSError as err:
            raise UserError(f"cannot repair {self.path}: {err.strerror}") from err
