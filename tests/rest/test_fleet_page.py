"""The fleet page: behind a login with a read-only or admin account, one row per base station
with its state in words; driven in Debian's headless Chromium (``make test-tools``; a skip
locally without it, a failure under CI=true)."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy.orm import Session

from base.db import make_engine
from models.sql import utcnow
from models.stations import DIALECT_LEGACY
from rest.accounts import create_account
from rest.keys import get_or_create_site
from rest.stations import CheckIn, record_batch, record_station_checkin
from tests.live_server import start_server
from tests.rest.browser import wait_for as _wait_for

pytestmark = pytest.mark.slow  # a server of its own
PASSWORD = "operator password 1"


@pytest.fixture
def fleet(sqlite_url):
    server = start_server(sqlite_url, silent_after=600)
    engine = make_engine(sqlite_url)
    with Session(engine) as session:
        create_account(session, "ops", PASSWORD, "readonly")
        create_account(session, "loft-1", PASSWORD, "site", "house-12")
        quiet = get_or_create_site(session, "house-7").id
        live = get_or_create_site(session, "house-12").id
        session.commit()
    with engine.begin() as conn:
        record_station_checkin(conn, quiet, CheckIn("quiet-pi", "0.4", None, None,
                                                    DIALECT_LEGACY), utcnow() - timedelta(hours=2))
        record_station_checkin(conn, live, CheckIn("live-pi", "cogent-sync 0.1", utcnow(), 12,
                                                   schema="0008", set_aside=3), utcnow())
        record_batch(conn, live, utcnow() - timedelta(minutes=4))
    engine.dispose()
    try:
        yield server
    finally:
        server.stop()


def _root(server) -> str:
    return server.url.removesuffix("rest/")


def test_the_fleet_page_needs_a_read_only_or_admin_login(fleet):
    root = _root(fleet)
    with httpx.Client(base_url=root, timeout=30) as http:
        assert http.get("fleet").status_code == 303
        assert http.get("fleet").headers["location"] == "/login"
        wrong = http.post("login", data={"name": "ops", "password": "nope"})
        assert wrong.status_code == 401 and "wrong account name or password" in wrong.text
        station = http.post("login", data={"name": "loft-1", "password": PASSWORD})
        assert station.status_code == 403
        http.cookies.set("cogent_session", "1.99999999999.forged", domain="127.0.0.1")
        assert http.get("fleet").status_code == 303
    with httpx.Client(base_url=root, timeout=30) as http:
        ok = http.post("login", data={"name": "ops", "password": PASSWORD})
        assert ok.status_code == 303
        page = http.get("fleet")
        assert page.status_code == 200 and "quiet-pi" in page.text
        live = page.text[page.text.index('data-host="live-pi"'):]
        live = live[:live.index("</tr>")]
        for shown in ("ok", "0008", ">3<", "4 min ago", "12"):
            assert shown in live, (shown, live)


def test_a_silent_station_is_shown_silent_in_a_real_browser(fleet, browser, tmp_path):
    from selenium.webdriver.common.by import By

    root = _root(fleet)
    browser.get(root + "fleet")
    _wait_for(browser, "#name")[0].send_keys("ops")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "submit").click()
    rows = _wait_for(browser, "tr.station")
    states = {r.get_attribute("data-host"): r.find_element(By.CSS_SELECTOR, "td").text
              for r in rows}
    browser.save_screenshot(str(tmp_path / "fleet.png"))
    assert states == {"quiet-pi": "silent", "live-pi": "ok"}, states
    # Sorting by host puts live-pi first.
    browser.find_elements(By.CSS_SELECTOR, "#fleet th")[2].click()
    first = browser.find_elements(By.CSS_SELECTOR, "tr.station")[0].get_attribute("data-host")
    assert first == "live-pi"
