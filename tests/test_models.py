"""Natural keys and column types behave the same on every backend."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import House, NodeState, Reading, Room
from tests.factories import place_node


def quote(engine, name: str) -> str:
    return engine.dialect.identifier_preparer.quote(name)


def test_duplicate_reading_is_rejected_by_the_database(engine):
    with Session(engine) as s:
        loc = place_node(s, 101, room_type=3)
    r, n, t, ty, v, lo = (
        quote(engine, c) for c in ("Reading", "nodeId", "time", "type", "value", "locationId")
    )
    sql = text(f"INSERT INTO {r} ({n}, {ty}, {t}, {lo}, {v}) VALUES (101, 0, :t, :loc, 20.5)")
    when = datetime(2026, 1, 1, 12, 0, 0)
    with engine.begin() as conn:
        conn.execute(sql, {"t": when, "loc": loc.location})
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(sql, {"t": when, "loc": loc.location})


def test_duplicate_node_state_is_rejected_by_the_database(engine):
    with Session(engine) as s:
        place_node(s, 101, room_type=3)
        when = datetime(2026, 1, 1, 12, 0, 0)
        s.add(NodeState(nodeId=101, time=when, seq_num=7, parent=0, rssi=-60))
        s.commit()
        s.add(NodeState(nodeId=101, time=when, seq_num=7, parent=0, rssi=-61))
        with pytest.raises(IntegrityError):
            s.commit()


def test_same_address_in_one_deployment_is_one_house(engine):
    with Session(engine) as s:
        loc = place_node(s, 101, room_type=3)
        house = s.get(House, loc.house)
        assert house is not None
        s.add(House(deploymentId=house.deploymentId, address=house.address))
        with pytest.raises(IntegrityError):
            s.commit()


def test_reading_times_keep_microseconds(engine):
    when = datetime(2026, 3, 4, 5, 6, 7, 891234)
    with Session(engine) as s:
        loc = place_node(s, 101, room_type=3)
        s.add(Reading(nodeId=101, type=0, time=when, locationId=loc.location,
                      value=21.123456789012))
        s.commit()
    with Session(engine) as s:
        got = s.execute(select(Reading.time, Reading.value)).one()
    assert got.time == when
    assert got.value == 21.123456789012  # a double, not a single-precision FLOAT


def test_names_that_differ_only_in_case_are_different_rooms_on_every_backend(engine):
    # Regression: MySQL's default collation made "Kitchen" and "kitchen" one natural key.
    with Session(engine) as s:
        # (Trailing spaces still compare equal on MySQL: utf8mb4_bin is a PAD SPACE collation.)
        s.add_all([Room(name="Kitchen"), Room(name="kitchen")])
        s.commit()
        assert s.execute(select(Room.name).where(Room.name == "kitchen")).scalars().all() == [
            "kitchen"
        ]
