"""What the simulator and the listener share: writing time series rows idempotently.

Both write into ``Reading`` and ``NodeState`` without setting ``syncSeq`` (the
pusher stamps it). Rows are inserted with "skip if the natural key exists"
semantics (``models.sql.insert_ignoring_duplicates``), so a re-run backfill or a
client re-sending lines whose acknowledgement it never saw changes nothing instead
of failing.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection, select

from base.errors import PermanentError
from models import NodeState, Reading, SensorType
from models.base import table_of

READING = table_of(Reading)
NODESTATE = table_of(NodeState)
SENSORTYPE = table_of(SensorType)


class IngestError(PermanentError):
    """Readings cannot be written as asked (bad plan, unknown sensor type, clashing node)."""


def sensor_type_ids(conn: Connection) -> dict[int, str]:
    """The sensor type catalogue: id → code, in id order (a code the original catalogue
    uses twice, such as ``T`` for 0 and 41, names the lowest id)."""
    rows = conn.execute(select(SENSORTYPE.c.id, SENSORTYPE.c.code).order_by(SENSORTYPE.c.id))
    return {int(r.id): str(r.code) for r in rows}


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
