"""The server's two ways of writing new rows (rest/bulkwrite.py): the multi-row INSERT and the
bulk path (LOAD DATA LOCAL INFILE on MariaDB, COPY on PostgreSQL) store the same rows,
answer the same, and stay idempotent, on every backend."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import Engine, delete, insert, select

from base.db import make_engine, write_engine
from models import NodeState, Reading
from models.base import table_of
from rest.batch import apply_batch, parse_batch
from rest.bulkwrite import BULK_MIN_ROWS, READINGS, RowWriter
from rest.keys import Principal
from rest.times import from_micros, to_micros
from tests.factories import place_node

ADMIN = Principal(key_id=0, role="admin", site_id=None, site_name=None)
T0 = to_micros(datetime(2026, 2, 1, 0, 0, 0, 125_000))
STEP = 300_000_000
N = BULK_MIN_ROWS + 100  # enough for the bulk path to be taken


@pytest.fixture
def bulk_engine(db_url: str) -> Iterator[Engine]:
    """An engine whose MariaDB connections may send LOAD DATA LOCAL INFILE."""
    eng = make_engine(db_url, connect_args={"local_infile": True}) if db_url.startswith(
        "mysql") else make_engine(db_url)
    yield eng
    eng.dispose()


def _values(i: int) -> float | None:
    """Values with the awkward cases in them: NULL, negative zero, tiny and huge doubles."""
    awkward = [None, -0.0, 5e-324, 1.7976931348623157e308, 21.3, -3.3, 1e-05]
    return awkward[i % len(awkward)] if i % 50 == 0 else round(18 + (i % 97) * 0.01, 2)


def _batch(node: int, loc: int, values: list[float | None], bad_at: int | None = None) -> dict:
    v: list = list(values)
    if bad_at is not None:
        v[bad_at] = "warm"  # one row refused, the rest stored
    n = len(values)
    return {
        "format": "cogent-batch/1",
        "readings": [{"node": node, "type": 0, "location": loc,
                      "t": [T0] + [STEP] * (n - 1), "v": v}],
        "nodestates": [{"node": node, "t": [T0] + [STEP] * (n - 1), "seq": list(range(n)),
                        "parent": [None if i % 3 == 0 else 7 for i in range(n)],
                        "rssi": [-60 - i % 30 for i in range(n)],
                        "localtime": [None if i % 2 else 2**40 + i for i in range(n)]}],
    }  # fmt: skip


def _stored(engine: Engine) -> tuple[list[tuple], list[tuple]]:
    r, s = table_of(Reading), table_of(NodeState)
    with engine.connect() as conn:
        readings = [(r_.nodeId, r_.type, to_micros(r_.time), r_.locationId, r_.value)
                    for r_ in conn.execute(select(r).order_by(r.c.time))]
        states = [(s_.nodeId, to_micros(s_.time), s_.seq_num, s_.parent, s_.rssi, s_.localtime)
                  for s_ in conn.execute(select(s).order_by(s.c.time))]
    return readings, states


def _signs(rows: list[tuple]) -> list[str]:
    return [repr(row[4]) for row in rows]


def _run(engine: Engine, writer: RowWriter, node: int, loc: int) -> list[tuple]:
    """The same sequence of batches: new rows, the same again, some changed (one refused)."""
    values = [_values(i) for i in range(N)]
    changed = [v if i % 7 else 99.5 for i, v in enumerate(values)]
    answers = []
    for body in (_batch(node, loc, values), _batch(node, loc, values),
                 _batch(node, loc, changed, bad_at=3)):
        with write_engine(engine).begin() as conn:
            result = apply_batch(conn, ADMIN, parse_batch(body), writer)
        answers.append((result.stored, result.unchanged,
                        [(r.kind, r.index, r.count, r.code) for r in result.rejected]))
    return answers


def _clear(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(delete(table_of(Reading)))
        conn.execute(delete(table_of(NodeState)))


def test_the_insert_and_bulk_paths_store_the_same_rows_and_answer_the_same(bulk_engine):
    placed = place_node(bulk_engine, 4343, deployment="Paths", address="2 Path Road")
    answers = {}
    stored = {}
    for path in ("insert", "bulk"):
        writer = RowWriter(path)
        answers[path] = _run(bulk_engine, writer, placed.node, placed.location)
        assert not writer.load_data_refused
        stored[path] = _stored(bulk_engine)
        _clear(bulk_engine)
    assert answers["bulk"] == answers["insert"]
    first, again, changed = answers["bulk"]
    assert first[:2] == (2 * N, 0)
    assert again[:2] == (0, 2 * N)  # a re-sent batch writes nothing
    assert changed[2] == [("reading", 3, 1, "bad_value")]
    assert stored["bulk"] == stored["insert"]
    assert _signs(stored["bulk"][0]) == _signs(stored["insert"][0])  # -0.0 as each backend keeps it
    assert len(stored["bulk"][0]) == len(stored["bulk"][1]) == N


def test_rows_a_concurrent_writer_stored_meanwhile_are_upserted_by_the_bulk_path(bulk_engine):
    placed = place_node(bulk_engine, 4344, deployment="Paths", address="3 Path Road")
    node, loc = placed.node, placed.location
    with bulk_engine.begin() as conn:  # got there between our look and our write
        conn.execute(insert(table_of(Reading)), [
            {"nodeId": node, "type": 0, "time": from_micros(T0 + i * STEP), "locationId": loc,
             "value": -1.0} for i in (0, 17, N - 1)])
    rows = [(node, 0, T0 + i * STEP, loc, float(i)) for i in range(N)]
    writer = RowWriter("bulk")
    with write_engine(bulk_engine).begin() as conn:
        writer.write(conn, READINGS, rows, [])
    readings, _ = _stored(bulk_engine)
    assert [r[4] for r in readings] == [float(i) for i in range(N)]


def test_a_mariadb_refusing_local_infile_is_written_with_insert_and_says_so(
        engine, backend, caplog):
    if backend != "mysql":
        pytest.skip("LOAD DATA LOCAL INFILE is MariaDB/MySQL's")
    # ``engine``'s connections do not offer LOCAL INFILE: MariaDB answers as a server with
    # local_infile=OFF would.
    placed = place_node(engine, 4345, deployment="Paths", address="4 Path Road")
    rows = [(placed.node, 0, T0 + i * STEP, placed.location, 1.5) for i in range(N)]
    writer = RowWriter("bulk")
    with (caplog.at_level(logging.WARNING, "cogent.rest.bulkwrite"),
          write_engine(engine).begin() as conn):
        writer.write(conn, READINGS, rows, [])
    assert writer.load_data_refused and not writer.bulk_for("mysql")
    assert "local_infile=ON" in caplog.text and "--write-path insert" in caplog.text
    assert len(_stored(engine)[0]) == N


def test_auto_takes_the_bulk_path_where_there_is_one():
    auto = RowWriter()
    assert auto.bulk_for("postgresql") and auto.bulk_for("mysql") and not auto.bulk_for("sqlite")
    assert not RowWriter("insert").bulk_for("postgresql")
    assert not RowWriter("insert").bulk_for("mysql")
    with pytest.raises(ValueError, match="choose one of auto, insert, bulk"):
        RowWriter("fast")
