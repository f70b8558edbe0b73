"""Run tutorial blocks the way a reader working through the tutorial runs them: one after another, in one session.

    python reader_session.py SPEC.json

SPEC is a list of sessions, each ``{"name": ..., "files": [...], "drive": FUNC | null}``. Each session gets a
fresh module namespace called ``name`` (registered in ``sys.modules``, with a ``__file__``, so rayflow ships it to
its step actors by value, as it does a script's); the files run in it in order (a program's own
``asyncio.run(main())`` runs here), then ``session_drivers.<drive>(namespace)`` is awaited for blocks that define
a workflow but never run it. Around each session this prints ``@@ begin <name>`` and ``@@ end <name> <json>``, the
JSON being ``{"result": ...}`` or ``{"error": type name, "message": ...}``, so a test can read each session's output
apart. All sessions share this process and its one embedded Ray, started by rayflow on first use, as a reader's
Python session would.
"""

from __future__ import annotations

import asyncio
import json
import sys
import types
from pathlib import Path
from typing import Any

import session_drivers


def run_session(name: str, files: list[str], drive: str | None) -> dict[str, Any]:
    module = types.ModuleType(name)
    # A module with a file, like a script's: rayflow ships such a module to its step actors by value.
    module.__file__ = str(Path(files[-1]).resolve())
    sys.modules[name] = module
    namespace = module.__dict__
    try:
        for file in files:
            # dont_inherit: the file's code must not get this script's `from __future__` imports.
            code = compile(Path(file).read_text(encoding="utf-8"), file, "exec", dont_inherit=True)
            exec(code, namespace)
        result = asyncio.run(getattr(session_drivers, drive)(namespace)) if drive else None
    except Exception as err:
        return {"error": type(err).__name__, "message": str(err)}
    return {"result": result}


def main() -> None:
    for spec in json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")):
        print(f"@@ begin {spec['name']}", flush=True)
        outcome = run_session(spec["name"], spec["files"], spec.get("drive"))
        print(f"@@ end {spec['name']} {json.dumps(outcome)}", flush=True)


if __name__ == "__main__":
    main()
