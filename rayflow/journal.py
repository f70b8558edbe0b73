"""Run journals: where a journaled run (``Workflow(journal=...)``) records its progress, so that it survives its driver
and its actors.

A journal is a directory: a local path, or any fsspec URL (``s3://bucket/runs``, ``memory://runs``) where fsspec and
the filesystem's package are installed (fsspec is imported only for a URL). It holds one record per run,
``<run_id>.json``, replaced whole at each write: locally through a temporary file renamed over the record (a reader
sees the old record or the new one, never a mix, and a killed writer leaves the last one whole); through fsspec as
one whole-object write, which object stores make atomic. The record survives the processes that wrote it, not a
machine that loses its disk before the system flushed it (no fsync).

A record holds the run's status (running, done, failed, cancelled, timed_out), its latest checkpoint (a context
snapshot, the data of ``ctx.to_dict()``: the run's state and unfinished work) and, once the run ended, its result
(the StopEvent, written with the journal's serializer) or its error message. A done run's record drops its
checkpoint; an unfinished one keeps it (``Context.from_dict(workflow, record.checkpoint)`` goes on from there).

Reading a record never imports or unpickles a class the data names: checkpoints and results are rebuilt with the
journal's serializer (``JsonSerializer`` by default) allowed only the workflow's own event and state types, as
``Context.from_dict`` does. ``Journal(path, serializer=JsonSerializer(allowed_types=[...]))`` or
``PickleSerializer()`` opt in to more, for journals you trust.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from rayflow.config import settings
from rayflow.context.serializers import BaseSerializer, JsonSerializer
from rayflow.context.state_store import DictState
from rayflow.errors import ContextSerdeError, JournalError
from rayflow.events import StopEvent
from rayflow.spec import WorkflowSpec

__all__ = ["Journal", "RunRecord", "RunStatus"]

#: The version of the record format this module writes; a record of a newer version is refused.
RECORD_VERSION = 1
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class RunStatus(str, Enum):
    """Where a journaled run stands."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


@dataclass(frozen=True)
class RunRecord:
    """One run's record in a journal, as written: JSON with the journal's serializer.

    ``checkpoint``: the latest context snapshot (``ctx.to_dict()`` data), None once done. ``result``: for a done run,
    ``{"stop": <the StopEvent without its result>, "result": <its result>}`` as the serializer wrote them, or None
    with ``result_error`` saying why they could not be written. ``error``: for a run that ended otherwise, its message.
    """

    run_id: str
    workflow: str
    status: RunStatus
    checkpoint: dict[str, Any] | None = None
    checkpoints: int = 0
    result: dict[str, Any] | None = None
    result_error: str | None = None
    error: str | None = None
    error_type: str | None = None
    recoveries: int = 0
    updated: float = field(default_factory=time.time)
    version: int = RECORD_VERSION

    def to_json(self) -> str:
        data = asdict(self)
        data["status"] = self.status.value
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str, where: str) -> RunRecord:
        try:
            data = json.loads(text)
            version = data.get("version")
            if not isinstance(version, int) or version > RECORD_VERSION:
                raise JournalError(
                    f"The journal record {where} has version {version!r}; rayflow reads up to version {RECORD_VERSION}"
                )
            data["status"] = RunStatus(data["status"])
            return cls(**data)
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise JournalError(f"The journal record {where} cannot be read: {type(err).__name__}: {err}") from err

    @property
    def finished(self) -> bool:
        return self.status is not RunStatus.RUNNING


class _Store(Protocol):
    """Whole files in one directory."""

    def write(self, name: str, text: str) -> None: ...
    def read(self, name: str) -> str | None: ...
    def names(self) -> list[str]: ...


class _LocalStore:
    def __init__(self, path: Path) -> None:
        self._path = path

    def write(self, name: str, text: str) -> None:
        self._path.mkdir(parents=True, exist_ok=True)
        temporary = self._path / f".{name}.{uuid.uuid4().hex}.tmp"
        temporary.write_text(text)
        os.replace(temporary, self._path / name)

    def read(self, name: str) -> str | None:
        try:
            return (self._path / name).read_text()
        except FileNotFoundError:
            return None

    def names(self) -> list[str]:
        return [p.name for p in self._path.iterdir()] if self._path.is_dir() else []


