"""The fan-out benchmark works end to end: `python -m benchmark.run --smoke` starts Parley
and both reference servers, delivers a few messages through each without loss, and
writes its results table."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.bench,
    pytest.mark.skipif(
        not (shutil.which("node") and shutil.which("npm")), reason="the benchmark's load generator needs node and npm"
    ),
    pytest.mark.dbless,
]


def test_smoke_run_delivers_through_every_server_and_writes_a_table(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
    done = subprocess.run(
        [sys.executable, "-m", "benchmark.run", "--smoke", "--out", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = (tmp_path / "results.md").read_text()
    for server in ("Parley", "Channels tutorial", "raw websockets"):
        assert f"| 5 | {server} | 20.0 |" in table, table
    assert "| Parley | 20 | 20 |" in table  # the idle-connection checkpoint
