"""The HTTP client for one remote server.

One ``requests.Session`` per remote, so connections are kept alive between
batches; every request has a connect and a read timeout; JSON bodies are
gzipped. Batches go as ``cogent-batch/2`` (binary, compressed inside); a server
that does not know that format gets ``cogent-batch/1`` JSON from then on.
Anything other than a complete, parseable 2xx reply is a failure: transient
(:class:`RemoteUnavailable`: network, timeout, truncated body, 5xx, 408, 429)
or permanent (:class:`RemoteRejected`/:class:`AuthError`: other 4xx). A reply
is never taken as success by accident.
"""

from __future__ import annotations

import gzip
import logging
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests

from base import __version__
from base.config import RemoteConfig
from base.errors import AuthError, RemoteRejected, RemoteUnavailable
from push.streams import CODEC_LZMA2, CODEC_NONE, CONTENT_TYPE_V2, BatchPayload

log = logging.getLogger(__name__)

TRANSIENT_STATUSES = {408, 425, 429}
GZIP_LEVEL = 6


@dataclass
class Traffic:
    """Requests and bytes exchanged, for logs and benchmarks (batches are sent from
    several threads at once: the totals are kept under a lock, and each thread's own
    bytes apart, so that a caller can tell what its own requests cost)."""

    requests: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _mine: threading.local = field(default_factory=threading.local, repr=False, compare=False)

    def add(self, sent: int, received: int) -> None:
        with self._lock:
            self.requests += 1
            self.bytes_sent += sent
            self.bytes_received += received
        self._mine.bytes = self.this_thread() + sent + received

    def this_thread(self) -> int:
        """Bytes sent and received by the calling thread's requests so far."""
        return int(getattr(self._mine, "bytes", 0))


@dataclass
class BatchReply:
    stored: int
    unchanged: int
    rejected: list[dict[str, Any]] = field(default_factory=list)