class _FsspecStore:
    def __init__(self, url: str) -> None:
        try:
            import fsspec
        except ImportError as err:
            raise JournalError(
                f"The journal {url!r} is a URL: reading it needs fsspec (pip install fsspec, and the package of its "
                f"filesystem, e.g. s3fs or gcsfs)"
            ) from err
        self._fs, self._root = fsspec.core.url_to_fs(url)
        self._root = self._root.rstrip("/")

    def write(self, name: str, text: str) -> None:
        self._fs.makedirs(self._root, exist_ok=True)
        self._fs.pipe_file(f"{self._root}/{name}", text.encode())

    def read(self, name: str) -> str | None:
        try:
            data: bytes = self._fs.cat_file(f"{self._root}/{name}")
        except FileNotFoundError:
            return None
        return data.decode()

    def names(self) -> list[str]:
        if not self._fs.exists(self._root):
            return []
        return [str(path).rstrip("/").rsplit("/", 1)[-1] for path in self._fs.ls(self._root, detail=False)]


class Journal:
    """A directory of run records (``location``: a path, or an fsspec URL).

    ``serializer`` writes and reads checkpoints and results (default ``JsonSerializer``: the workflow's own types
    only); ``interval_s``: seconds between two checkpoints of a run (default ``RAYFLOW_JOURNAL_INTERVAL_S``).
    Methods do blocking I/O: the runtime calls them from a thread.
    """

    def __init__(
        self,
        location: str | os.PathLike[str],
        *,
        serializer: BaseSerializer | None = None,
        interval_s: float | None = None,
    ) -> None:
        self.location = os.fspath(location)
        self.serializer = serializer or JsonSerializer()
        self.interval_s = settings().journal_interval_s if interval_s is None else interval_s
        if "://" in self.location and not self.location.startswith("file://"):
            self._store: _Store = _FsspecStore(self.location)
        else:
            self._store = _LocalStore(Path(self.location.removeprefix("file://")))

    def __repr__(self) -> str:
        return f"Journal({self.location!r})"

    def _name(self, run_id: str) -> str:
        if not _RUN_ID.fullmatch(run_id):
            raise JournalError(f"{run_id!r} is not a run id (letters, digits, '_', '.' and '-')")
        return f"{run_id}.json"

    def write(self, record: RunRecord) -> None:
        """Replace the run's record with ``record``, atomically."""
        try:
            self._store.write(self._name(record.run_id), record.to_json())
        except OSError as err:
            raise JournalError(f"Cannot write run {record.run_id} to the journal {self.location}: {err}") from err

    def read(self, run_id: str) -> RunRecord:
        """The run's record; ``JournalError`` naming the journal when it has none."""
        name = self._name(run_id)
        try:
            text = self._store.read(name)
        except OSError as err:
            raise JournalError(f"Cannot read run {run_id} from the journal {self.location}: {err}") from err
        if text is None:
            raise JournalError(f"The journal {self.location} has no run {run_id!r}")
        return RunRecord.from_json(text, f"{self.location}/{name}")

    def runs(self) -> list[str]:
        """The ids of the runs recorded here, sorted."""
        return sorted(n.removesuffix(".json") for n in self._store.names() if n.endswith(".json") and n[0] != ".")

    # -- results ------------------------------------------------------------------------------------

    def result_data(self, stop: StopEvent) -> tuple[dict[str, Any] | None, str | None]:
        """What a done run's record holds of its StopEvent: the data, or None and why it cannot be written."""
        bare = stop.model_copy()
        bare._result = None  # written on its own, so a result model keeps its class
        try:
            data = {
                "stop": self.serializer.serialize_value(bare),
                "result": self.serializer.serialize_value(stop.result),
            }
            json.dumps(data)
        except Exception as err:  # whatever the serializer raises: the record says it, the run's result stands
            return None, f"{type(err).__name__}: {err}"
        return data, None

    def stop_event(self, record: RunRecord, spec: WorkflowSpec) -> StopEvent:
        """The StopEvent of a done run, rebuilt with only the workflow's own types (and what the serializer allows)."""
        if record.result is None:
            raise JournalError(
                f"Run {record.run_id} is done, but the journal {self.location} could not store its result "
                f"({record.result_error}); pass Journal(..., serializer=...) that can write it"
            )
        serializer = self.serializer.with_types(DictState, *spec.state_types, *spec.event_keys)
        try:
            stop = serializer.deserialize_value(record.result["stop"])
            result = serializer.deserialize_value(record.result["result"])
        except (ContextSerdeError, ValueError, KeyError, TypeError) as err:
            raise JournalError(f"The result of run {record.run_id} in the journal {self.location}: {err}") from err
        if not isinstance(stop, StopEvent):
            raise JournalError(f"The result of run {record.run_id} is a {type(stop).__name__}, not a StopEvent")
        stop._result = result
        return stop
