"""A request's cost is bounded by the database too (issue 11, item 3): a statement that runs
too long is stopped by the database, and a request that finds every connection in use is
told to come back (503 + Retry-After) instead of waiting and failing with a 500."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from rest.app import create_app
from rest.settings import Settings
from rest.state import build_state
from tests.live_server import create_key, start_server

SLEEP = {"mysql": "SELECT SLEEP(3)", "postgresql": "SELECT pg_sleep(3)"}


def test_a_statement_longer_than_the_statement_timeout_is_stopped_by_the_database(
    db_url, backend
):
    if backend == "sqlite":
        pytest.skip("SQLite has no statement timeout; its work is bounded by the request limits")
    state = build_state(Settings(db_url=db_url, statement_timeout=0.5))
    try:
        with state.engine.connect() as conn:
            try:
                value = conn.execute(text(SLEEP[backend])).scalar()
            except OperationalError:
                return  # PostgreSQL: canceling statement due to statement timeout
        assert value == 1  # MariaDB: SLEEP() interrupted by max_statement_time returns 1
    finally:
        state.engine.dispose()


def test_every_connection_in_use_is_a_503_with_retry_after_not_a_500(db_url, backend):
    if backend == "sqlite":
        pytest.skip("the SQLite engine does not pool connections this way")
    app = create_app(Settings(db_url=db_url, pool_size=1, pool_overflow=0, pool_timeout=0.5))
    engine = app.state.cogent.engine
    key = create_key(db_url, "pool-site")

    async def ask() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/rest/house/", headers={"Authorization": f"Bearer {key}"})

    try:
        held = engine.connect()  # the pool's only connection
        try:
            reply = asyncio.run(ask())
        finally:
            held.close()
        assert reply.status_code == 503, reply.text
        assert reply.headers["Retry-After"].isdigit()
        assert "busy" in reply.json()["error"]
        assert asyncio.run(ask()).status_code == 200  # and fine once a connection is free
    finally:
        engine.dispose()


@pytest.mark.slow  # a server of its own
def test_a_body_that_trickles_in_is_cut_off_at_the_body_timeout_with_408(sqlite_url):
    """The probe held 200 connections for 30 s with bodies sent a byte at a time."""
    server = start_server(sqlite_url, body_timeout=1)
    try:
        key = create_key(sqlite_url, "slow-site")
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
            conn.sendall((f"POST /rest/sync/hello/ HTTP/1.1\r\nHost: x\r\n"
                          f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
                          f"Content-Length: 100\r\n\r\n").encode() + b'{"host": ')
            t0 = time.monotonic()
            reply = conn.recv(4096)
            waited = time.monotonic() - t0
        assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
        assert waited < 5
    finally:
        server.stop()
