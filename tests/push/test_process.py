"""The pusher as a process: graceful SIGTERM, start/stop, one pusher per database.

kill -9 at random instants is proven once, in tests/reliability/test_crashes.py.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from base.db import make_engine
from models import Reading
from tests.pushkit import assert_same, count, seed_cogent_house

REPO = Path(__file__).resolve().parents[2]


def pusher(config_path: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(REPO / "RestPusher.py"), "-c", str(config_path), *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_for_remote_rows(remote_url: str, at_least: int, timeout: float = 60) -> int:
    engine = make_engine(remote_url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = count(engine, Reading)
            if n >= at_least:
                return n
            time.sleep(0.05)
        raise AssertionError(f"remote never reached {at_least} readings")
    finally:
        engine.dispose()


def test_first_sigterm_finishes_the_batch_in_flight_and_exits_cleanly(pair):
    seed_cogent_house(pair.local, days=8)
    config = pair.config(pushlimit=300)
    proc = pusher(config.path)  # the daemon, in the foreground
    try:
        wait_for_remote_rows(pair.remote, 1)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out.decode()
    assert b"finishing the batches in flight" in out
    final = pusher(config.path, "once")
    out, _ = final.communicate(timeout=300)
    assert final.returncode == 0, out.decode()
    assert_same(pair.local, pair.remote)


def test_start_detaches_with_a_pidfile_and_stop_ends_it_gracefully(pair):
    seed_cogent_house(pair.local, days=1)
    config = pair.config(pushlimit=1000)
    started = pusher(config.path, "start")
    out, _ = started.communicate(timeout=60)
    assert started.returncode == 0, out.decode()
    pidfile = Path(config.pidfile)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the daemon writes its pidfile after detaching
        text = pidfile.read_text().strip() if pidfile.exists() else ""
        if text.isdigit():
            break
        time.sleep(0.05)
    pid = int(pidfile.read_text().strip())
    wait_for_remote_rows(pair.remote, 1)
    again = pusher(config.path, "start")
    out, _ = again.communicate(timeout=60)
    assert again.returncode != 0 and b"already running" in out
    stopped = pusher(config.path, "stop")
    out, _ = stopped.communicate(timeout=90)
    assert stopped.returncode == 0, out.decode()
    assert not Path(f"/proc/{pid}").exists()
    final = pusher(config.path, "once")
    out, _ = final.communicate(timeout=300)
    assert final.returncode == 0, out.decode()
    assert_same(pair.local, pair.remote)
