"""Trouble on the base station itself: the SQLite file held locked by another writer, a log
directory the daemon may not write, a remote at another schema revision.

What must hold each time: a message that says what is wrong (and what to do), no crash
and no tight retry loop, the gateway logger's inserts unaffected, and — once the
trouble goes away — everything delivered without restarting the daemon.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from base.db import make_engine
from base.migrate import head_revision
from models import Reading
from push.daemon import Pusher as InProcessPusher
from tests.oracle import assert_replica
from tests.pushkit import T0, seed_cogent_house
from tests.reliability.kit import (
    REPO,
    GatewayLogger,
    Pusher,
    backlog,
    caught_up,
    edit_config,
    record,
    row_count,
    run_pusher,
    wait_for,
    without_root_overrides,
)

SQLITE = [pytest.param("sqlite", id="sqlite")]


def sqlite_path(url: str) -> str:
    return str(make_url(url).database)


class WriteLockHolder:
    """Another program's long write transaction on the SQLite file: ``BEGIN IMMEDIATE``,
    one inserted reading, then nothing until released (at most ``limit`` seconds)."""

    def __init__(self, url: str, location: int, limit: float):
        self.lock = threading.Lock()
        self.open = True
        self.conn = sqlite3.connect(sqlite_path(url), timeout=30, isolation_level=None,
                                    check_same_thread=False)
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute(
            'INSERT INTO "Reading" ("time", "nodeId", "type", "locationId", "value") '
            "VALUES (?, 101, 0, ?, 19.5)",
            ((T0 - timedelta(days=3)).isoformat(sep=" "), location),
        )
        self.timer = threading.Timer(limit, self.release)
        self.timer.start()

    def release(self) -> None:
        self.timer.cancel()
        with self.lock:
            if self.open:
                self.conn.execute("COMMIT")  # the other program's work is not disturbed
                self.conn.close()
                self.open = False


@pytest.mark.parametrize("backend", SQLITE)
def test_sqlite_write_lock_held_past_the_busy_timeout_fails_the_cycle_clearly_then_recovers(
    pair, monkeypatch
):
    data = seed_cogent_house(pair.local, days=1)
    # The daemon waits 30 s for a busy SQLite file; here 1 s, so the test takes seconds.
    monkeypatch.setattr("base.db.SQLITE_BUSY_TIMEOUT_MS", 1000)
    holder = WriteLockHolder(pair.local, data.locations[101], limit=60)
    pusher = InProcessPusher(pair.config())
    try:
        for _ in range(2):  # every cycle fails the same clear way; nothing raises
            [report] = pusher.run_once()
            assert not report.ok
            assert "local database" in (report.error or "")
            assert "database is locked" in (report.error or "")
            assert not report.permanent  # transient: the daemon retries with backoff
        assert row_count(pair.remote, Reading) == 0
        # Let go within the busy timeout: the cycle waits for the lock and succeeds; the
        # other writer commits, and nothing it did was lost.
        threading.Timer(0.5, holder.release).start()
        [report] = pusher.run_once()
        assert report.ok, report.error
    finally:
        holder.release()
        pusher.close()
    result = assert_replica(pair.local, pair.remote)
    assert result.readings == data.readings + 1  # the lock holder's row arrived too
    record("SQLite locked past the busy timeout (suite)", comparison=result)


@pytest.mark.torture
@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", SQLITE)
def test_torture_sqlite_write_lock_held_twenty_seconds_only_delays_the_daemon(pair):
    data = seed_cogent_house(pair.local, days=20)
    config = pair.config(pushlimit=300)
    daemon = Pusher(config.path, name="daemon").start()
    try:
        wait_for(lambda: row_count(pair.remote, Reading) > 0, 60, "the first batch")
        holder = WriteLockHolder(pair.local, data.locations[101], limit=20)
        try:
            assert backlog(pair.local) > 0, "the push ended before the lock: make it larger"
            time.sleep(20)  # less than the 30 s busy timeout
        finally:
            holder.release()
        wait_for(caught_up(pair.local), 120, "the daemon to catch up")
    finally:
        code = daemon.terminate()
    assert code == 0, daemon.output[-3000:]
    assert "cycle failed" not in daemon.output  # it waited for the lock, it did not fail
    result = assert_replica(pair.local, pair.remote)
    record("SQLite locked 20 s mid-push (torture)", comparison=result)


@pytest.mark.torture
@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", SQLITE)
def test_torture_sqlite_write_lock_held_forty_seconds_mid_push(pair):
    """The real busy timeout (30 s) is exceeded: the daemon reports the lock, keeps
    running, and carries on when the other writer lets go."""
    data = seed_cogent_house(pair.local, days=30)
    config = pair.config(pushlimit=300)
    daemon = Pusher(config.path, name="daemon").start()
    try:
        wait_for(lambda: row_count(pair.remote, Reading) > 0, 60, "the first batch")
        holder = WriteLockHolder(pair.local, data.locations[101], limit=40)
        try:
            assert backlog(pair.local) > 0
            wait_for(lambda: "database is locked" in daemon.output, 60,
                     "the daemon to report the lock")
            assert daemon.alive
        finally:
            holder.release()
        wait_for(caught_up(pair.local), 300, "the daemon to catch up without help")
    finally:
        code = daemon.terminate()
    assert code == 0, daemon.output[-3000:]
    out = daemon.output
    assert "local database" in out
    result = assert_replica(pair.local, pair.remote)
    record("SQLite locked 40 s mid-push (torture)", failed_cycles=out.count("cycle failed"),
           comparison=result)


# --------------------------------------------------------------------------- the log directory


def read_only_dir(path: Path) -> Path:
    path.mkdir()
    path.chmod(0o555)
    return path


@pytest.mark.parametrize("backend", SQLITE)
def test_unwritable_log_directory_is_reported_and_the_daemon_still_pushes(pair):
    data = seed_cogent_house(pair.local, days=1)
    logdir = read_only_dir(pair.dir / "log")
    config = pair.config()
    edit_config(config.path, logfile=logdir / "push.log")
    daemon = Pusher(config.path, name="daemon", preexec_fn=without_root_overrides)
    try:
        with GatewayLogger(pair.local, 101, data.locations[101], every=0.05,
                           duration=60) as logger:
            daemon.start()
            wait_for(lambda: "cannot write log file" in daemon.output, 30, "the warning")
            wait_for(lambda: row_count(pair.remote, Reading) > data.readings, 60,
                     "the logger's rows to arrive")
        wait_for(caught_up(pair.local), 60, "the daemon to push everything")
    finally:
        code = daemon.terminate()
    assert code == 0, daemon.output[-3000:]
    assert not logger.report.failures and logger.report.inserted > 0
    out = daemon.output
    assert f"cannot write log file '{logdir / 'push.log'}' (Permission denied)" in out
    assert "logging to the console only" in out and "[general] logfile" in out
    assert "cycle done" in out  # and it carried on logging, to the console
    assert not (logdir / "push.log").exists()
    assert_replica(pair.local, pair.remote)


@pytest.mark.parametrize("backend", SQLITE)
def test_start_with_an_unwritable_log_directory_says_so_before_detaching(pair):
    logdir = read_only_dir(pair.dir / "log")
    config = edit_config(pair.config().path, logfile=logdir / "push.log")
    started = subprocess.run(
        [sys.executable, str(REPO / "RestPusher.py"), "-c", str(config.path), "start"],
        capture_output=True, text=True, timeout=60, preexec_fn=without_root_overrides, cwd=REPO,
    )
    try:
        assert started.returncode == 0, started.stderr
        said = started.stdout + started.stderr
        assert "cannot write log file" in said, said
    finally:
        stop = run_pusher(config.path, "stop")
        assert stop.returncode == 0 or "not running" in stop.stderr, stop.stderr


# --------------------------------------------------------------------------- schema revisions


def set_revision(url: str, revision: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    finally:
        engine.dispose()


def remote_behind(pair, *, watch: float, synctime: float, backoff_max: float) -> dict:
    data = seed_cogent_house(pair.local, days=1)
    set_revision(pair.remote, "0001")  # the server's database was not upgraded
    config = edit_config(pair.config().path, synctime=synctime, backoff_max=backoff_max)
    daemon = Pusher(config.path, name="daemon")
    try:
        with GatewayLogger(pair.local, 101, data.locations[101], every=0.05,
                           duration=watch + 120) as logger:
            daemon.start()
            wait_for(lambda: "not pushing" in daemon.output, 30, "the schema message")
            time.sleep(watch)
            assert daemon.alive, daemon.output[-3000:]
            attempts = daemon.output.count("cycle failed")
            assert row_count(pair.remote, Reading) == 0  # nothing pushed into the old schema
            status = run_pusher(config.path, "status")
            assert status.returncode == 6, status.stderr  # the schemas differ
            assert "schema: MISMATCH" in status.stdout, status.stdout
            assert "operator must run 'alembic -x url=SERVER_DB_URL upgrade head'" in (
                status.stdout)
            set_revision(pair.remote, head_revision())  # the operator upgraded: no restart here
        wait_for(caught_up(pair.local), 120, "the daemon to push after the upgrade")
    finally:
        code = daemon.terminate()
    assert code == 0, daemon.output[-3000:]
    assert not logger.report.failures and logger.report.inserted > 0
    out = daemon.output
    assert "central: not pushing: remote 'central' is at schema revision 0001" in out
    assert "operator must run 'alembic -x url=SERVER_DB_URL upgrade head'" in out
    assert "Traceback" not in out
    # No crash loop: one attempt per synctime at most (plus the first), never a spin.
    assert 1 <= attempts <= watch / synctime + 2, attempts
    result = assert_replica(pair.local, pair.remote)
    return {"watched_seconds": watch, "attempts": attempts, "comparison": result,
            "logger_rows": logger.report.inserted}


@pytest.mark.parametrize("backend", SQLITE)
def test_remote_at_an_older_schema_revision_stops_pushing_with_advice_and_no_crash_loop(pair):
    figures = remote_behind(pair, watch=2, synctime=1, backoff_max=1)
    record("remote schema behind (suite)", **figures)


@pytest.mark.torture
@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", SQLITE)
def test_torture_remote_at_an_older_schema_revision_for_a_minute(pair):
    figures = remote_behind(pair, watch=60, synctime=5, backoff_max=30)
    record("remote schema behind (torture)", **figures)


@pytest.mark.parametrize("backend", SQLITE)
def test_local_database_without_a_schema_is_refused_with_the_command_to_run(pair, tmp_path):
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    config = pair.config()
    text_ = config.path.read_text().replace(pair.local, fresh)
    config.path.write_text(text_)
    once = run_pusher(config.path, "once")  # no such file: an error that creates nothing
    assert once.returncode == 7, once.stdout + once.stderr
    said = once.stdout + once.stderr
    assert "there is no file" in said and "RestPusher.py migrate" in said, said
    assert not os.path.exists(tmp_path / "fresh.db")
    make_engine(fresh).connect().close()  # an empty database: there, but no schema
    once = run_pusher(config.path, "once")
    assert once.returncode == 6, once.stdout + once.stderr  # a person must act: not a retry
    said = once.stdout + once.stderr
    assert "is at schema revision (none)" in said and "migrate" in said, said
    assert "Traceback" not in said
