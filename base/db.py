"""Engines and sessions for SQLite, MySQL/MariaDB and PostgreSQL.

SQLite is the embedded default on a base station, usually on an SD card, and
shares its file with a gateway logger: WAL so readers never block the writer,
a busy timeout instead of instant "database is locked", foreign keys on, and
explicit ``BEGIN IMMEDIATE`` for transactions that will write (see
:func:`write_engine`) so they wait for the lock up front instead of failing
half-way. MySQL gets utf8mb4, pre-ping (base stations sleep for hours) and a
UTC session; PostgreSQL a UTC session.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from base.errors import ConfigError

SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalise_url(url: str | URL) -> URL:
    """Pick this project's drivers for bare ``mysql://`` and ``postgresql://`` URLs."""
    try:
        u = make_url(url)
    except Exception as exc:  # ArgumentError: the message names the bad URL
        raise ConfigError(f"not a database URL: {url!r} ({exc})") from exc
    backend = u.get_backend_name()
    if backend in ("mysql", "mariadb") and u.drivername in ("mysql", "mariadb"):
        u = u.set(drivername=f"{backend}+pymysql")
    if backend in ("mysql", "mariadb") and "charset" not in u.query:
        u = u.update_query_dict({"charset": "utf8mb4"})
    if backend == "postgres":
        u = u.set(drivername="postgresql")
    return u


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """Create an engine with the settings this project relies on for ``url``'s backend."""
    u = normalise_url(url)
    backend = u.get_backend_name()
    if backend == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {})["timeout"] = SQLITE_BUSY_TIMEOUT_MS / 1000
        engine = create_engine(u, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_recycle", 3600)
    if backend in ("mysql", "mariadb"):
        kwargs.setdefault("connect_args", {}).setdefault("init_command", "SET time_zone='+00:00'")
    elif backend == "postgresql":
        kwargs.setdefault("connect_args", {}).setdefault("options", "-c timezone=UTC")
    return create_engine(u, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy so BEGIN can be IMMEDIATE when asked.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys = ON")
        if engine.url.database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def write_engine(engine: Engine) -> Engine:
    """The same engine, for transactions that read and then write.

    SQLite: ``BEGIN IMMEDIATE`` takes the write lock first (waiting up to the
    busy timeout), so the transaction cannot fail on lock upgrade later. Other
    backends: READ COMMITTED, so InnoDB takes no gap locks that would stall a
    logger inserting at the same moment.
    """
    if is_sqlite(engine):
        return engine.execution_options(sqlite_begin="IMMEDIATE")
    return engine.execution_options(isolation_level="READ COMMITTED")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def redact(url: str | URL) -> str:
    """The URL with its password hidden, for logs and messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"
