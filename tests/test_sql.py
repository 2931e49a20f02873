"""models/sql.py: the SQL helpers both sides share, one contract run on all three backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from models import Node, NodeType, Reading, RoomType, SyncCursor
from models.base import table_of
from models.sql import from_micros, get_or_create, insert_ignoring_duplicates, to_micros, upsert

T0 = datetime(2026, 1, 5, 12, 0, 0)


@pytest.fixture
def node(engine) -> int:
    with engine.begin() as conn:
        node_type = conn.execute(select(table_of(NodeType).c.id).limit(1)).scalar_one()
        conn.execute(insert(table_of(Node)).values(id=4242, nodeTypeId=node_type))
    return 4242


def readings(node: int, n: int, start: int = 0) -> list[dict]:
    return [{"nodeId": node, "type": 0, "time": T0 + timedelta(minutes=5 * (start + i)),
             "value": float(i)} for i in range(n)]


def count_readings(engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table_of(Reading))).scalar_one())


def test_insert_ignoring_duplicates_counts_only_the_rows_it_inserted(engine, node):
    table = table_of(Reading)
    with engine.begin() as conn:
        assert insert_ignoring_duplicates(conn, table, readings(node, 5)) == 5
    with engine.begin() as conn:  # three old, four new
        assert insert_ignoring_duplicates(conn, table, readings(node, 7, start=2)) == 4
    assert count_readings(engine) == 9


def test_insert_ignoring_duplicates_keeps_the_first_value_of_a_key(engine, node):
    table = table_of(Reading)
    with engine.begin() as conn:
        insert_ignoring_duplicates(conn, table, readings(node, 1))
        insert_ignoring_duplicates(conn, table, [{**readings(node, 1)[0], "value": 99.0}])
    with engine.connect() as conn:
        assert conn.execute(select(table.c.value)).scalar_one() == 0.0


def test_insert_ignoring_duplicates_still_fails_on_a_missing_foreign_key(engine, node):
    """MySQL's INSERT IGNORE would quietly drop the row; here every backend raises."""
    table = table_of(Reading)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        insert_ignoring_duplicates(conn, table, [*readings(node, 2), *readings(999_999, 1, 9)])
    assert count_readings(engine) == 0  # the whole transaction rolled back


def test_insert_ignoring_duplicates_counts_across_many_statements(engine, node):
    table = table_of(Reading)
    with engine.begin() as conn:
        assert insert_ignoring_duplicates(conn, table, readings(node, 4500)) == 4500
    with engine.begin() as conn:
        assert insert_ignoring_duplicates(conn, table, readings(node, 5000)) == 500


def test_upsert_inserts_then_replaces_only_the_named_columns(engine):
    table = table_of(SyncCursor)
    stmt = upsert(engine.dialect, table, ["remote", "stream"], ["position"])
    with engine.begin() as conn:
        conn.execute(stmt, [{"remote": "r", "stream": "s", "position": 1, "updated": T0}])
        conn.execute(stmt, [{"remote": "r", "stream": "s", "position": 7, "updated": T0}])
    with engine.connect() as conn:
        assert conn.execute(select(table.c.position)).scalars().all() == [7]


def test_get_or_create_returns_the_same_row_the_second_time(engine):
    table = table_of(RoomType)
    with engine.begin() as conn:
        first = get_or_create(conn, table, {"name": "Loft-contract"})
        again = get_or_create(conn, table, {"name": "Loft-contract"})
        other = get_or_create(conn, table, {"name": "Cellar-contract"})
    assert first == again != other


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)))
def test_microseconds_round_trip_every_representable_time(value):
    assert from_micros(to_micros(value)) == value
    assert to_micros(value.isoformat(sep=" ")) == to_micros(value)  # SQLite's text form


def test_an_aware_time_is_converted_to_utc_first():
    aware = datetime(2026, 1, 1, 13, 0, tzinfo=UTC).astimezone(timezone(timedelta(hours=1)))
    assert to_micros(aware) == to_micros(datetime(2026, 1, 1, 13, 0))
