"""Real throwaway databases for tests: SQLite files, MariaDB and PostgreSQL databases.

Each ``create()`` gives a new, empty database and its URL; ``drop()`` removes it.
Servers are found at the usual loopback addresses (override with
COGENT_TEST_MYSQL_URL / COGENT_TEST_PG_URL). When a server is unreachable the
tests that need it are skipped, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.engine import Engine

from base.db import normalise_url

MYSQL_ADMIN_URL = os.environ.get("COGENT_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/mysql")
PG_ADMIN_URL = os.environ.get("COGENT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ("sqlite", "mysql", "postgresql")
_counter = itertools.count()


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


class Databases:
    """Creates and drops test databases on one backend."""

    def __init__(self, backend: str, workdir: Path):
        self.backend = backend
        self.workdir = workdir
        self.prefix = f"cgt_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self._admin: Engine | None = None
        self.created: list[str] = []

    def _admin_engine(self) -> Engine:
        if self._admin is None:
            url = MYSQL_ADMIN_URL if self.backend == "mysql" else PG_ADMIN_URL
            self._admin = create_engine(
                normalise_url(url), isolation_level="AUTOCOMMIT", pool_pre_ping=True
            )
        return self._admin

    def available(self) -> str | None:
        """None when usable, else why not."""
        if self.backend == "sqlite":
            return None
        try:
            with self._admin_engine().connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            return f"{self.backend} server unreachable: {exc.__class__.__name__}: {exc}"[:300]
        return None

    def create(self, label: str = "db") -> str:
        name = f"{self.prefix}_{label}_{next(_counter)}"
        if self.backend == "sqlite":
            return f"sqlite:///{self.workdir / (name + '.db')}"
        with self._admin_engine().connect() as conn:
            if self.backend == "mysql":
                conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
            else:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        admin = make_url(MYSQL_ADMIN_URL if self.backend == "mysql" else PG_ADMIN_URL)
        return admin.set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        name = make_url(url).database
        if self.backend == "sqlite" or not name:
            return
        with self._admin_engine().connect() as conn:
            if self.backend == "mysql":
                conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
            else:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if name in self.created:
            self.created.remove(name)

    def close(self) -> None:
        for name in list(self.created):
            admin = make_url(MYSQL_ADMIN_URL if self.backend == "mysql" else PG_ADMIN_URL)
            self.drop(admin.set(database=name).render_as_string(hide_password=False))
        if self._admin is not None:
            self._admin.dispose()


def make_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="cogent-test-"))


def require(dbs: Databases) -> None:
    why = dbs.available()
    if why is None:
        return
    if in_ci():
        pytest.fail(f"{why} (CI=true: a missing database is a failure, not a skip)")
    pytest.skip(why)
