"""Writing a batch's new and changed rows: the statements each backend takes fastest.

:mod:`rest.batch` decides *which* rows to write (new, changed); this module decides *how*.
Two paths per backend, chosen by measurement (``python -m bench --only writepaths``,
docs/BENCHMARKS.md "Server write paths"):

* ``insert``: multi-row ``INSERT`` of literal rows on MariaDB/MySQL (changed rows with
  ``ON DUPLICATE KEY UPDATE``); the dialect's multi-row upsert elsewhere.
* ``bulk``: ``LOAD DATA LOCAL INFILE`` of the new rows on MariaDB/MySQL; on PostgreSQL,
  ``COPY`` into a temporary table and one ``INSERT … SELECT … ON CONFLICT``.

``auto`` (the default) takes ``bulk`` on both: COPY measured 1.5x the multi-row upsert on
PostgreSQL, LOAD DATA 1.03 to 1.09x the literal INSERT on MariaDB at the pusher's 5,000-row
batches (equal at 20,000). A MariaDB/MySQL that refuses LOCAL INFILE (MySQL 8's default) gets
the INSERT instead.
Both paths write the same rows with the same idempotence: a row some concurrent writer
stored since :mod:`rest.batch` looked is upserted, never skipped or duplicated.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.exc import DBAPIError, IntegrityError

from models import NodeState, Reading
from models.base import table_of
from rest.times import from_micros
from rest.upsert import insert_literal_rows, time_literal, upsert

log = logging.getLogger("cogent.rest.bulkwrite")

WRITE_PATHS = ("auto", "insert", "bulk")
# Below this many rows the bulk paths' extra statements cost more than they save.
BULK_MIN_ROWS = 500
_MYSQL_DUPLICATE_KEY = 1062
# The server or the client refuses LOCAL INFILE (MySQL 1148/3948, MariaDB 4166).
_LOCAL_INFILE_REFUSED = {1148, 3948, 4166}
_TMP_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else None

Row = tuple[Any, ...]


@dataclass(frozen=True)
class Stream:
    """One replicated table as the batch path sees it."""

    table: Table
    columns: tuple[str, ...]  # the row tuple's columns; "time" holds µs
    group: tuple[str, ...]  # key columns that select one index range
    key: tuple[str, ...]  # the natural key (group + time [+ seq_num]): the tuple's first ones
    replace: tuple[str, ...]  # columns a re-sent row overwrites

    @property
    def replaced_at(self) -> tuple[int, ...]:
        """Where the replaced columns are in a row tuple."""
        return tuple(self.columns.index(c) for c in self.replace)


READINGS = Stream(
    table_of(Reading),
    ("nodeId", "type", "time", "locationId", "value"),
    ("nodeId", "type"),
    ("nodeId", "type", "time"),
    ("value", "locationId"),
)
NODESTATES = Stream(
    table_of(NodeState),
    ("nodeId", "time", "seq_num", "parent", "rssi", "localtime"),
    ("nodeId",),
    ("nodeId", "time", "seq_num"),
    ("parent", "rssi", "localtime"),
)


class RowWriter:
    """Writes new and changed rows by one of :data:`WRITE_PATHS`; one per server worker.

    A MariaDB that refuses LOCAL INFILE turns the bulk path into the insert path for the
    rest of the worker's life, with one warning saying how to allow it.
    """

    def __init__(self, path: str = "auto") -> None:
        if path not in WRITE_PATHS:
            raise ValueError(f"write path {path!r}: choose one of {', '.join(WRITE_PATHS)}")
        self.path = path
        self.load_data_refused = False

    def bulk_for(self, dialect: str) -> bool:
        """Whether new rows go by the bulk path on ``dialect``."""
        if dialect == "postgresql":
            return self.path != "insert"
        if dialect in ("mysql", "mariadb"):
            return self.path != "insert" and not self.load_data_refused
        return False

    def write(self, conn: Connection, stream: Stream, new: list[Row], changed: list[Row]) -> None:
        """Store ``new`` rows (not stored when looked for) and ``changed`` ones (stored with
        other values), both sorted by natural key: one lock order for every writer."""
        dialect = conn.dialect.name
        bulk = len(new) + len(changed) >= BULK_MIN_ROWS and self.bulk_for(dialect)
        if dialect in ("mysql", "mariadb"):
            if bulk and new and self._load_data(conn, stream, new):
                new = []
            _write_mysql(conn, stream, new, changed)
        elif bulk:
            _copy_upsert(conn, stream, sorted(new + changed))
        elif new or changed:
            _upsert(conn, stream, sorted(new + changed))

    def _load_data(self, conn: Connection, stream: Stream, rows: list[Row]) -> bool:
        """``LOAD DATA LOCAL INFILE`` of ``rows``; False when the database refused it (the
        caller then INSERTs them). Rows it skipped as duplicates (a concurrent writer) are
        upserted here, so the caller has nothing left to do on True."""
        try:
            loaded = _load_data_infile(conn, stream, rows)
        except DBAPIError as exc:
            code = getattr(exc.orig, "args", (None,))[0]
            if code not in _LOCAL_INFILE_REFUSED:
                raise
            self.load_data_refused = True
            # Asked for by name, its refusal is worth a warning; under auto it is expected.
            log.log(logging.WARNING if self.path == "bulk" else logging.INFO,
                "the database refused LOAD DATA LOCAL INFILE (%s); writing with INSERT from now "
                "on. Allow it with local_infile=ON in the MariaDB server's configuration, or "
                "run cogent-rest with --write-path insert", exc.orig)
            return False
        if loaded != len(rows):
            # LOCAL implies IGNORE: rows a concurrent writer stored meanwhile (or a reference
            # deleted meanwhile) were skipped with a warning. The upsert settles the first and
            # raises the second.
            insert_literal_rows(conn, stream.table, stream.columns, rows, stream.replace)
        return True


def _write_mysql(conn: Connection, stream: Stream, new: list[Row], changed: list[Row]) -> None:
    """New rows with a plain INSERT (InnoDB takes them ~15 % faster than an upsert), changed
    ones with the upsert. A concurrent writer may have stored some "new" row since we looked:
    then the INSERT fails as a whole (MySQL undoes just that statement) and the upsert does
    the job."""
    if new:
        try:
            insert_literal_rows(conn, stream.table, stream.columns, new)
        except IntegrityError as exc:
            if getattr(exc.orig, "args", (None,))[0] != _MYSQL_DUPLICATE_KEY:
                raise
            changed = sorted(changed + new)
    if changed:
        insert_literal_rows(conn, stream.table, stream.columns, changed, stream.replace)


def _upsert(conn: Connection, stream: Stream, rows: list[Row]) -> None:
    ti = stream.columns.index("time")
    dicts = [
        {c: (from_micros(v) if i == ti else v)
         for i, (c, v) in enumerate(zip(stream.columns, row, strict=True))}
        for row in rows
    ]
    conn.execute(upsert(conn.dialect, stream.table, stream.key, stream.replace), dicts)


def _tsv(stream: Stream, rows: Sequence[Row]) -> str:
    """Rows as tab-separated text both LOAD DATA and COPY read: ``\\N`` for NULL, times as
    ``YYYY-MM-DD HH:MM:SS.ffffff`` (UTC), floats as their shortest exact text."""
    ti = stream.columns.index("time")
    out = []
    for row in rows:
        fields = []
        for i, v in enumerate(row):
            if v is None:
                fields.append("\\N")
            elif i == ti:
                fields.append(time_literal(v)[1:-1])
            else:
                fields.append(repr(v))
        out.append("\t".join(fields))
    out.append("")
    return "\n".join(out)


def _load_data_infile(conn: Connection, stream: Stream, rows: Sequence[Row]) -> int:
    """Rows loaded. The driver reads LOCAL INFILE data from a file: a private one in memory
    (/dev/shm) where there is one, removed at once."""
    q = conn.dialect.identifier_preparer.quote
    with tempfile.NamedTemporaryFile(
        "w", encoding="ascii", dir=_TMP_DIR, prefix="cogent-load-", suffix=".tsv"
    ) as f:
        f.write(_tsv(stream, rows))
        f.flush()
        result = conn.exec_driver_sql(
            f"LOAD DATA LOCAL INFILE %s INTO TABLE {q(stream.table.name)} "
            f"CHARACTER SET ascii FIELDS TERMINATED BY '\\t' LINES TERMINATED BY '\\n' "
            f"({','.join(q(c) for c in stream.columns)})",
            (f.name,),
        )
        return int(result.rowcount)


def _copy_upsert(conn: Connection, stream: Stream, rows: list[Row]) -> None:
    """PostgreSQL: COPY into a per-connection temporary table, then one
    ``INSERT … SELECT … ORDER BY key ON CONFLICT DO UPDATE``. The table is emptied at commit
    (or rollback): once per stream per transaction, as :func:`rest.batch.apply_batch` calls
    it."""
    if not rows:
        return
    q = conn.dialect.identifier_preparer.quote
    name = q(f"cogent_incoming_{stream.table.name.lower()}")
    cols = ",".join(q(c) for c in stream.columns)
    conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} ON COMMIT DELETE ROWS AS "
        f"SELECT {cols} FROM {q(stream.table.name)} WITH NO DATA")
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(f"COPY {name} ({cols}) FROM STDIN") as copy:  # type: ignore[union-attr]
        copy.write(_tsv(stream, rows))
    key = ",".join(q(c) for c in stream.key)
    updates = ",".join(f"{q(c)}=EXCLUDED.{q(c)}" for c in stream.replace)
    conn.exec_driver_sql(
        f"INSERT INTO {q(stream.table.name)} ({cols}) SELECT {cols} FROM {name} "
        f"ORDER BY {key} ON CONFLICT ({key}) DO UPDATE SET {updates}")
