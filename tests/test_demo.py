"""The README's main command works from a checkout and leaves nothing running."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from base.db import make_engine
from models import NodeState, Reading

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # starts a subprocess
def test_the_demo_pushes_the_simulated_house_and_says_local_and_remote_are_the_same(tmp_path):
    work = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "RestPusher.py", "demo", "--dir", str(work), "--days", "2", "--port", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Local and remote are the same" in done.stdout
    assert "/rest/sensortype/" in done.stdout
    counts = []
    for name in ("base-station.db", "central.db"):
        engine = make_engine(f"sqlite:///{work / name}")
        with engine.connect() as conn:
            counts.append(
                tuple(
                    conn.execute(select(func.count()).select_from(m)).scalar_one()
                    for m in (Reading, NodeState)
                )
            )
        engine.dispose()
    local, remote = counts
    assert local == remote and local[0] > 5000
