"""The pusher against a server that turns batches away (issue 17, item 1): it waits as the
server asks and delivers everything in the same cycle."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from sqlalchemy.engine import make_url

from tests.live_server import start_server
from tests.pushkit import assert_same, push_once, seed_cogent_house


@pytest.mark.parametrize("backend", [pytest.param("sqlite", id="sqlite")])
def test_the_pusher_waits_for_a_busy_server_and_delivers(pair):
    """Once the metadata is mapped, a writer holds the server's database for 3 s: the batch
    being applied waits with the only place, the next one is turned away (429); the cycle
    still ends ok with everything delivered."""
    seed_cogent_house(pair.local, days=1)
    busy = start_server(pair.remote, max_batches=1)
    path = make_url(pair.remote).database

    def hold_once_mapped() -> None:
        with sqlite3.connect(path, timeout=30) as db:
            while not db.execute('SELECT COUNT(*) FROM "Location"').fetchone()[0]:
                time.sleep(0.01)
            db.execute("BEGIN IMMEDIATE")
            time.sleep(3)
            db.rollback()

    holder = threading.Thread(target=hold_once_mapped)
    try:
        holder.start()
        [report] = push_once(pair.config(url=busy.url, pushlimit=200, timeout=15))
        holder.join()
        assert report.ok, report.error
        assert report.busy >= 1
        assert_same(pair.local, pair.remote)
    finally:
        busy.stop()
