"""Tools of the reliability tests: the pusher as a process, a gateway logger that keeps
writing, MariaDB control, figures.

Every scenario ends with the suite's one oracle, tests/oracle.py.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

from base.config import Config, load_config
from base.db import make_engine
from models import Reading
from models.base import table_of
from push.ledger import LocalStore
from push.status import backlog as stream_backlog
from tests.oracle import Comparison
from tests.pushkit import count

REPO = Path(__file__).resolve().parents[2]
# Backends of a test whose small version runs on SQLite in the suite, the rest in torture.
SUITE_SQLITE_TORTURE_OTHERS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("mysql", id="mysql", marks=[pytest.mark.mysql, pytest.mark.torture]),
    pytest.param("postgresql", id="postgresql",
                 marks=[pytest.mark.postgresql, pytest.mark.torture]),
]
FIGURES = REPO / "var" / "reliability" / "figures.jsonl"
MYSQL_ADMIN = "mysql://root@127.0.0.1:3306/mysql"


# --------------------------------------------------------------------------- waiting


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail saying ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


# --------------------------------------------------------------------------- the pusher


class Pusher:
    """``python RestPusher.py -c CONFIG [args]`` in a subprocess, output to a file
    (a pipe nobody reads would fill up and block a chatty daemon)."""

    def __init__(self, config_path: Path, *args: str, name: str = "pusher",
                 preexec_fn: Callable[[], None] | None = None):
        self.config_path = Path(config_path)
        self.args = args
        self.out_path = self.config_path.parent / f"{name}.out"
        self.preexec_fn = preexec_fn
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> Pusher:
        cmd = [sys.executable, str(REPO / "RestPusher.py"), "-c", str(self.config_path),
               *self.args]
        with self.out_path.open("ab") as out:
            self.process = subprocess.Popen(
                cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=self.preexec_fn,
            )
        self.starts += 1
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def output(self) -> str:
        return self.out_path.read_text(errors="replace") if self.out_path.exists() else ""

    def kill9(self) -> bool:
        """SIGKILL; True if it was still running (so the kill hit it mid-work)."""
        if self.process is None:
            return False
        was_alive = self.process.poll() is None
        if was_alive:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.process = None
        return was_alive

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM (the graceful stop) and wait; returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"pusher ignored SIGTERM for {timeout} s:\n{self.output[-3000:]}"
            ) from None
        self.process = None
        return code

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        code = self.process.wait(timeout=timeout)
        self.process = None
        return code

    def ensure_stopped(self) -> None:
        if self.alive:
            self.kill9()


def edit_config(path: Path, **general: object) -> Config:
    """Set keys of [general] in a config written by ``pair.config`` (or add them)."""
    text_ = Path(path).read_text()
    for key, value in general.items():
        line = f"{key} = {value}"
        text_, n = re.subn(rf"^{key} = .*$", line.replace("\\", "\\\\"), text_, flags=re.M)
        if not n:
            text_ = text_.replace("[general]\n", f"[general]\n{line}\n", 1)
    Path(path).write_text(text_)
    return load_config(path)


def run_pusher(config_path: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """One short command (``once``, ``status``…) to completion."""
    return subprocess.run(
        [sys.executable, str(REPO / "RestPusher.py"), "-c", str(config_path), *args],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )


def backlog(local_url: str, remote: str = "central") -> int:
    """Rows not yet acknowledged by ``remote`` (unstamped rows included)."""
    engine = make_engine(local_url)
    try:
        return sum(stream_backlog(engine, LocalStore(engine), remote).values())
    finally:
        engine.dispose()


def caught_up(local_url: str, remote: str = "central") -> Callable[[], bool]:
    return lambda: backlog(local_url, remote) == 0


def row_count(url: str, model: type) -> int:
    """:func:`tests.pushkit.count` of the database at ``url``."""
    engine = make_engine(url)
    try:
        return count(engine, model)
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- a gateway logger


@dataclass
class LoggerReport:
    inserted: int = 0
    failures: list[str] = field(default_factory=list)
    max_latency: float = 0.0


class GatewayLogger:
    """Inserts readings with plain SQL, one small transaction at a time, as a radio
    gateway's logger does, until stopped or ``duration`` passes (never longer)."""

    def __init__(self, url: str, node_id: int, location_id: int, *, every: float = 0.05,
                 duration: float = 120.0, start: datetime | None = None, sensor_type: int = 0):
        self.url = url
        self.node_id = node_id
        self.location_id = location_id
        self.every = every
        self.duration = duration
        self.when = start or datetime(2026, 3, 1)
        self.type = sensor_type
        self.report = LoggerReport()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> GatewayLogger:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> LoggerReport:
        self._stop.set()
        self._thread.join(timeout=60)
        return self.report

    def _run(self) -> None:
        engine = make_engine(self.url)
        table = table_of(Reading)
        deadline = time.monotonic() + self.duration
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                row = {"nodeId": self.node_id, "type": self.type, "time": self.when,
                       "locationId": self.location_id, "value": 20.0 + self.report.inserted % 7}
                t0 = time.monotonic()
                try:
                    with engine.begin() as conn:
                        conn.execute(insert(table), [row])
                except Exception as exc:  # what the logger would see: record it, carry on
                    self.report.failures.append(f"{exc.__class__.__name__}: {exc}"[:300])
                else:
                    self.report.inserted += 1
                    self.when += timedelta(seconds=1)
                self.report.max_latency = max(self.report.max_latency, time.monotonic() - t0)
                self._stop.wait(self.every)
        finally:
            engine.dispose()


