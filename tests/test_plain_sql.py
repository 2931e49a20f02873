"""The plain-SQL INSERTs of docs/INGEST.md, run exactly as written on each backend: a reading and
a node state as a gateway's logger would write them, then read back and stamped by the pusher.
And the reason they quote it: ``localtime`` unquoted fails on MariaDB and PostgreSQL."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from models import NodeState, Reading
from models.sequence import stamp_pending
from tests.factories import place_node

DOC = Path(__file__).resolve().parent.parent / "docs" / "INGEST.md"
DIALECT = {"sqlite": "sqlite", "mysql": "mariadb", "postgresql": "postgresql"}
WHEN = datetime(2026, 1, 5, 12, 0, 0, 250000)


def documented(backend: str) -> list[str]:
    """The statements of the ```sql block that starts with ``-- <backend>``."""
    blocks = re.findall(r"```sql\n(.*?)```", DOC.read_text(), flags=re.S)
    for block in blocks:
        first, _, body = block.partition("\n")
        if first.strip() == f"-- {DIALECT[backend]}":
            return [s.strip() for s in body.split(";") if s.strip()]
    raise AssertionError(f"docs/INGEST.md has no ```sql block for {DIALECT[backend]}")


def test_the_documented_plain_sql_inserts_work_on_every_backend(engine, backend):
    location = place_node(engine, 1101, deployment="Plain SQL", address="1 Gateway Road",
                          room="Hall", node_type=None).location
    statements = documented(backend)
    assert len(statements) == 2
    raw = engine.raw_connection()  # as a logger would: the driver, no SQLAlchemy
    try:
        cur = raw.cursor()
        for statement in statements:
            cur.execute(statement)
        raw.commit()
    finally:
        raw.close()
    with engine.connect() as conn:
        reading = conn.execute(select(Reading)).one()
        state = conn.execute(select(NodeState)).one()
    assert (reading.nodeId, reading.type, reading.time, reading.locationId, reading.value) == (
        1101, 0, WHEN, location, 21.37,
    )
    assert (state.nodeId, state.time, state.seq_num, state.localtime) == (1101, WHEN, 17, 3600)
    assert reading.syncSeq is None and state.syncSeq is None  # the pusher's to stamp
    assert stamp_pending(engine, "Reading", 10) and stamp_pending(engine, "NodeState", 10)


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("mysql", marks=pytest.mark.mysql),
        pytest.param("postgresql", marks=pytest.mark.postgresql),
    ],
)
def test_localtime_unquoted_is_a_syntax_error_on_mariadb_and_postgresql(engine, backend):
    place_node(engine, 1101, deployment="Plain SQL", address="1 Gateway Road", room="Hall",
               node_type=None)
    statement = documented(backend)[1].replace("`localtime`", "localtime").replace(
        '"localtime"', "localtime"
    )
    assert '"localtime"' not in statement and "`localtime`" not in statement
    raw = engine.raw_connection()
    try:
        with pytest.raises(Exception, match=r"(?i)syntax"):  # the driver's own error
            raw.cursor().execute(statement)
    finally:
        raw.close()
