"""``rayflow bench`` in process, on the session's Ray, at a tiny size: every engine's fan-out measured and the table
printed (chains skipped: each is one more workflow instance to start)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from rayflow.cli import rayflow


@pytest.mark.slow  # ~9 s of benchmark runs on three engines
def test_bench_prints_a_table_of_every_engine_and_the_ratios(ray_env: None) -> None:
    args = ["bench", "--events", "40", "--chain", "0", "--workers", "2", "--engines", "rayflow,llama,ray"]
    result = CliRunner().invoke(rayflow, args)
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if line.startswith("| 40 |")]
    assert len(rows) == 1, result.stdout
    cells = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert "n/a" not in cells and cells[4].endswith("x") and cells[5].endswith("x"), rows[0]
