"""Admission control (issue 17, item 1): beyond --max-batches batches being applied at once,
a batch is answered 429 with Retry-After at once, nothing of it written; the pusher waits as
asked and delivers."""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from sqlalchemy.engine import make_url

from rest.admission import MIN_RETRY_AFTER, WAITING_WINDOW, Admission
from rest.errors import ApiError
from tests.live_server import start_server
from tests.rest.conftest import Site, make_site, readings_batch


@contextmanager
def one_place_and_a_locked_database(sqlite_url: str) -> Iterator[tuple[Site, sqlite3.Connection]]:
    """A server admitting one batch at a time, a site on it, and the database's write lock
    held (rolled back to let the admitted batch through), so a place stays taken."""
    server = start_server(sqlite_url, max_batches=1)
    held = sqlite3.connect(make_url(sqlite_url).database, timeout=30)
    try:
        site = make_site(server)
        held.execute("BEGIN IMMEDIATE")  # whichever batch is admitted waits for it here
        yield site, held
    finally:
        if held.in_transaction:
            held.rollback()
        held.close()
        server.stop()


@pytest.mark.slow  # a server of its own
def test_a_batch_beyond_the_limit_is_a_429_with_retry_after_and_writes_nothing(sqlite_url):
    with one_place_and_a_locked_database(sqlite_url) as (site, held):
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


@pytest.mark.slow  # a server of its own
def test_a_busy_server_turns_a_batch_away_before_decoding_it(sqlite_url):
    """A turned-away batch costs the server nothing: a malformed one gets 429, not 400."""
    with one_place_and_a_locked_database(sqlite_url) as (site, held):
        first: dict[str, httpx.Response] = {}
        sender = threading.Thread(target=lambda: first.__setitem__(
            "reply", site.batch(readings_batch(site, [1.0]), timeout=60)))
        sender.start()
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                garbage = site.http.post("sync/batch/", content=b"\x00not a batch",
                                         headers={"Content-Type": "application/octet-stream"})
                if garbage.status_code == 429:
                    break
                assert garbage.status_code == 400  # the place was still free: decoded, refused
                time.sleep(0.02)
            assert garbage.status_code == 429, garbage.text
        finally:
            held.rollback()
            sender.join(60)
        assert first["reply"].status_code == 200


def test_retry_after_spreads_the_waiting_stations_over_the_time_they_need():
    admission = Admission(limit=2)
    admission.mean_seconds = 0.5
    admission.active = 2
    waits = []
    for key in range(30):  # thirty stations turned away
        with pytest.raises(ApiError) as refused, admission.batch(key):
            pass
        waits.append(int(refused.value.headers["Retry-After"]))
    assert waits[0] == MIN_RETRY_AFTER
    assert waits[-1] == 8  # 30 waiting x 0.5 s / 2 places
    with pytest.raises(ApiError), admission.batch(0):  # the same station: counted once
        pass
    assert admission.retry_after(time.monotonic()) == 8
    admission.active = 0
    with admission.batch(5):  # admitted: no longer waiting
        pass
    assert admission.retry_after(time.monotonic()) == math.ceil(29 * admission.mean_seconds / 2)
    assert admission.retry_after(time.monotonic() + WAITING_WINDOW + 1) == MIN_RETRY_AFTER
