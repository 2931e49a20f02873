"""One HTTP request to a remote, bounded in time and size, with failures in one line.

Every request has a total deadline (``request_deadline``: a reply that trickles in a byte
at a time still ends), a cap on the reply once decompressed (``max_reply``: neither a huge
reply nor a gzip bomb can fill the base station's memory), and follows no redirect (a
batch is never re-sent somewhere else, and an answer from elsewhere never acknowledges
it). The deadline is checked between reads, each of which waits at most ``timeout``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.adapters
import urllib3
import urllib3.connection

from base.config import RemoteConfig
from base.errors import BadReply, RemoteUnavailable

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
_watched = threading.local()  # the calling thread's current request, for its watchdog


class _Watch:
    """One request's watchdog: knows the connection it runs on, shuts it down at the
    deadline."""

    def __init__(self, seconds: float):
        self.connection: urllib3.connection.HTTPConnection | None = None
        self.fired = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def __enter__(self) -> _Watch:
        _watched.current = self
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        _watched.current = None

    def _fire(self) -> None:
        self.fired = True
        sock = getattr(self.connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _WatchedHTTP(urllib3.connection.HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        watch = getattr(_watched, "current", None)
        if watch is not None:
            watch.connection = self
        super().request(*args, **kwargs)


class _WatchedHTTPS(urllib3.connection.HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        watch = getattr(_watched, "current", None)
        if watch is not None:
            watch.connection = self
        super().request(*args, **kwargs)


class _WatchedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTP


class _WatchedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPS


class _WatchedAdapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


def watch(session: requests.Session) -> requests.Session:
    """Make ``session``'s requests keepable to a deadline (see :func:`request`)."""
    session.mount("http://", _WatchedAdapter())
    session.mount("https://", _WatchedAdapter())
    return session


@dataclass(frozen=True)
class Reply:
    status: int
    headers: requests.structures.CaseInsensitiveDict[str]
    content: bytes  # decompressed
    wire_bytes: int  # as received
    response: requests.Response  # closed; its request and headers, for the traffic figures


def host_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc.rsplit("@", 1)[-1] or url


# A pooled connection idle for longer than the server's keep-alive (uvicorn: 5 s) may be closed
# by the server just as the next request goes out on it: the request then dies with a reset,
# and so may its retries on the pool's other idle connections (seen in a fleet of 1,000
# stations, whose threads waited for the CPU between requests). Past this idle time the
# session's pooled connections are dropped and the request opens a fresh one.
IDLE_RECONNECT_SECONDS = 4.0


def forget_idle_connections(session: requests.Session, now: float | None = None) -> bool:
    """Drop ``session``'s pooled connections when it has been idle past
    :data:`IDLE_RECONNECT_SECONDS`; True when it did."""
    now = time.monotonic() if now is None else now
    last = getattr(session, "cogent_last_request", None)
    session.cogent_last_request = now  # type: ignore[attr-defined]
    if last is None or now - last <= IDLE_RECONNECT_SECONDS:
        return False
    for adapter in session.adapters.values():
        if isinstance(adapter, requests.adapters.HTTPAdapter):
            adapter.poolmanager.clear()
    return True


def request(
    session: requests.Session,
    remote: RemoteConfig,
    method: str,
    url: str,
    *,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
) -> Reply:
    """Send one request and read its whole reply within the remote's deadline and cap."""
    where = f"{remote.name} ({method} {url})"
    forget_idle_connections(session)
    late = RemoteUnavailable(
        f"{where}: no complete reply within request_deadline = {remote.request_deadline:g} s "
        f"(it came too slowly)")
    with _Watch(remote.request_deadline) as watchdog:
        try:
            resp = session.request(
                method, url, data=data, headers=headers, params=params,
                timeout=(remote.connect_timeout, remote.timeout),
                stream=True, allow_redirects=False,
            )
        except requests.exceptions.RequestException as exc:
            if watchdog.fired:
                raise late from exc
            raise RemoteUnavailable(f"{where}: {network_failure(exc, url)}") from exc
        try:
            content, wire = _read(resp, remote, where)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            log.debug("reading the reply from %s failed", url, exc_info=exc)
            if watchdog.fired:
                raise late from exc
            if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
                raise RemoteUnavailable(
                    f"{where}: {host_of(url)} stopped answering mid-reply (read timeout)"
                ) from exc
            raise RemoteUnavailable(
                f"{where}: {host_of(url)} broke off its reply ({exc.__class__.__name__})"
            ) from exc
        finally:
            resp.close()
    if 300 <= resp.status_code < 400:
        target = resp.headers.get("Location", "nowhere")
        raise BadReply(
            f"{where}: answered {resp.status_code}, a redirect to {target}; the pusher "
            f"follows no redirect — set resturl to the server's real address", resp.status_code)
    media = resp.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    # A proxy's 502/503/504 page is HTML too, and means "try again later", not "wrong server".
    if media in ("text/html", "application/xhtml+xml") and resp.status_code < 500:
        raise BadReply(
            f"{host_of(url)} answered with an HTML page, not cogent-sync — check resturl "
            f"in [{remote.name}] (HTTP {resp.status_code})", resp.status_code)
    return Reply(resp.status_code, resp.headers, content, wire, resp)


def _read(resp: requests.Response, remote: RemoteConfig, where: str) -> tuple[bytes, int]:
    encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding in ("gzip", "x-gzip") else None
    cap = remote.max_reply
    out = bytearray()
    wire = 0
    while chunk := resp.raw.read1(CHUNK, decode_content=False):  # whatever has arrived
        wire += len(chunk)
        if inflate is None:
            out += chunk
        else:
            data = chunk
            while data:
                try:
                    out += inflate.decompress(data, cap + 1 - len(out))
                except zlib.error as exc:
                    raise RemoteUnavailable(f"{where}: the gzip reply is corrupt ({exc})") from exc
                if len(out) > cap:
                    break
                data = inflate.unconsumed_tail
                if inflate.eof and inflate.unused_data:  # another gzip member follows
                    data = inflate.unused_data
                    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        if len(out) > cap:
            raise BadReply(
                f"{where}: the reply is larger than max_reply = {cap} bytes (decompressed); "
                f"is resturl pointing at a cogent-sync server?")
    return bytes(out), wire


def network_failure(exc: requests.exceptions.RequestException, url: str) -> str:
    """What went wrong on the network, in one line that says what to check (the full
    exception is logged at DEBUG)."""
    log.debug("request to %s failed", url, exc_info=exc)
    parts = urlsplit(url)
    host = parts.hostname or url
    port = parts.port or (443 if parts.scheme == "https" else 80)
    text = str(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        return (f"TLS handshake with {host}:{port} failed — check the certificate, or set "
                f"verify_tls = false for a self-signed test server")
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"no answer from {host}:{port} within connect_timeout — is the host up?"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return f"{host}:{port} stopped answering (read timeout) — is the server overloaded?"
    if isinstance(exc, requests.exceptions.ConnectionError):
        if "Name or service not known" in text or "getaddrinfo" in text or "resolve" in text:
            return f"cannot resolve the host name {host!r} — check resturl and DNS"
        if "Connection refused" in text:
            return f"nothing listens at {host}:{port} — is the server running?"
        if "reset" in text.lower() or "aborted" in text.lower():
            return f"{host}:{port} closed the connection mid-request"
        return f"cannot connect to {host}:{port} ({exc.__class__.__name__})"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return f"{host}:{port} broke off its reply (incomplete body)"
    return f"{exc.__class__.__name__} talking to {host}:{port}"
