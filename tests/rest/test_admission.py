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
        held.execute("BEGIN IMMEDIATE")  # whichever batch is admitted waits for the database here
        batches = {"two": readings_batch(site, [1.0, 2.0]),
                   "one": readings_batch(site, [3.0], start=10**15)}
        replies: dict[str, httpx.Response] = {}
        # Both are sent at once: which one takes the only place is the server's race, not ours.
        senders = [threading.Thread(target=lambda name=name: replies.__setitem__(
            name, site.batch(batches[name], timeout=60))) for name in batches]
        for sender in senders:
            sender.start()
        deadline = time.monotonic() + 20
        while (not any(r.status_code == 429 for r in list(replies.values()))
               and time.monotonic() < deadline):
            time.sleep(0.02)
        held.rollback()
        held.close()
        for sender in senders:
            sender.join(60)
        refused = [name for name, r in replies.items() if r.status_code == 429]
        assert len(refused) == 1, f"no 429 while the only place was taken: {replies}"
        [admitted] = [name for name in batches if name not in refused]
        reply = replies[refused[0]]
        assert reply.headers["Retry-After"].isdigit()
        assert "server busy" in reply.json()["error"]
        rows = {"two": 2, "one": 1}
        assert replies[admitted].status_code == 200
        assert replies[admitted].json()["stored"] == rows[admitted]
        again = site.batch(batches[refused[0]])  # a place is free again; nothing of it was kept
        assert again.status_code == 200 and again.json()["stored"] == rows[refused[0]]
    finally:
        server.stop()
