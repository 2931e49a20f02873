"""What the simulator and the listener share: writing time series rows idempotently.

Both write into ``Reading`` and ``NodeState`` without setting ``syncSeq`` (the
pusher stamps it). Rows are inserted with "skip if the natural key exists"
semantics, so a re-run backfill or a client re-sending lines whose
acknowledgement it never saw changes nothing instead of failing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table, select
from sqlalchemy.dialects import mysql, postgresql, sqlite

from base.errors import PermanentError
from models import NodeState, Reading, SensorType

READING: Table = Reading.__table__  # type: ignore[assignment]
NODESTATE: Table = NodeState.__table__  # type: ignore[assignment]
SENSORTYPE: Table = SensorType.__table__  # type: ignore[assignment]


class IngestError(PermanentError):
    """Readings cannot be written as asked (bad plan, unknown sensor type, clashing node)."""


def insert_ignoring_duplicates(
    conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Insert ``rows`` (executemany), silently skipping rows whose unique key already exists.

    Only unique-key conflicts are skipped: a missing foreign key still fails,
    unlike MySQL's ``INSERT IGNORE``, which would turn it into a warning.
    """
    if not rows:
        return
    name = conn.dialect.name
    stmt: Any
    if name == "sqlite":
        stmt = sqlite.insert(table).on_conflict_do_nothing()
    elif name == "postgresql":
        stmt = postgresql.insert(table).on_conflict_do_nothing()
    elif name in ("mysql", "mariadb"):
        stmt = mysql.insert(table).on_duplicate_key_update(id=table.c.id)
    else:  # pragma: no cover - the project supports only the three above
        raise IngestError(f"unsupported database {name!r}")
    conn.execute(stmt, list(rows))


def sensor_type_ids(conn: Connection) -> dict[int, str]:
    """The sensor type catalogue: id → code."""
    return {
        int(r.id): str(r.code) for r in conn.execute(select(SENSORTYPE.c.id, SENSORTYPE.c.code))
    }


def resolve_sensor_type(token: str, catalogue: Mapping[int, str]) -> int:
    """A sensor type given by id (``0``) or code (``T``, ``rh``) → its id.

    Codes match exactly first, then ignoring case when that is unambiguous
    (``dB`` and ``DB`` would otherwise be the same thing).
    """
    token = token.strip()
    if token.lstrip("-").isdigit():
        tid = int(token)
        if tid in catalogue:
            return tid
        raise IngestError(f"unknown sensor type id {tid}")
    for tid, code in catalogue.items():
        if code == token:
            return tid
    folded = [tid for tid, code in catalogue.items() if code.lower() == token.lower()]
    if len(folded) == 1:
        return folded[0]
    known = ", ".join(f"{code}={tid}" for tid, code in sorted(catalogue.items()))
    raise IngestError(f"unknown sensor type {token!r}; known types: {known}")
