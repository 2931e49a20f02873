"""Station check-ins: one row per (site, host), latest wins, offset = station minus server."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, insert, select

from models import Site
from models.base import table_of
from models.stations import DIALECT_LEGACY
from rest.stations import CheckIn, list_stations, record_station_checkin

NOW = datetime(2026, 12, 3, 12, 0, 0)


def _site(conn, name: str) -> int:
    return conn.execute(insert(table_of(Site)).values(name=name, created=NOW)).inserted_primary_key[
        0
    ]


def test_a_station_checking_in_twice_keeps_one_row_with_its_latest_report(engine: Engine) -> None:
    with engine.begin() as conn:
        a = _site(conn, "a")
        record_station_checkin(
            conn, a, CheckIn("pi-1", "1.0", NOW - timedelta(seconds=90), 10), NOW
        )
        later = NOW + timedelta(minutes=5)
        record_station_checkin(
            conn, a, CheckIn("pi-1", "1.1", later + timedelta(seconds=3), 0), later
        )
    with engine.connect() as conn:
        (only,) = list_stations(conn)
        seen = conn.execute(select(table_of(Site).c.lastSeen)).scalar_one()
    assert (only.site, only.host, only.version, only.backlog) == ("a", "pi-1", "1.1", 0)
    assert only.last_contact == later and seen == later
    assert only.clock_offset == 3.0


def test_a_station_behind_the_server_has_a_negative_offset_and_hosts_are_kept_apart(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        a, b = _site(conn, "a"), _site(conn, "b")
        record_station_checkin(conn, a, CheckIn("pi", None, NOW - timedelta(minutes=2), None), NOW)
        record_station_checkin(conn, b, CheckIn("pi", "0.9", None, 5, DIALECT_LEGACY), NOW)
    with engine.connect() as conn:
        stations = list_stations(conn)
        only_b = list_stations(conn, site_id=b)
    assert [(s.site, s.clock_offset) for s in stations] == [("a", -120.0), ("b", None)]
    assert [(s.site, s.dialect) for s in only_b] == [("b", "legacy")]
