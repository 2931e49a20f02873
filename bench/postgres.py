"""The catch-up against PostgreSQL (issue 17): ours, through the server, beside the two
direct copies an engineer would write into the same schema — psycopg's ``executemany`` of a
plain INSERT, and ``COPY … FROM STDIN`` of the rows (the database's own bulk path)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import make_url

from base.migrate import upgrade
from bench.copies import CopyResult, copy_tables
from bench.remote import METADATA_TABLES


class PostgreSQL:
    """Creates and drops databases named ``<prefix>_<label>`` on one server (the interface of
    :class:`bench.remote.MariaDB` the scenarios use)."""

    def __init__(self, url: str, prefix: str = "cgbench"):
        self.url = make_url(url).set(drivername="postgresql+psycopg")
        self.prefix = prefix

    def _dsn(self, database: str | None = None) -> str:
        u = self.url
        return (f"host={u.host or '127.0.0.1'} port={u.port or 5432} "
                f"user={u.username or 'postgres'} dbname={database or u.database or 'postgres'}"
                + (f" password={u.password}" if u.password else ""))

    def connect(self, url: str, **kw: Any) -> psycopg.Connection:
        return psycopg.connect(self._dsn(make_url(url).database), **kw)

    def version(self) -> str:
        with psycopg.connect(self._dsn()) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else "?"

    def create_empty(self, label: str) -> str:
        name = f"{self.prefix}_{label}"
        with psycopg.connect(self._dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url.set(database=name).render_as_string(hide_password=False)

    def create(self, label: str) -> str:
        url = self.create_empty(label)
        upgrade(url)
        return url

    def drop(self, url: str) -> None:
        with psycopg.connect(self._dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(make_url(url).database or "")))

    def count(self, url: str, table: str) -> int:
        with self.connect(url) as conn:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
                sql.Identifier(table))).fetchone()
            return int(row[0]) if row else 0

    def copy_metadata(self, local: Path, url: str) -> None:
        """The base station's metadata rows with their ids (for the direct copies)."""
        src = sqlite3.connect(local)
        try:
            with self.connect(url) as conn:
                conn.execute("SET session_replication_role = replica")  # no FK checks
                conn.execute('DELETE FROM "RoomType"')
                for table in METADATA_TABLES:
                    cur = src.execute(f'SELECT * FROM "{table}"')
                    cols = [d[0] for d in cur.description]
                    rows = cur.fetchall()
                    if rows:
                        conn.cursor().executemany(
                            sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                                sql.Identifier(table),
                                sql.SQL(",").join(map(sql.Identifier, cols)),
                                sql.SQL(",").join(sql.Placeholder() * len(cols))),
                            rows)
                conn.commit()
        finally:
            src.close()


def _statement(table: str, cols: tuple[str, ...], copy: bool) -> sql.Composed:
    names = sql.SQL(",").join(map(sql.Identifier, cols))
    if copy:
        return sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table), names)
    return sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(table), names, sql.SQL(",").join(sql.Placeholder() * len(cols)))


def direct_copy(pg: PostgreSQL, local: Path, url: str, *, copy: bool,
                batch: int = 5000) -> CopyResult:
    """Every reading and node state from the SQLite file into ``url``, by ``executemany`` in
    transactions of ``batch`` rows, or by ``COPY`` (one per 100,000 rows)."""
    dst = pg.connect(url)

    def write(table: str, cols: tuple[str, ...], rows: list[Any]) -> None:
        statement = _statement(table, cols, copy)
        with dst.cursor() as cur:
            if copy:
                with cur.copy(statement) as c:
                    for row in rows:
                        c.write_row(row)
            else:
                cur.executemany(statement, rows)
        dst.commit()

    try:
        return copy_tables(local, 100_000 if copy else batch, write)
    finally:
        dst.close()


def catchup_postgresql(opts: Any, pg: PostgreSQL, res: Any) -> None:
    """Scenario ``catchup-pg``: the catch-up dataset into PostgreSQL three ways."""
    from bench.dataset import make_dataset
    from bench.scenarios import push_through_server, say

    say(opts, f"catch-up on PostgreSQL: dataset of {opts.readings:,} readings")
    data = make_dataset(opts.readings, opts.cache)
    f: dict[str, Any] = {}
    for label, copy in (("executemany", False), ("copy", True)):
        say(opts, f"  direct {label}…")
        url = pg.create(f"pg{label}")
        try:
            pg.copy_metadata(data.path, url)
            f[label] = vars(direct_copy(pg, data.path, url, copy=copy, batch=opts.pushlimit))
        finally:
            if not opts.keep:
                pg.drop(url)
    say(opts, "  cogent-sync: pusher → cogent-rest → PostgreSQL…")
    out, counts = push_through_server(opts, pg, data, "pgcatchup")
    f["ours"] = out
    f["ours_delivered"] = counts == (data.readings, data.nodestates)
    f["version"] = pg.version()
    if not f["ours_delivered"]:
        res.notes.append(f"PostgreSQL catch-up delivered {counts}, expected "
                         f"{(data.readings, data.nodestates)}")
    res.figures["catchup_pg"] = f
