"""Stamping the local replication sequence onto committed rows.

Why not just use the autoincrement id as the cursor? On MySQL/MariaDB and
PostgreSQL ids are handed out at INSERT time but become visible at COMMIT
time, so with two concurrent writers id 10 can commit after id 11 has been
pushed and would be skipped forever. Instead, writers leave ``syncSeq`` NULL
and the pusher, holding the counter row's lock, stamps the rows it can *see*
(committed ones) with values above every value handed out before. A row that
commits late is simply stamped in a later round with a larger value, so a
cursor over ``syncSeq`` never skips anything, whatever the writers do.

The stamp is ``id + offset``, with one offset per round, so a round costs one
UPDATE per run of consecutive ids rather than one per row.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from sqlalchemy import Connection, Engine, Table, select, update

from base.db import write_engine
from models.readings import NodeState, Reading
from models.sync import SyncSequence

STAMPED_TABLES: dict[str, Table] = {
    "Reading": Reading.__table__,  # type: ignore[dict-item]
    "NodeState": NodeState.__table__,  # type: ignore[dict-item]
}

_MIN_RANGE = 8
_IN_CHUNK = 500


def _runs(ids: Sequence[int]) -> Iterator[tuple[int, int]]:
    start = prev = ids[0]
    for i in ids[1:]:
        if i != prev + 1:
            yield start, prev
            start = i
        prev = i
    yield start, prev


def stamp_pending(engine: Engine, table_name: str, limit: int = 50_000) -> int:
    """Stamp up to ``limit`` committed, unstamped rows of ``table_name``; return how many.

    Runs in its own short write transaction. Call it until it returns less
    than ``limit`` to stamp everything that is committed now.
    """
    table = STAMPED_TABLES[table_name]
    with write_engine(engine).begin() as conn:
        return _stamp(conn, table_name, table, limit)


def _stamp(conn: Connection, table_name: str, table: Table, limit: int) -> int:
    counter: Table = SyncSequence.__table__  # type: ignore[assignment]
    last = conn.execute(
        select(counter.c.lastSeq).where(counter.c.tableName == table_name).with_for_update()
    ).scalar_one_or_none()
    if last is None:
        conn.execute(counter.insert().values(tableName=table_name, lastSeq=0))
        last = 0
    ids = list(
        conn.execute(
            select(table.c.id).where(table.c.syncSeq.is_(None)).order_by(table.c.id).limit(limit)
        ).scalars()
    )
    if not ids:
        return 0
    offset = last + 1 - ids[0]
    stamp = {"syncSeq": table.c.id + offset}
    singles: list[int] = []
    for lo, hi in _runs(ids):
        if hi - lo + 1 >= _MIN_RANGE:
            # Every id in [lo, hi] was seen committed, so no in-flight row can be caught here.
            conn.execute(
                update(table)
                .where(table.c.id.between(lo, hi), table.c.syncSeq.is_(None))
                .values(stamp)
            )
        else:
            singles.extend(range(lo, hi + 1))
    for i in range(0, len(singles), _IN_CHUNK):
        chunk = singles[i : i + _IN_CHUNK]
        conn.execute(
            update(table).where(table.c.id.in_(chunk), table.c.syncSeq.is_(None)).values(stamp)
        )
    conn.execute(
        update(counter).where(counter.c.tableName == table_name).values(lastSeq=ids[-1] + offset)
    )
    return len(ids)


def stamp_all(engine: Engine, table_name: str, limit: int = 50_000) -> int:
    """Stamp every row committed so far, in rounds of ``limit``; return the total."""
    total = 0
    while True:
        n = stamp_pending(engine, table_name, limit)
        total += n
        if n < limit:
            return total
