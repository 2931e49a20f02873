"""/docs and /redoc work without internet: Swagger UI and ReDoc come from the server itself.

A real server on loopback and Debian's headless Chromium with every host name but
127.0.0.1 unresolvable (so a page that loads its script from a CDN stays blank). Needs
chromium and chromium-driver (``make test-tools``): a skip locally without them, a failure
under CI=true.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dbs import in_ci
from tests.live_server import LiveServer, start_server

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
OFFLINE = "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"


@pytest.fixture
def browser() -> Iterator[object]:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium (pip)")
    if missing:
        why = f"{', '.join(missing)} missing: 'make test-tools' installs the browser"
        if in_ci():
            pytest.fail(why)
        pytest.skip(why)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--host-resolver-rules={OFFLINE}", "--window-size=1280,2000"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def server(sqlite_url: str) -> Iterator[LiveServer]:
    live = start_server(sqlite_url)
    try:
        yield live
    finally:
        live.stop()


def _wait_for(driver, css: str, timeout: float = 20) -> list:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, css) or False
    )


def test_swagger_ui_at_docs_shows_the_operations_without_internet(browser, server, tmp_path):
    base = server.url.removesuffix("rest/")
    browser.get(base + "docs")
    try:
        operations = _wait_for(browser, ".opblock-summary-path")
    finally:
        browser.save_screenshot(str(tmp_path / "docs.png"))
    paths = {op.text.replace("\u200b", "") for op in operations}
    assert "/rest/version/" in paths and "/rest/sync/batch/" in paths, paths
    assert len(paths) > 10, paths


def test_redoc_at_redoc_shows_the_operations_without_internet(browser, server):
    base = server.url.removesuffix("rest/")
    browser.get(base + "redoc")
    _wait_for(browser, "[data-section-id]")
    assert "/rest/version/" in browser.page_source
