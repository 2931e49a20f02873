"""The local replication sequence: rows written by any program with plain SQL get stamped in
commit order, and a row that commits late is never skipped."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from base.db import make_engine
from models import RESTORED_SEQ, Reading
from models.sequence import stamp_all, stamp_pending
from tests.factories import place_node
from tests.test_models import quote

T0 = datetime(2026, 1, 1)


def plain_insert(conn, engine, minute: int, node: int = 101) -> None:
    q = {c: quote(engine, c) for c in ("Reading", "nodeId", "type", "time", "value")}
    conn.execute(
        text(
            f"INSERT INTO {q['Reading']} ({q['nodeId']}, {q['type']}, {q['time']}, {q['value']}) "
            "VALUES (:n, 0, :t, 1.0)"
        ),
        {"n": node, "t": T0 + timedelta(minutes=minute)},
    )


def seqs(engine) -> dict[int, int | None]:
    with engine.connect() as conn:
        return {
            r.time.minute: r.syncSeq for r in conn.execute(select(Reading.time, Reading.syncSeq))
        }


def test_row_inserted_with_plain_sql_gets_a_larger_sequence_than_earlier_rows(engine):
    with Session(engine) as s:
        place_node(s, 101, room_type=3)
    with engine.begin() as conn:
        for m in range(3):
            plain_insert(conn, engine, m)
    assert stamp_all(engine, "Reading") == 3
    with engine.begin() as conn:
        plain_insert(conn, engine, 10)
    assert stamp_pending(engine, "Reading") == 1
    got = seqs(engine)
    assert None not in got.values()
    assert got[10] > max(got[m] for m in range(3))
    assert len(set(got.values())) == 4


def test_stamping_twice_changes_nothing(engine):
    with Session(engine) as s:
        place_node(s, 101, room_type=3)
    with engine.begin() as conn:
        plain_insert(conn, engine, 1)
    stamp_all(engine, "Reading")
    before = seqs(engine)
    assert stamp_all(engine, "Reading") == 0
    assert seqs(engine) == before


def test_restored_rows_keep_sequence_zero(engine):
    with Session(engine) as s:
        loc = place_node(s, 101, room_type=3)
        s.add(
            Reading(nodeId=101, type=0, time=T0, locationId=loc.location, value=1.0,
                    syncSeq=RESTORED_SEQ)
        )
        s.commit()
    assert stamp_all(engine, "Reading") == 0
    assert seqs(engine) == {0: RESTORED_SEQ}


def test_stamping_in_small_rounds_keeps_id_order(engine):
    with Session(engine) as s:
        place_node(s, 101, room_type=3)
    with engine.begin() as conn:
        for m in range(25):
            plain_insert(conn, engine, m)
    assert stamp_all(engine, "Reading", limit=4) == 25
    got = seqs(engine)
    assert [got[m] for m in range(25)] == sorted(got.values())


def test_row_that_commits_late_with_a_lower_id_is_stamped_after_the_others(backend, engine, db_url):
    if backend == "sqlite":
        pytest.skip("SQLite has one writer at a time: ids always commit in order")
    with Session(engine) as s:
        place_node(s, 101, room_type=3)
    slow = make_engine(db_url)
    try:
        with slow.connect() as slow_conn:
            slow_tx = slow_conn.begin()
            plain_insert(slow_conn, engine, 1)  # takes the lower id, commits last
            with engine.begin() as conn:
                plain_insert(conn, engine, 2)
            stamp_all(engine, "Reading")
            first = seqs(engine)
            assert first[2] is not None and 1 not in first
            slow_tx.commit()
        stamp_all(engine, "Reading")
        after = seqs(engine)
        assert after[1] is not None and after[1] > after[2]
    finally:
        slow.dispose()
