"""A client that gives up on a slow summary does not leave its query running: the server
cancels the statement on the database (issue 11, item 3). The summary is made slow by
holding a lock on the Reading table from another connection; while the lock is still held,
the abandoned queries must be gone from the database's process list."""

from __future__ import annotations

import time

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from base.db import normalise_url
from tests.live_server import create_key, start_server

pytestmark = pytest.mark.slow  # a server of its own


def _waiting_summaries(engine, backend: str) -> int:
    with engine.connect() as conn:
        if backend == "mysql":
            return int(conn.execute(text(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() "
                "AND INFO LIKE '%GROUP BY%' AND COMMAND = 'Query' "
                "AND ID <> CONNECTION_ID()")).scalar_one())
        return int(conn.execute(text(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state = 'active' AND query LIKE '%GROUP BY%' "
            "AND pid <> pg_backend_pid()")).scalar_one())


@pytest.mark.parametrize("backend", ["mysql", "postgresql"])
def test_summaries_abandoned_by_their_clients_are_cancelled_on_the_database(make_db, backend):
    url = make_db("cancel")
    server = start_server(url)
    key = create_key(url, None, "readonly")
    locker = create_engine(normalise_url(url), poolclass=NullPool)
    watcher = create_engine(normalise_url(url), poolclass=NullPool)
    try:
        with locker.connect() as lock:
            if backend == "mysql":
                lock.execute(text("LOCK TABLES Reading WRITE"))
            else:
                lock.execute(text('LOCK TABLE "Reading" IN ACCESS EXCLUSIVE MODE'))
            for _ in range(3):  # impatient clients: they give up after half a second
                with pytest.raises(httpx.ReadTimeout):
                    httpx.get(server.url + "summary/reading/", timeout=0.5,
                              params={"houseId": 1}, headers={"Authorization": f"Bearer {key}"})
            deadline = time.monotonic() + 10
            left = _waiting_summaries(watcher, backend)
            while left and time.monotonic() < deadline:
                time.sleep(0.2)
                left = _waiting_summaries(watcher, backend)
            assert left == 0, f"{left} abandoned summaries still run on the database"
            if backend == "mysql":
                lock.execute(text("UNLOCK TABLES"))
            else:
                lock.rollback()
        # The server answers as before once the lock is gone.
        reply = httpx.get(server.url + "summary/reading/", timeout=30, params={"houseId": 1},
                          headers={"Authorization": f"Bearer {key}"})
        assert reply.status_code == 200, reply.text
    finally:
        locker.dispose()
        watcher.dispose()
        server.stop()
