"""Network failures in one line that says what to check (issue 12, item 4)."""

from __future__ import annotations

import socket
import threading

import pytest

from tests.pushkit import push_once, write_config

pytestmark = pytest.mark.parametrize("backend", [pytest.param("sqlite", id="sqlite")])


def one_line_error(pair, url: str) -> str:
    config = write_config(pair.dir / "words.conf", pair.local, {"central": (url, pair.key)})
    [report] = push_once(config)
    assert not report.ok
    error = report.error or ""
    assert "\n" not in error and len(error) < 300, error
    return error


def test_nothing_listening_says_is_the_server_running(pair):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    error = one_line_error(pair, f"http://127.0.0.1:{port}/rest/")
    assert f"nothing listens at 127.0.0.1:{port} — is the server running?" in error


def test_a_host_name_that_does_not_resolve_says_check_resturl_and_dns(pair):
    error = one_line_error(pair, "http://no-such-host.invalid/rest/")
    assert "cannot resolve the host name 'no-such-host.invalid'" in error


def test_https_to_a_server_that_does_not_speak_tls_says_the_handshake_failed(pair):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer_plain_http() -> None:
        for _ in range(3):
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(1024)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    threading.Thread(target=answer_plain_http, daemon=True).start()
    try:
        error = one_line_error(pair, f"https://127.0.0.1:{port}/rest/")
    finally:
        listener.close()
    assert f"TLS handshake with 127.0.0.1:{port} failed" in error
