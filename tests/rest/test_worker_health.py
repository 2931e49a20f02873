"""A server worker that is slow to answer uvicorn's health check is not killed mid-request."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.live_server import start_server


def _children(pid: int) -> set[int]:
    """The server's worker processes (not multiprocessing's resource tracker)."""
    out = set()
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
            out.add(int(child))
    return out


@pytest.mark.slow  # a server of its own
def test_a_worker_that_answers_its_health_check_late_is_not_killed(sqlite_url):
    """Regression: uvicorn killed a worker that did not answer within 5 s, which a worker busy
    with batches on a loaded machine can take; its requests were cut off ("closed the
    connection mid-request" for 8 stations of a 1,000-station fleet)."""
    server = start_server(sqlite_url, workers=2)
    try:
        assert server.process is not None
        deadline = time.monotonic() + 30
        while len(workers := _children(server.process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(workers) == 2, workers
        stalled = min(workers)
        os.kill(stalled, signal.SIGSTOP)  # as if it held the CPU for 8 s
        try:
            time.sleep(8)
        finally:
            os.kill(stalled, signal.SIGCONT)
        time.sleep(1)
        assert stalled in _children(server.process.pid), "the stalled worker was killed"
        assert httpx.get(server.url + "version/", timeout=10).status_code == 200
    finally:
        server.stop()
