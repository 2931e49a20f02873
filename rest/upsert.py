"""The database's own upsert, built with SQLAlchemy's dialect-specific insert constructs.

For MySQL/MariaDB, :func:`insert_literal_rows` writes the same upsert as multi-row
``INSERT … VALUES (…),(…) ON DUPLICATE KEY UPDATE`` text built directly from
validated ints, floats and times: the driver's per-value escaping was most of the
server's CPU time on the batch path (docs/BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table

from models.sql import upsert as upsert  # the one definition; re-exported for the server

_EPOCH = datetime(1970, 1, 1)
_DAY_US = 86_400_000_000
# Rows per INSERT statement: ~70 bytes each, well under MySQL's 4 MiB and MariaDB's 16 MiB
# default max_allowed_packet.
LITERAL_ROWS_PER_STATEMENT = 10_000
_HMS = [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]
_DAYS: dict[int, str] = {}


def time_literal(us: int) -> str:
    """µs since 1970 → ``'YYYY-MM-DD HH:MM:SS.ffffff'`` (about 3x faster than via datetime)."""
    day, rem = divmod(us, _DAY_US)
    date = _DAYS.get(day)
    if date is None:
        midnight = _EPOCH + timedelta(days=day)  # OverflowError outside years 1..9999
        date = _DAYS[day] = midnight.strftime("'%Y-%m-%d ")
    sec, micro = divmod(rem, 1_000_000)
    return f"{date}{_HMS[sec]}.{micro:06d}'"


def float_literal(value: float) -> str:
    """A finite double as the shortest text that reads back as the same double; ``e0`` makes
    it an approximate-value literal, parsed by strtod (as PyMySQL does)."""
    text = repr(value)
    return text if "e" in text else text + "e0"


def _literal(value: Any, is_time: bool) -> str:
    if value is None:
        return "NULL"
    if is_time:
        return time_literal(value)
    if type(value) is float:
        return float_literal(value)
    if type(value) is int:
        return str(value)
    raise TypeError(f"no SQL literal for {type(value).__name__}")


def _values(columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> str:
    """``(…),(…)`` for rows in ``columns`` order (validated ints, finite floats, None; time as
    int µs)."""
    if tuple(columns) == ("nodeId", "type", "time", "locationId", "value"):
        # Readings, the bulk of every batch: one f-string per row.
        out = []
        for node, kind, us, loc, value in rows:
            day, rem = divmod(us, _DAY_US)
            date = _DAYS.get(day)
            if date is None:
                time_literal(us)
                date = _DAYS[day]
            sec, micro = divmod(rem, 1_000_000)
            text = repr(value)
            if value is None:
                text = "NULL"
            elif "e" not in text:
                text += "e0"
            out.append(f"({node:d},{kind:d},{date}{_HMS[sec]}.{micro:06d}',{loc:d},{text})")
        return ",".join(out)
    ti = list(columns).index("time")
    return ",".join(
        "(" + ",".join(_literal(v, i == ti) for i, v in enumerate(row)) + ")" for row in rows
    )


def insert_literal_rows(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    replace: Sequence[str] | None = None,
) -> None:
    """MySQL/MariaDB multi-row ``INSERT`` of literal rows (see :func:`_values`); with
    ``replace``, ``… ON DUPLICATE KEY UPDATE`` those columns (an upsert)."""
    q = conn.dialect.identifier_preparer.quote
    head = f"INSERT INTO {q(table.name)} ({','.join(q(c) for c in columns)}) VALUES "
    tail = ""
    if replace:
        tail = " ON DUPLICATE KEY UPDATE " + ",".join(f"{q(c)}=VALUES({q(c)})" for c in replace)
    for start in range(0, len(rows), LITERAL_ROWS_PER_STATEMENT):
        chunk = rows[start : start + LITERAL_ROWS_PER_STATEMENT]
        conn.exec_driver_sql(head + _values(columns, chunk) + tail)
