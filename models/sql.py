"""The SQL helpers both sides need, one of each, for SQLite, MariaDB/MySQL and PostgreSQL.

Times are stored as naive UTC datetimes; the wire carries them as integer microseconds
since 1970. Writes that must be idempotent either replace (:func:`upsert`) or skip rows
whose unique key exists (:func:`insert_ignoring_duplicates`); neither ever hides a
missing foreign key or a value the column cannot hold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, insert, select
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.dml import Insert

EPOCH = datetime(1970, 1, 1)
# MariaDB's "duplicate entry", the one warning INSERT IGNORE may raise here without a fault.
_MYSQL_DUPLICATE_KEY = 1062
# Rows per INSERT IGNORE: one warning each at most, all of them kept for inspection.
_MYSQL_IGNORE_CHUNK = 2_000


def utcnow() -> datetime:
    """Now, as the naive UTC datetime the databases store."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_micros(value: datetime | str) -> int:
    """A stored time (naive UTC, or SQLite's text form of one) → µs since 1970."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(us: int) -> datetime:
    """µs since 1970 → naive UTC datetime (OverflowError outside years 1..9999)."""
    return EPOCH + timedelta(microseconds=us)


def upsert(dialect: Dialect, table: Table, key: Sequence[str], replace: Sequence[str]) -> Insert:
    """``INSERT … ON CONFLICT (key) DO UPDATE`` / ``ON DUPLICATE KEY UPDATE`` of ``replace``;
    execute it with a list of parameter dicts."""
    name = dialect.name
    if name in ("mysql", "mariadb"):
        my = mysql.insert(table)
        return my.on_duplicate_key_update({c: my.inserted[c] for c in replace})
    if name == "postgresql":
        pg = postgresql.insert(table)
        return pg.on_conflict_do_update(
            index_elements=list(key), set_={c: pg.excluded[c] for c in replace}
        )
    if name == "sqlite":
        lite = sqlite.insert(table)
        return lite.on_conflict_do_update(
            index_elements=list(key), set_={c: lite.excluded[c] for c in replace}
        )
    raise NotImplementedError(f"no upsert for the {name} dialect")


def insert_ignoring_duplicates(
    conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]
) -> int:
    """Insert ``rows``, skipping those whose unique key already exists; the number inserted.

    Only unique-key conflicts are skipped. A missing foreign key, or a value the column
    cannot hold, raises :class:`~sqlalchemy.exc.IntegrityError` on every backend — MySQL's
    ``INSERT IGNORE`` would turn those into warnings, so its warnings are read and every
    one but "duplicate entry" is raised.
    """
    if not rows:
        return 0
    name = conn.dialect.name
    if name in ("mysql", "mariadb"):
        return _mysql_insert_ignore(conn, table, rows)
    if name == "postgresql":
        # psycopg reports no row count for an executemany: count the ids returned instead.
        pg = postgresql.insert(table).on_conflict_do_nothing().returning(table.c.id)
        return len(conn.execute(pg, list(rows)).all())
    if name == "sqlite":
        lite = sqlite.insert(table).on_conflict_do_nothing()
        return max(0, int(conn.execute(lite, list(rows)).rowcount or 0))
    raise NotImplementedError(f"no insert-ignoring-duplicates for the {name} dialect")


def _mysql_insert_ignore(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> int:
    conn.exec_driver_sql("SET SESSION max_error_count = 65535")
    stmt = mysql.insert(table).prefix_with("IGNORE")
    inserted = 0
    for start in range(0, len(rows), _MYSQL_IGNORE_CHUNK):
        chunk = list(rows[start : start + _MYSQL_IGNORE_CHUNK])
        inserted += max(0, int(conn.execute(stmt, chunk).rowcount or 0))
        faults = [
            w for w in conn.exec_driver_sql("SHOW WARNINGS") if int(w[1]) != _MYSQL_DUPLICATE_KEY
        ]
        if faults:
            level, code, message = faults[0][:3]
            raise IntegrityError(
                f"INSERT IGNORE INTO {table.name}", None, Exception(f"{level} {code}: {message}")
            )
    return inserted


def get_or_create(
    conn: Connection, table: Table, key: Mapping[str, Any], extra: Mapping[str, Any] | None = None
) -> int:
    """The id of the row whose columns equal ``key``; inserted with ``extra`` (None values
    left to their defaults) if there is none."""
    found = conn.execute(
        select(table.c.id).where(*(table.c[k] == v for k, v in key.items()))
    ).scalar_one_or_none()
    if found is not None:
        return int(found)
    values = {**key, **{k: v for k, v in (extra or {}).items() if v is not None}}
    new_id = conn.execute(insert(table).values(**values)).inserted_primary_key
    assert new_id is not None
    return int(new_id[0])
