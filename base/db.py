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

import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from base.errors import ConfigError, DatabaseUnavailable

SQLITE_BUSY_TIMEOUT_MS = 30_000
READ_COMMITTED = "READ COMMITTED"
# Engines whose every connection is READ COMMITTED (made with isolation_level=READ_COMMITTED).
_READ_COMMITTED_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


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
    """Create an engine with the settings this project relies on for ``url``'s backend.

    A SQLite file's folder must exist: a mistyped path is an error that creates nothing
    (SQLite would otherwise create an empty database on first use). With ``must_exist=True``
    the file itself must exist too, for commands that only work on an existing database.
    Other keywords go to :func:`sqlalchemy.create_engine`.
    """
    must_exist = bool(kwargs.pop("must_exist", False))
    u = normalise_url(url)
    backend = u.get_backend_name()
    if backend == "sqlite":
        if u.database and u.database != ":memory:":
            check_sqlite_path(u, must_exist)
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
    engine = create_engine(u, **kwargs)
    if kwargs.get("isolation_level") == READ_COMMITTED:
        _READ_COMMITTED_ENGINES.add(engine)
    return engine


def check_sqlite_path(url: URL, must_exist: bool = False) -> None:
    """Raise :class:`DatabaseUnavailable` naming the path when a SQLite file cannot be there."""
    path = Path(url.database or "")
    shown = redact(url)
    if not path.parent.is_dir():
        raise DatabaseUnavailable(
            f"database {shown}: the folder {str(path.parent)!r} does not exist; "
            f"create it (mkdir -p) or correct the path (nothing was created)"
        )
    if path.is_dir():
        raise DatabaseUnavailable(f"database {shown}: {str(path)!r} is a folder, not a file")
    if must_exist and not path.exists():
        raise DatabaseUnavailable(
            f"database {shown}: there is no file {str(path)!r}; create it with "
            f"'RestPusher.py migrate', or correct the path (nothing was created)"
        )


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
    logger inserting at the same moment. An engine made READ COMMITTED for every
    connection (the server's) is returned as it is: a level set per transaction is
    set back when the connection returns to the pool, and if the database dies between
    the COMMIT and that statement, the error escapes SQLAlchemy's handling (the request
    fails with a 500) and the pool loses the connection's slot for good.
    """
    if is_sqlite(engine):
        return engine.execution_options(sqlite_begin="IMMEDIATE")
    if engine in _READ_COMMITTED_ENGINES:
        return engine
    return engine.execution_options(isolation_level=READ_COMMITTED)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def redact(url: str | URL) -> str:
    """The URL with its password hidden, for logs and messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"
