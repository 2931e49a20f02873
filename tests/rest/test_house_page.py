"""The house page: latest value per room and sensor type, and a plot per room drawn by uPlot
(served from the server, no CDN) from server-side bucket averages, gaps left as gaps; in
Debian's headless Chromium."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session

from base.db import make_engine
from models import Reading
from models.base import table_of
from models.sql import utcnow
from rest.accounts import create_account
from tests.factories import place_node
from tests.live_server import start_server
from tests.rest.browser import wait_for

PASSWORD = "operator password 2"


@pytest.fixture
def house(sqlite_url):
    server = start_server(sqlite_url)
    engine = make_engine(sqlite_url)
    with Session(engine) as session:
        create_account(session, "ops", PASSWORD, "readonly")
        session.commit()
    placed = place_node(engine, 3001, address="5 Plot Road", room="Kitchen",
                        sensor_types=(0, 2))
    now = utcnow()
    rows = []
    for i in range(7 * 24 * 12):  # a week of 5-minute readings, with a day missing
        when = now - timedelta(minutes=5 * i)
        if timedelta(days=2) < now - when < timedelta(days=3):
            continue
        rows.append({"nodeId": 3001, "type": 0, "time": when, "locationId": placed.location,
                     "value": 20 + (i % 12) / 10})
    with engine.begin() as conn:
        conn.execute(insert(table_of(Reading)), rows)
    engine.dispose()
    try:
        yield server, placed.house
    finally:
        server.stop()


def _root(server) -> str:
    return server.url.removesuffix("rest/")


@pytest.mark.slow  # a server of its own
def test_the_series_is_bucketed_with_gaps_and_needs_a_login(house):
    server, house_id = house
    with httpx.Client(base_url=_root(server), timeout=30) as http:
        assert http.get(f"house/{house_id}/series").status_code == 401
        assert http.post("login", data={"name": "ops", "password": PASSWORD}).status_code == 303
        data = http.get(f"house/{house_id}/series", params={"days": "7"}).json()
        [kitchen] = data["locations"]
        [temperature] = kitchen["series"]
        values = temperature["values"]
        assert len(data["x"]) == len(values) <= 700
        assert None in values  # the missing day is a gap, not a line across it
        assert all(20 <= v <= 21.2 for v in values if v is not None)
        assert http.get(f"house/{house_id}/series", params={"days": "2"}).status_code == 400
        assert http.get("static/uplot/LICENSE").status_code == 200


@pytest.mark.slow  # a server of its own
def test_the_house_page_draws_its_plot_and_the_range_picker_redraws_it(house, browser,
                                                                        tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    server, house_id = house
    root = _root(server)
    browser.get(root + f"house/{house_id}")
    wait_for(browser, "#name")[0].send_keys("ops")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "submit").click()
    # The login lands on the fleet page; only then is the session cookie surely set.
    WebDriverWait(browser, 30).until(lambda d: d.current_url.endswith("/fleet"))
    browser.get(root + f"house/{house_id}")
    canvas = wait_for(browser, ".plot canvas")[0]
    assert canvas.size["width"] > 300 and canvas.size["height"] > 100
    painted = browser.execute_script(
        "const c = arguments[0]; const d = c.getContext('2d').getImageData(0, 0, c.width, "
        "c.height).data; let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; "
        "return n;", canvas)
    assert painted > 500, painted  # lines were drawn, not an empty canvas
    assert "Kitchen" in browser.find_element(By.ID, "latest").text
    browser.save_screenshot(str(tmp_path / "house.png"))
    Select(browser.find_element(By.ID, "range")).select_by_value("1")
    WebDriverWait(browser, 20).until(
        lambda d: d.find_element(By.ID, "plot-status").get_attribute("data-days") == "1")
    assert wait_for(browser, ".plot canvas")


def test_the_bucket_query_averages_each_bucket_on_every_backend(db_url):
    """Regression: on SQLite SQLAlchemy's ``/`` is true division, which made every reading a
    bucket of its own (the last one won); two readings of one bucket must average."""
    from datetime import datetime

    from rest.house_page import house_series

    engine = make_engine(db_url)
    try:
        placed = place_node(engine, 3002, address="6 Plot Road", room="Hall", sensor_types=(0,))
        now = utcnow().replace(microsecond=0)
        end = int((now - datetime(1970, 1, 1)).total_seconds())
        step = 7 * 86_400 // 600
        first = (end - 7 * 86_400) - (end - 7 * 86_400) % step
        rows = []
        for k in range(1, 30):  # two readings well inside bucket 20k: values k and k + 1
            for offset, value in ((10, float(k)), (20, float(k + 1))):
                when = datetime(1970, 1, 1) + timedelta(seconds=first + 20 * k * step + offset)
                rows.append({"nodeId": 3002, "type": 0, "time": when,
                             "locationId": placed.location, "value": value})
        with engine.begin() as conn:
            conn.execute(insert(table_of(Reading)), rows)
        data = house_series(engine, placed.house, 7, now)
        [hall] = data["locations"]
        values = [v for v in hall["series"][0]["values"] if v is not None]
        assert values == [k + 0.5 for k in range(1, 30)]
    finally:
        engine.dispose()


def test_a_year_is_drawn_from_cached_days_that_new_readings_make_stale(db_url):
    """Past a month the house page plots daily averages, kept in ReadingDay after the first
    view; a batch (or a one-row write) of a day drops that day, so the plot follows new data."""
    from sqlalchemy import func, select

    from models import ReadingDay
    from models.protocol.decode import Batch, ReadingSeries
    from models.sql import to_micros
    from rest.batch import apply_batch
    from rest.house_page import house_series
    from rest.keys import Principal

    engine = make_engine(db_url)
    try:
        placed = place_node(engine, 3003, address="7 Year Road", room="Study", sensor_types=(0,))
        now = utcnow().replace(microsecond=0)
        old_day = (now - timedelta(days=100)).replace(hour=12, minute=0, second=0)
        with engine.begin() as conn:
            conn.execute(insert(table_of(Reading)), [
                {"nodeId": 3003, "type": 0, "time": old_day + timedelta(minutes=m),
                 "locationId": placed.location, "value": 10.0} for m in range(0, 60, 5)])

        def value_that_day() -> float:
            data = house_series(engine, placed.house, 365, now)
            [study] = data["locations"]
            start = int((old_day.replace(hour=0) - datetime_epoch()).total_seconds())
            return study["series"][0]["values"][data["x"].index(start)]

        assert value_that_day() == 10.0
        with engine.connect() as conn:
            kept = conn.execute(select(func.count()).select_from(ReadingDay)).scalar_one()
        assert kept > 300  # the year's days are kept (a marker for each, a row per day of data)
        assert value_that_day() == 10.0  # from the cache
        admin = Principal(key_id=0, role="admin", site_id=None, site_name=None)
        late = Batch(readings=[ReadingSeries(3003, 0, placed.location, 0,
                                             [to_micros(old_day + timedelta(hours=1))], [22.0])])
        with engine.begin() as conn:
            assert apply_batch(conn, admin, late).stored == 1
        assert value_that_day() == round((12 * 10.0 + 22.0) / 13, 3)
    finally:
        engine.dispose()


def datetime_epoch():
    from datetime import datetime

    return datetime(1970, 1, 1)
