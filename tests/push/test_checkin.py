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
