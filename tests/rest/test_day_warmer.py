"""The day cache is filled in the background (rest/daywarmer.py), so the first view of a
house's year finds its days computed."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, insert, select

from base.db import make_engine
from models import Reading, ReadingDay
from models.base import table_of
from models.sql import utcnow
from rest.daycache import COMPUTED
from rest.daywarmer import WARM_DAYS, warm_once
from rest.house_page import house_series
from tests.factories import place_node
from tests.live_server import start_server
from tests.reliability.kit import wait_for


def _kept(engine) -> tuple[int, int]:
    """(days marked computed, rows of averages) in the cache."""
    t = table_of(ReadingDay)
    with engine.connect() as conn:
        marks = conn.execute(select(func.count()).where(t.c.type == COMPUTED)).scalar_one()
        rows = conn.execute(select(func.count()).where(t.c.type != COMPUTED)).scalar_one()
    return marks, rows


def _readings(location: int, node: int, days_ago: list[int], now: datetime) -> list[dict]:
    return [{"nodeId": node, "type": 0, "time": now - timedelta(days=d, minutes=m),
             "locationId": location, "value": 18.0 + d % 5}
            for d in days_ago for m in range(0, 60, 10)]


def test_after_warming_the_first_view_of_a_year_computes_no_kept_day(db_url):
    engine = make_engine(db_url)
    try:
        now = utcnow().replace(microsecond=0)
        busy = place_node(engine, 3101, address="8 Warm Road", room="Lounge")
        quiet = place_node(engine, 3102, address="9 Cold Road", room="Attic")
        with engine.begin() as conn:
            conn.execute(insert(table_of(Reading)), _readings(busy.location, 3101,
                                                                [300, 100, 40, 5], now))
            conn.execute(insert(table_of(Reading)), _readings(quiet.location, 3102,
                                                                [WARM_DAYS + 20], now))
        assert warm_once(engine, now) == 1  # the attic's readings are older than a year
        marks, rows = _kept(engine)
        assert marks == WARM_DAYS - 1  # every day of the plot but the two live ones
        assert rows == 4
        cold_view = house_series(engine, busy.house, 365, now)
        assert _kept(engine) == (marks, rows)  # the view found every day it keeps computed
        with engine.begin() as conn:
            conn.execute(ReadingDay.__table__.delete())
        assert house_series(engine, busy.house, 365, now) == cold_view  # same as uncached
    finally:
        engine.dispose()


@pytest.mark.slow  # a server of its own
def test_a_server_warms_the_day_cache_in_the_background(sqlite_url):
    engine = make_engine(sqlite_url)
    now = utcnow()
    placed = place_node(engine, 3103, address="10 Warm Road", room="Hall")
    with engine.begin() as conn:
        conn.execute(insert(table_of(Reading)), _readings(placed.location, 3103, [50, 20], now))
    server = start_server(sqlite_url, warm_interval=1)
    try:
        wait_for(lambda: _kept(engine)[1] == 2, 30, "the warmer to keep the two days")
    finally:
        server.stop()
        engine.dispose()