# --------------------------------------------------------------------------- figures


def record(test: str, **figures: Any) -> None:
    """Append this run's figures to var/reliability/figures.jsonl (docs/RELIABILITY.md
    quotes the ones of a `make torture` run)."""
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    line = {"test": test, "at": datetime.now().isoformat(timespec="seconds"), **figures}
    for k, v in line.items():
        if isinstance(v, Comparison):
            line[k] = {**asdict(v), "rows": v.rows, "examples": v.examples[:3]}
    with FIGURES.open("a") as f:
        f.write(json.dumps(line, default=str) + "\n")


# --------------------------------------------------------------------------- MariaDB


def mysql_database(url: str) -> str:
    return str(make_url(url).database)


def kill_mysql_connections(database: str) -> int:
    """KILL every connection using ``database`` (what a server restart does to clients)."""
    admin = make_engine(MYSQL_ADMIN, isolation_level="AUTOCOMMIT")
    killed = 0
    try:
        with admin.connect() as conn:
            me = conn.execute(text("SELECT CONNECTION_ID()")).scalar_one()
            ids = conn.execute(
                text("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = :db AND ID != :me"),
                {"db": database, "me": me},
            ).scalars().all()
            for i in ids:
                with contextlib.suppress(Exception):
                    conn.execute(text(f"KILL CONNECTION {int(i)}"))
                    killed += 1
    finally:
        admin.dispose()
    return killed


def mariadb_answers() -> bool:
    try:
        admin = make_engine(MYSQL_ADMIN)
        try:
            with admin.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        finally:
            admin.dispose()
    except Exception:
        return False


def mariadb_stop(timeout: float = 60) -> None:
    subprocess.run(["mysqladmin", "-uroot", "-h127.0.0.1", "shutdown"], check=True,
                   capture_output=True, timeout=timeout)
    wait_for(lambda: not mariadb_answers(), timeout, "MariaDB to stop")


def mariadb_start(timeout: float = 120) -> None:
    """Start MariaDB the way this machine does and wait until it answers."""
    subprocess.run(["start-stop-daemon", "--start", "--oknodo", "--background",
                    "--exec", "/usr/sbin/mariadbd"], check=True, capture_output=True, timeout=30)
    wait_for(mariadb_answers, timeout, "MariaDB to answer after a restart", every=0.5)


@contextlib.contextmanager
def mariadb_comes_back() -> Iterator[None]:
    """Whatever happens inside, MariaDB answers again afterwards (other tests need it)."""
    try:
        yield
    finally:
        if not mariadb_answers():
            mariadb_start()


# --------------------------------------------------------------------------- permissions

CAP_DAC_OVERRIDE = 1
CAP_DAC_READ_SEARCH = 2
PR_CAPBSET_DROP = 24


def without_root_overrides() -> None:
    """preexec_fn: as root, give up the capabilities that ignore file permissions, so a
    directory's mode means for the child what it means for an ordinary user."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def random_instants(rng: random.Random, n: int, low: float, high: float) -> list[float]:
    return [rng.uniform(low, high) for _ in range(n)]
