"""`make bench-search` works end to end, tiny: a few hundred messages on SQLite, every query
class timed, and the table printed with the index size and the cost of a send."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.dbless  # SQLite only (--databases sqlite)


def test_tiny_search_benchmark_prints_its_table():
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    done = subprocess.run(
        [sys.executable, "-m", "benchmark.search", "--messages", "400", "--repeat", "1", "--sends", "2",
         "--databases", "sqlite"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Search at 400 messages")
    for label in ("CJK 1 char", "CJK 2 chars", "CJK 3+ chars", "Latin words", "phrases", "filters"):
        assert any(line.startswith(label) for line in lines), label
    assert "sqlite: index" in done.stdout and "µs to a send" in done.stdout
