"""Every cycle checks in, even with nothing to send (issue 12, item 1): the key is tested, and
the server sees the station alive (``keys list`` last used, its StationStatus row)."""

from __future__ import annotations

import socket

import pytest
from sqlalchemy import select

from base.db import make_engine
from models import ApiKey
from rest.stations import list_stations
from tests.pushkit import push_once

pytestmark = pytest.mark.parametrize("backend", [pytest.param("sqlite", id="sqlite")])


def test_an_idle_cycle_checks_in_and_the_server_sees_the_station_alive(pair):
    [report] = push_once(pair.config())  # nothing to send
    assert report.ok and report.sent == 0, report.error
    engine = make_engine(pair.remote)
    try:
        with engine.connect() as conn:
            [station] = list_stations(conn)
            used = conn.execute(select(ApiKey.lastUsed)).scalars().all()
    finally:
        engine.dispose()
    assert station.site == "site-a" and station.host == socket.gethostname()
    assert station.backlog == 0 and station.version
    assert station.clock_offset is not None and abs(station.clock_offset) < 60
    assert any(u is not None for u in used)  # keys list shows it as used


def test_the_check_in_reports_the_schema_and_the_rows_set_aside_and_batches_are_noted(pair):
    from base.migrate import head_revision
    from tests.pushkit import T0, insert_unchecked, seed_cogent_house

    seed_cogent_house(pair.local, days=1)
    insert_unchecked(pair.local, [{"nodeId": 999, "type": 0, "time": T0, "locationId": 9999,
                                   "value": 1.0}])
    [first] = push_once(pair.config())  # sends, and sets the unknown node's row aside
    assert first.ok, first.error
    [second] = push_once(pair.config())  # its check-in reports that row
    assert second.ok, second.error
    engine = make_engine(pair.remote)
    try:
        with engine.connect() as conn:
            [station] = list_stations(conn)
    finally:
        engine.dispose()
    assert station.schema == head_revision() and station.set_aside == 1
    assert station.last_batch is not None
