"""The remote side: throwaway MariaDB databases and server processes on loopback."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import pymysql
from sqlalchemy import make_url
from sqlalchemy.orm import Session

from base.db import make_engine
from base.migrate import upgrade

REPO = Path(__file__).resolve().parent.parent
METADATA_TABLES = ("Deployment", "House", "RoomType", "Room", "Location", "Node", "Sensor")


class RemoteDatabase(Protocol):
    """What the scenarios need of a central database server (MariaDB, PostgreSQL, Galera)."""

    def create(self, label: str) -> str: ...
    def drop(self, url: str) -> None: ...
    def count(self, url: str, table: str) -> int: ...


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MariaDB:
    """Creates and drops databases named ``<prefix>_<label>`` on one server."""

    def __init__(self, url: str, prefix: str = "cgbench"):
        self.url = make_url(url)
        self.prefix = prefix

    def _connect(self, database: str | None = None, **kw: Any) -> pymysql.Connection:
        u = self.url
        return pymysql.connect(
            host=u.host or "127.0.0.1",
            port=u.port or 3306,
            user=u.username or "root",
            password=u.password or "",
            database=database,
            init_command="SET time_zone='+00:00'",
            **kw,
        )

    def version(self) -> str:
        with self._connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            return str(cur.fetchone()[0])

    def variable(self, name: str) -> str:
        with self._connect() as conn, conn.cursor() as cur:
            cur.execute("SHOW GLOBAL VARIABLES LIKE %s", (name,))
            row = cur.fetchone()
            return str(row[1]) if row else "?"

    def create(self, label: str) -> str:
        """A new empty database migrated to head; returns its URL."""
        name = f"{self.prefix}_{label}"
        with self._connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        url = self.url.set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        return url

    def create_empty(self, label: str) -> str:
        """A new database with no schema at all; returns its URL."""
        name = f"{self.prefix}_{label}"
        with self._connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        return self.url.set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        name = make_url(url).database
        with self._connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")

    def connect(self, url: str, **kw: Any) -> pymysql.Connection:
        return self._connect(make_url(url).database, **kw)

    def count(self, url: str, table: str) -> int:
        with self.connect(url) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM `{table}`")
            return int(cur.fetchone()[0])

    def copy_metadata(self, local: Path, url: str) -> None:
        """The base station's metadata rows with the same ids (for the copies that bypass the
        protocol: their readings keep their local location ids)."""
        src = sqlite3.connect(local)
        try:
            with self.connect(url) as conn, conn.cursor() as cur:
                cur.execute("SET FOREIGN_KEY_CHECKS = 0")
                for table in METADATA_TABLES:
                    rows = src.execute(f'SELECT * FROM "{table}"').fetchall()
                    cols = [
                        d[0] for d in src.execute(f'SELECT * FROM "{table}" LIMIT 0').description
                    ]
                    if table == "RoomType":
                        cur.execute("DELETE FROM `RoomType`")
                    if rows:
                        names = ",".join(f"`{c}`" for c in cols)
                        marks = ",".join(["%s"] * len(cols))
                        cur.executemany(f"INSERT INTO `{table}` ({names}) VALUES ({marks})", rows)
                cur.execute("SET FOREIGN_KEY_CHECKS = 1")
                conn.commit()
        finally:
            src.close()


def create_keys(db_url: str, sites: list[str]) -> list[str]:
    """A site key for each site, in one transaction; the plaintexts in the same order."""
    from rest.keys import create_key

    engine = make_engine(db_url)
    try:
        with Session(engine) as session:
            keys = [create_key(session, site, "site")[1] for site in sites]
            session.commit()
    finally:
        engine.dispose()
    return keys


class Server:
    """``python -m <module> serve …`` on 127.0.0.1, ready once ``ready_path`` answers."""

    def __init__(self, args: list[str], ready_path: str, env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/rest/"
        self.log = Path(tempfile.mkstemp(prefix="cgbench-server-", suffix=".log")[1])
        cmd = [sys.executable, *args, "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                cmd,
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + ready_path, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start:\n{self.log.read_text()[-3000:]}")

    @property
    def pids(self) -> list[int]:
        """The server process and its children (uvicorn workers)."""
        out = [self.process.pid]
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
            out += [int(p) for p in children.read_text().split()]
        except OSError:
            pass
        return out

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.unlink(missing_ok=True)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def cogent_server(db_url: str, workers: int = 1, failover: Sequence[str] = ()) -> Server:
    """The server on ``db_url`` (and, if given, the cluster's other nodes ``failover``)."""
    args = ["-m", "rest", "serve", "--db", db_url, "--log-level", "warning"]
    for url in failover:
        args += ["--db", url]
    if workers > 1:
        args += ["--workers", str(workers)]
    return Server(args, "version/")


def baseline_server(db_url: str) -> Server:
    return Server(["-m", "bench.baseline", "serve", "--db", db_url], "version/")
