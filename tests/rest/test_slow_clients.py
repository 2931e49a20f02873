"""A client that is slow on purpose holds nothing for long: request headers have a deadline
(--header-timeout), and the first SIGTERM stops the server within --shutdown-timeout even
while a request is still running (issue 11, items 3 and 6)."""

from __future__ import annotations

import signal
import socket
import sqlite3
import threading
import time

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.live_server import start_server
from tests.rest.conftest import make_site, readings_batch

pytestmark = pytest.mark.slow  # servers of their own


def _closed_within(sock: socket.socket, seconds: float, trickle: bytes = b"") -> float | None:
    """Seconds until the server closes ``sock`` (sending ``trickle`` a byte at a time), or
    None if it is still open after ``seconds``."""
    start = time.monotonic()
    sock.settimeout(0.2)
    sent = 0
    while time.monotonic() - start < seconds:
        if sent < len(trickle):
            try:
                sock.sendall(trickle[sent:sent + 1])
            except OSError:
                return time.monotonic() - start
            sent += 1
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - start
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - start
    return None


def test_headers_sent_a_byte_at_a_time_or_never_lose_the_connection(sqlite_url):
    server = start_server(sqlite_url, header_timeout=1)
    try:
        port = int(server.url.split(":")[2].split("/")[0])
        silent = socket.create_connection(("127.0.0.1", port))
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"GET /rest/version/ HTTP/1.1\r\n")
        assert _closed_within(silent, 5) is not None, "a silent connection was kept open"
        took = _closed_within(slow, 5, trickle=b"Host: 127.0.0.1\r\nX-Slow: " + b"a" * 100)
        assert took is not None and took < 3, took
        silent.close()
        slow.close()
        # A client that keeps time is served as before, and again on the same connection.
        with httpx.Client(base_url=server.url, timeout=10) as http:
            assert http.get("version/").status_code == 200
            time.sleep(0.2)
            assert http.get("version/").status_code == 200
    finally:
        server.stop()


def test_sigterm_stops_the_server_within_its_grace_while_a_batch_waits(sqlite_url):
    server = start_server(sqlite_url, shutdown_timeout=2)
    try:
        site = make_site(server)
        held = sqlite3.connect(make_url(sqlite_url).database, timeout=30)
        held.execute("BEGIN IMMEDIATE")  # the batch below waits for the database
        replies: list[object] = []

        def send() -> None:
            try:
                replies.append(site.batch(readings_batch(site, [1.0]), timeout=60).status_code)
            except httpx.HTTPError as exc:
                replies.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(1)  # the batch is in the server, waiting for the lock
        assert server.process is not None
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=30)
        stopped = time.monotonic() - started
        held.rollback()
        held.close()
        sender.join(60)
        assert stopped < 2 + 5, f"SIGTERM took {stopped:.1f} s"
        assert replies and replies[0] != 200, replies  # not stored: the pusher re-sends it
    finally:
        server.stop()
