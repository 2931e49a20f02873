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


def test_the_bucket_query_runs_on_every_backend(db_url):
    from rest.house_page import house_series

    engine = make_engine(db_url)
    try:
        placed = place_node(engine, 3002, address="6 Plot Road", room="Hall", sensor_types=(0,))
        now = utcnow().replace(microsecond=0)
        with engine.begin() as conn:
            conn.execute(insert(table_of(Reading)), [
                {"nodeId": 3002, "type": 0, "time": now - timedelta(hours=h),
                 "locationId": placed.location, "value": float(h)} for h in range(1, 30)])
        data = house_series(engine, placed.house, 7, now)
        [hall] = data["locations"]
        values = [v for v in hall["series"][0]["values"] if v is not None]
        assert len(values) == 29 and min(values) == 1.0 and max(values) == 29.0
    finally:
        engine.dispose()
