"""Daily reading averages per location, computed once and kept in ``ReadingDay``.

A year of a house's readings is a million rows: averaging them on every view of the house
page takes seconds. Days are computed the first time they are asked for and kept; every
write of readings through the server (batches in either dialect, the one-row API) drops
the days of the locations it touched, so a day is recomputed after new data. The last two
days are never kept (they are still being written).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Integer, cast, delete, func, insert, select
from sqlalchemy.dialects import postgresql

from models import Reading, ReadingDay
from models.base import table_of
from models.sql import from_micros

DAY_US = 86_400_000_000
COMPUTED = -1  # the type of the row that marks a day as computed
LIVE_DAYS = 2


def invalidate(conn: Connection, touched: Iterable[tuple[int | None, int]]) -> None:
    """Drop the cached days ``(location, microseconds since 1970 of any time that day)``."""
    days: dict[int, set[int]] = defaultdict(set)
    for location, us in touched:
        if location is not None and -(1 << 31) <= location < 1 << 31:
            days[location].add(us // DAY_US)
    table = table_of(ReadingDay)
    for location in sorted(days):  # one order for every writer
        starts = [from_micros(d * DAY_US) for d in sorted(days[location])]
        for i in range(0, len(starts), 500):
            conn.execute(delete(table).where(table.c.locationId == location,
                                             table.c.day.in_(starts[i:i + 500])))


def invalidate_locations(conn: Connection, locations: Iterable[int | None]) -> None:
    """Drop every cached day of these locations (a one-row write, rare)."""
    table = table_of(ReadingDay)
    for location in sorted({loc for loc in locations if loc is not None}):
        conn.execute(delete(table).where(table.c.locationId == location))


def _keep(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert cache rows; a day another request computed meanwhile is already there."""
    table = table_of(ReadingDay)
    name = conn.dialect.name
    if name == "postgresql":
        conn.execute(postgresql.insert(table).on_conflict_do_nothing(), rows)
    elif name == "sqlite":
        conn.execute(insert(table).prefix_with("OR IGNORE"), rows)
    else:  # no foreign keys here: IGNORE can only skip a duplicate
        conn.execute(insert(table).prefix_with("IGNORE"), rows)


def time_bucket(dialect: str, column: Any, origin: int, step: int) -> Any:
    """``floor((seconds since 1970 of column - origin) / step)`` in SQL, on every backend."""
    if dialect == "sqlite":
        # ``//``: SQLAlchemy's ``/`` is true division, which would give every reading its
        # own bucket.
        return (cast(func.strftime("%s", column), Integer) - origin) // step
    if dialect == "postgresql":
        return func.floor((cast(func.extract("epoch", column), Integer) - origin) / step)
    return func.floor((func.unix_timestamp(column) - origin) / step)


def daily(conn: Connection, locations: list[int], first: datetime, today: datetime
          ) -> dict[tuple[int, int], dict[datetime, float | None]]:
    """(location, type) → {day: average} for the days from ``first`` to ``today`` (midnights,
    UTC), from the cache where it can, computing and keeping what is missing."""
    table = table_of(ReadingDay)
    keep_before = today - timedelta(days=LIVE_DAYS - 1)
    out: dict[tuple[int, int], dict[datetime, float | None]] = defaultdict(dict)
    cached = conn.execute(select(table).where(table.c.locationId.in_(locations),
                                              table.c.day >= first, table.c.day < keep_before))
    done: dict[int, set[datetime]] = defaultdict(set)
    for row in cached:
        if row.type == COMPUTED:
            done[row.locationId].add(row.day)
        elif row.n:
            out[(row.locationId, row.type)][row.day] = row.total / row.n if row.total is not None \
                else None
    all_days = [first + timedelta(days=i) for i in range((today - first).days + 1)]
    for location in locations:
        missing = [d for d in all_days if d not in done[location]]
        if not missing:
            continue
        start, end = missing[0], missing[-1] + timedelta(days=1)
        day = time_bucket(conn.dialect.name, Reading.time, 0, 86_400)
        rows = conn.execute(
            select(Reading.type, day.label("d"), func.sum(Reading.value), func.count(Reading.value))
            .where(Reading.locationId == location, Reading.time >= start, Reading.time < end)
            .group_by(Reading.type, day)).all()
        fresh: list[dict[str, Any]] = []
        for kind, d, total, n in rows:
            when = datetime(1970, 1, 1) + timedelta(days=int(d))
            if when not in missing:
                continue
            out[(location, kind)][when] = None if not n else float(total) / n
            if when < keep_before:
                fresh.append({"locationId": location, "type": kind, "day": when,
                              "total": None if total is None else float(total), "n": int(n)})
        fresh += [{"locationId": location, "type": COMPUTED, "day": d, "total": None, "n": 0}
                  for d in missing if d < keep_before]
        for i in range(0, len(fresh), 1000):
            _keep(conn, fresh[i:i + 1000])
    return out
