"""Admission control (issue 17, item 1): beyond --max-batches batches being applied at once,
a batch is answered 429 with Retry-After at once, nothing of it written; the pusher waits as
asked and delivers."""

from __future__ import annotations

import sqlite3
import threading
import time

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.live_server import start_server
from tests.rest.conftest import make_site, readings_batch

pytestmark = pytest.mark.slow  # servers of their own


def test_a_batch_beyond_the_limit_is_a_429_with_retry_after_and_writes_nothing(sqlite_url):
    server = start_server(sqlite_url, max_batches=1)
    try:
        site = make_site(server)
        held = sqlite3.connect(make_url(sqlite_url).database, timeout=30)
        held.execute("BEGIN IMMEDIATE")  # the first batch waits for the database here
        first: list[httpx.Response] = []
        sender = threading.Thread(target=lambda: first.append(
            site.batch(readings_batch(site, [1.0, 2.0]), timeout=60)))
        sender.start()
        refused = None
        deadline = time.monotonic() + 20
        while refused is None and time.monotonic() < deadline:
            reply = site.batch(readings_batch(site, [3.0], start=10**15), timeout=60)
            if reply.status_code == 429:
                refused = reply
        held.rollback()
        held.close()
        sender.join(60)
        assert refused is not None, "no 429 while the only place was taken"
        assert refused.headers["Retry-After"].isdigit()
        assert "server busy" in refused.json()["error"]
        assert first[0].status_code == 200 and first[0].json()["stored"] == 2
        again = site.batch(readings_batch(site, [3.0], start=10**15))  # a place is free again
        assert again.status_code == 200 and again.json()["stored"] == 1
    finally:
        server.stop()
