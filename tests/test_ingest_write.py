"""The server's write path for batches (rest/batch.py, rest/upsert.py) on every backend:
new rows, changed rows, and a "new" row that a concurrent writer stored meanwhile."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import insert, select

from base.db import write_engine
from models import NodeState, Reading
from models.base import table_of
from rest.batch import apply_batch, parse_batch
from rest.bulkwrite import NODESTATES, READINGS, _write_mysql
from rest.keys import Principal
from rest.times import from_micros, to_micros
from rest.upsert import float_literal, time_literal
from tests.factories import place_node

ADMIN = Principal(key_id=0, role="admin", site_id=None, site_name=None)
T0 = to_micros(datetime(2026, 1, 1, 12, 0, 0, 250_000))
STEP = 300_000_000


@pytest.fixture
def node(engine) -> tuple[int, int]:
    """(node id, location id) of a node in a house."""
    placed = place_node(engine, 4242, deployment="Write path", address="1 Write Lane",
                        room="Kitchen W")
    return placed.node, placed.location


def _values(engine) -> list[tuple]:
    t = table_of(Reading)
    with engine.connect() as conn:
        return [
            (to_micros(r.time), r.value)
            for r in conn.execute(select(t.c.time, t.c.value).order_by(t.c.time))
        ]


def _batch(node: int, loc: int, values: list[float]) -> dict:
    return {
        "format": "cogent-batch/1",
        "readings": [
            {"node": node, "type": 0, "location": loc,
             "t": [T0] + [STEP] * (len(values) - 1), "v": values}
        ],
        "nodestates": [
            {"node": node, "t": [T0, STEP], "seq": [1, 2], "parent": [None, 7],
             "rssi": [-60, None], "localtime": [2**40, None]}
        ],
    }  # fmt: skip


def test_new_changed_and_unchanged_rows_are_counted_and_stored(engine, node):
    node_id, loc = node
    with write_engine(engine).begin() as conn:
        first = apply_batch(conn, ADMIN, parse_batch(_batch(node_id, loc, [1.0, 2.5, -0.0])))
    assert (first.stored, first.unchanged) == (5, 0)
    with write_engine(engine).begin() as conn:
        again = apply_batch(conn, ADMIN, parse_batch(_batch(node_id, loc, [1.0, 2.75, -0.0, 4.0])))
    assert (again.stored, again.unchanged) == (2, 4)
    assert _values(engine) == [(T0 + i * STEP, v) for i, v in enumerate([1.0, 2.75, 0.0, 4.0])]
    t = table_of(NodeState)
    with engine.connect() as conn:
        states = [tuple(r) for r in conn.execute(select(t.c.parent, t.c.rssi, t.c.localtime))]
    assert sorted(states, key=str) == sorted([(None, -60, 2**40), (7, None, None)], key=str)


def test_a_row_stored_concurrently_after_the_existence_check_is_upserted(engine, node, backend):
    if backend != "mysql":
        pytest.skip("the INSERT-then-upsert path is MySQL/MariaDB's")
    node_id, loc = node
    with engine.begin() as conn:  # the "concurrent" writer got there first
        conn.execute(
            insert(table_of(Reading)),
            [{"nodeId": node_id, "type": 0, "time": from_micros(T0), "locationId": loc,
              "value": 5.0}],
        )  # fmt: skip
    rows = [(node_id, 0, T0, loc, 7.0), (node_id, 0, T0 + STEP, loc, 8.0)]
    with write_engine(engine).begin() as conn:
        _write_mysql(conn, READINGS, rows, [])
    assert _values(engine) == [(T0, 7.0), (T0 + STEP, 8.0)]
    states = [(node_id, T0, 1, None, -61, 5)]
    with write_engine(engine).begin() as conn:
        _write_mysql(conn, NODESTATES, states, [])
        _write_mysql(conn, NODESTATES, [], [(node_id, T0, 1, 3, -62, None)])
    with engine.connect() as conn:
        t = table_of(NodeState)
        assert [tuple(r) for r in conn.execute(select(t.c.parent, t.c.rssi, t.c.localtime))] == [
            (3, -62, None)
        ]


@pytest.mark.parametrize(
    "value", [21.37, 0.1, -3.3, 1e-05, 5e-324, 1.7976931348623157e308, 123456789.123, 1e22]
)
def test_float_literals_read_back_as_the_same_double(value):
    assert float(float_literal(value)) == value
    assert "e" in float_literal(value)


def test_time_literals_match_datetime_formatting():
    for us in (0, T0, T0 + 1, 86_400_000_000 * 20_000 + 999_999, 1_767_225_599_999_999):
        assert time_literal(us) == f"'{from_micros(us).isoformat(' ', 'microseconds')}'"
