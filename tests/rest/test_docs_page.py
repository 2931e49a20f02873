"""/docs and /redoc work without internet: Swagger UI and ReDoc come from the server itself.

A real server on loopback and Debian's headless Chromium with every host name but
127.0.0.1 unresolvable (so a page that loads its script from a CDN stays blank). Needs
chromium and chromium-driver (``make test-tools``): a skip locally without them, a failure
under CI=true.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.live_server import LiveServer, start_server
from tests.rest.browser import wait_for as _wait_for

pytestmark = pytest.mark.slow

@pytest.fixture
def server(sqlite_url: str) -> Iterator[LiveServer]:
    live = start_server(sqlite_url)
    try:
        yield live
    finally:
        live.stop()


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
