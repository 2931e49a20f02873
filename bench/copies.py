"""The two comparisons that bypass the protocol: read the local SQLite rows and write them
straight into the remote MariaDB.

(a) ``executemany``: what an engineer would write for a database-to-database copy —
the DB-API cursor's ``executemany`` of a plain INSERT (PyMySQL turns it into multi-row
INSERTs), one transaction per batch of the pusher's size.
(b) ``LOAD DATA LOCAL INFILE`` of the same rows as tab-separated text: the database's
own bulk-load path, the practical ceiling for getting these rows into InnoDB.

Both copy readings and node states, like the pusher, and both keep the local ids of
locations and nodes (the remote metadata was copied with the same ids), which the
protocol paths have to map.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.remote import MariaDB

COLUMNS = {
    "Reading": ("time", "nodeId", "type", "locationId", "value"),
    "NodeState": ("time", "nodeId", "parent", "localtime", "seq_num", "rssi"),
}


@dataclass
class CopyResult:
    readings: int = 0
    nodestates: int = 0
    seconds: float = 0.0


def copy_tables(
    local: Path, chunk: int, write: Callable[[str, tuple[str, ...], list[Any]], None]
) -> CopyResult:
    """Every reading and node state of the SQLite file, ``chunk`` rows at a time, handed to
    ``write(table, columns, rows)`` (which commits); timed and counted."""
    result = CopyResult()
    src = sqlite3.connect(local)
    t0 = time.perf_counter()
    try:
        for table, cols in COLUMNS.items():
            query = src.execute(f'SELECT {", ".join(cols)} FROM "{table}" ORDER BY id')
            while rows := query.fetchmany(chunk):
                write(table, cols, rows)
                if table == "Reading":
                    result.readings += len(rows)
                else:
                    result.nodestates += len(rows)
    finally:
        result.seconds = time.perf_counter() - t0
        src.close()
    return result


def executemany_copy(db: MariaDB, local: Path, url: str, batch: int = 5000) -> CopyResult:
    dst = db.connect(url)

    def write(table: str, cols: tuple[str, ...], rows: list[Any]) -> None:
        names = ",".join(f"`{c}`" for c in cols)
        with dst.cursor() as cur:
            cur.executemany(
                f"INSERT INTO `{table}` ({names}) VALUES ({','.join(['%s'] * len(cols))})", rows)
        dst.commit()

    try:
        return copy_tables(local, batch, write)
    finally:
        dst.close()


def _field(value: object) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def load_data_copy(db: MariaDB, local: Path, url: str, chunk: int = 100_000) -> CopyResult:
    dst = db.connect(url, local_infile=True)
    fd, name = tempfile.mkstemp(prefix="cgbench-", suffix=".tsv")
    os.close(fd)

    def write(table: str, cols: tuple[str, ...], rows: list[Any]) -> None:
        with open(name, "w", encoding="utf-8") as f:
            f.writelines("\t".join(map(_field, row)) + "\n" for row in rows)
        with dst.cursor() as cur:
            cur.execute(
                f"LOAD DATA LOCAL INFILE %s INTO TABLE `{table}` "
                f"FIELDS TERMINATED BY '\\t' ({','.join(f'`{c}`' for c in cols)})",
                (name,),
            )
        dst.commit()

    try:
        return copy_tables(local, chunk, write)
    finally:
        Path(name).unlink(missing_ok=True)
        dst.close()
