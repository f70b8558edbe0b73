"""Run the compatibility suite against LlamaIndex Workflows, to prove each ported test is faithful.

    python tests/compat/run_on_llamaindex.py [pytest args...]

Copies ``tests/compat/test_compat_*.py`` and ``upstream_fixtures.py`` to a temporary folder, rewrites
``rayflow`` back to ``workflows`` in the imports, and runs pytest there with LlamaIndex Workflows
(``llama-index-workflows``) installed. ``ray_env`` becomes a no-op fixture, the ``xfail`` marks that record
rayflow's bugs and differences are dropped (LlamaIndex must pass those tests), and ``rayflow_only`` tests
are deselected.
A test that passes here and fails on rayflow is an engine bug or a documented difference.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

CONFTEST = """
import pytest
from upstream_fixtures import events, workflow  # noqa: F401


def pytest_configure(config):
    config.addinivalue_line("markers", "rayflow_only: not run on LlamaIndex")


def pytest_collection_modifyitems(config, items):
    for item in items:
        item.own_markers = [m for m in item.own_markers if m.name != "xfail"]


@pytest.fixture
def ray_env():
    yield
"""

PYTEST_INI = """[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = session
asyncio_default_test_loop_scope = session
timeout = 120
"""


def rewrite(source: str) -> str:
    """``rayflow`` -> ``workflows`` in import lines (``from rayflow.events import ...``, ``import rayflow``)."""
    return re.sub(r"^(\s*(?:from|import)\s+)rayflow\b", r"\1workflows", source, flags=re.MULTILINE)


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="compat_on_llamaindex_") as tmp:
        root = Path(tmp) / "compat"
        root.mkdir()
        for path in [HERE / "upstream_fixtures.py", *sorted(HERE.glob("test_compat_*.py"))]:
            (root / path.name).write_text(rewrite(path.read_text()))
        (root / "conftest.py").write_text(CONFTEST)
        (Path(tmp) / "pytest.ini").write_text(PYTEST_INI)
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-m",
            "not rayflow_only",
            "-c",
            str(Path(tmp) / "pytest.ini"),
            "--rootdir",
            tmp,
            str(root),
            *argv,
        ]
        return subprocess.call(command, cwd=tmp)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