class RemoteClient:
    def __init__(self, remote: RemoteConfig, session: requests.Session | None = None):
        self.remote = remote
        self.base = remote.resturl
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = f"cogent-sync-pusher/{__version__}"
        self.session.headers["Accept"] = "application/json"
        self.session.headers["Accept-Encoding"] = "gzip"
        if remote.apikey:
            self.session.headers["Authorization"] = f"Bearer {remote.apikey}"
        self.session.verify = remote.verify_tls
        self.traffic = Traffic()
        self.batch_format = 2  # falls back to 1 once if the server does not take format 2

    def close(self) -> None:
        self.session.close()

    # -- endpoints ---------------------------------------------------------------------------
    def version(self) -> dict[str, Any]:
        return self._json("GET", "version/")

    def map_metadata(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "sync/map/", body=payload)

    def send_batch(self, payload: BatchPayload | dict[str, Any]) -> BatchReply:
        """Send one batch; a :class:`BatchPayload` goes as format 2 when the server takes it."""
        if isinstance(payload, dict):
            reply = self._json("POST", "sync/batch/", body=payload)
        elif self.batch_format == 2:
            codec = CODEC_NONE if self.remote.compression == "none" else CODEC_LZMA2
            try:
                reply = self._json(
                    "POST",
                    "sync/batch/",
                    data=payload.binary(codec),
                    content_type=CONTENT_TYPE_V2,
                )
            except RemoteRejected as exc:
                if not _format_refused(exc):
                    raise
                log.warning(
                    "%s: the server does not take cogent-batch/2 (%s); sending "
                    "cogent-batch/1 from now on: upgrade the server for ~40%% fewer bytes",
                    self.remote.name,
                    exc,
                )
                self.batch_format = 1
                reply = self._json("POST", "sync/batch/", body=payload.as_json())
        else:
            reply = self._json("POST", "sync/batch/", body=payload.as_json())
        try:
            return BatchReply(
                stored=int(reply["stored"]),
                unchanged=int(reply["unchanged"]),
                rejected=list(reply.get("rejected") or []),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RemoteUnavailable(
                f"{self.remote.name}: batch reply lacks stored/unchanged counts ({exc}); "
                "is resturl pointing at a cogent-sync server?"
            ) from exc

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._json("GET", path, params=params)

    # -- plumbing ----------------------------------------------------------------------------
    def _json(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        data: bytes | None = None,
        content_type: str | None = None,
    ) -> Any:
        url = self.base + path
        headers: dict[str, str] = {}
        if content_type:
            headers["Content-Type"] = content_type
        if body is not None:
            data = orjson.dumps(body)
            headers["Content-Type"] = "application/json"
            if self.remote.compression == "gzip":
                data = gzip.compress(data, compresslevel=GZIP_LEVEL)
                headers["Content-Encoding"] = "gzip"
        where = f"{self.remote.name} ({method} {url})"
        try:
            resp = self.session.request(
                method,
                url,
                data=data,
                headers=headers,
                params=params,
                timeout=(self.remote.connect_timeout, self.remote.timeout),
            )
            content = resp.content  # reads the whole body: a truncated one raises here
        except requests.exceptions.Timeout as exc:
            raise RemoteUnavailable(f"{where}: timed out ({exc.__class__.__name__})") from exc
        except requests.exceptions.ConnectionError as exc:
            raise RemoteUnavailable(f"{where}: cannot connect: {_short(exc)}") from exc
        except requests.exceptions.RequestException as exc:
            raise RemoteUnavailable(f"{where}: {exc.__class__.__name__}: {_short(exc)}") from exc
        self.traffic.add(request_wire_size(resp, data), response_wire_size(resp, content))
        status = resp.status_code
        if 200 <= status < 300:
            try:
                return orjson.loads(content) if content else None
            except orjson.JSONDecodeError as exc:
                raise RemoteUnavailable(f"{where}: reply {status} is not valid JSON") from exc
        message = _error_message(content) or resp.reason or "no message"
        if status >= 500 or status in TRANSIENT_STATUSES:
            raise RemoteUnavailable(f"{where}: server answered {status}: {message}")
        if status in (401, 403):
            raise AuthError(
                f"{where}: {status} {message} — check [{self.remote.name}] apikey; a new key "
                f"comes from 'cogent-rest keys create --site NAME' on the server",
                status,
            )
        raise RemoteRejected(f"{where}: {status} {message}", status)


def _format_refused(exc: RemoteRejected) -> bool:
    """A 4xx that means "this server does not know cogent-batch/2" (it tried to read JSON)."""
    text = str(exc)
    return exc.status in (400, 415) and (
        "JSON" in text or "format" in text or "Content-Type" in text
    )


def _error_message(content: bytes) -> str | None:
    try:
        doc = orjson.loads(content)
    except orjson.JSONDecodeError:
        text = content[:200].decode("utf-8", "replace").strip()
        return text or None
    if isinstance(doc, dict):
        msg = doc.get("error") or doc.get("detail")
        return str(msg) if msg is not None else None
    return None


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "…"


def request_wire_size(resp: requests.Response, data: bytes | None) -> int:
    """Bytes of the request on the wire: request line, headers (with the Host header that
    http.client adds), blank line, body."""
    req = resp.request
    line = f"{req.method} {req.path_url} HTTP/1.1\r\n"
    host = f"Host: {urlsplit(req.url or '').netloc}\r\n"
    headers = "".join(f"{k}: {v}\r\n" for k, v in req.headers.items())
    return len(line) + len(host) + len(headers) + 2 + (len(data) if data else 0)


def response_wire_size(resp: requests.Response, content: bytes) -> int:
    headers = "".join(f"{k}: {v}\r\n" for k, v in resp.headers.items())
    wire = int(resp.headers.get("Content-Length", len(content)))
    return len("HTTP/1.1 200 OK\r\n") + len(headers) + 2 + wire
