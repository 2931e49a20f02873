"""A real cogent-rest server in a subprocess, for tests on both sides of the wire.

    from tests.live_server import live_server, start_server, create_key

``start_server(db_url)`` runs ``python -m rest serve`` on 127.0.0.1 (a free port
unless given) and returns once ``/rest/version/`` answers. The ``live_server``
fixture does that on the test's fresh ``db_url`` and stops it at teardown.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from base.db import make_engine

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli_args(options: dict[str, Any]) -> list[str]:
    args: list[str] = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            args.append(flag)
        elif isinstance(value, (list, tuple)):  # a repeated option: db=[url2, url3]
            for item in value:
                args += [flag, str(item)]
        elif value not in (None, False):
            args += [flag, str(value)]
    return args


class LiveServer:
    """One server process; ``start()`` again after ``stop()``/``kill()`` reuses the port."""

    def __init__(self, db_url: str, port: int, cli_options: dict[str, Any] | None = None):
        self.db_url = db_url
        self.port = port
        self.url = f"http://127.0.0.1:{port}/rest/"
        self.cli_options = dict(cli_options or {})
        self.process: subprocess.Popen[bytes] | None = None
        self._log = Path(tempfile.mkstemp(prefix="cogent-rest-", suffix=".log")[1])

    @property
    def log(self) -> str:
        """What the server printed so far (stdout and stderr)."""
        return self._log.read_text(errors="replace")

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        cmd = [
            sys.executable, "-m", "rest", "serve",
            "--db", self.db_url, "--host", "127.0.0.1", "--port", str(self.port),
            "--log-level", "warning",
            *_cli_args(self.cli_options),
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with self._log.open("ab") as out:
            self.process = subprocess.Popen(
                cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"cogent-rest exited with {self.process.returncode}:\n{self.log[-3000:]}"
                )
            try:
                with urllib.request.urlopen(self.url + "version/", timeout=2) as r:
                    if r.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"cogent-rest did not answer within {START_TIMEOUT} s:\n{self.log}")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None

    def __repr__(self) -> str:
        return f"LiveServer({self.url!r})"


def start_server(db_url: str, port: int | None = None, **cli_options: Any) -> LiveServer:
    """Start ``python -m rest serve`` on 127.0.0.1; extra keywords become CLI options
    (``max_body=1024`` → ``--max-body 1024``)."""
    server = LiveServer(db_url, port or free_port(), cli_options)
    server.start()
    return server


def create_key(db_url: str, site: str | None = "site-a", role: str = "site") -> str:
    """A new key for ``site`` with ``role``; returns the plaintext."""
    from rest.keys import create_key as _create

    engine = make_engine(db_url)
    try:
        with Session(engine) as session:
            _, plaintext = _create(session, site, role)
            session.commit()
    finally:
        engine.dispose()
    return plaintext


@pytest.fixture
def live_server(db_url: str) -> Iterator[LiveServer]:
    """A server on this test's fresh database (any backend), stopped at teardown."""
    server = start_server(db_url)
    try:
        yield server
    finally:
        server.stop()
