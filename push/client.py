"""The HTTP client for one remote server.

One ``requests.Session`` per remote, so connections are kept alive between
batches; every request goes through :mod:`push.transport` (connect and read
timeouts, a total deadline, a reply size cap, no redirects). JSON bodies are
gzipped. Batches go as ``cogent-batch/2`` (binary, compressed inside); a server
that answers 415 to that format gets ``cogent-batch/1`` JSON from then on.
Anything other than a complete, parseable 2xx reply is a failure: transient
(:class:`RemoteUnavailable`: network, timeout, truncated body, 5xx, 408, 429;
:class:`RemoteBusy` when the server says how long to wait) or permanent
(:class:`RemoteRejected`/:class:`AuthError`: other 4xx; :class:`BadReply`: not what
a cogent-sync server answers). A batch counts as delivered only on an
acknowledgement that accounts for every row sent (:mod:`models.protocol.ack`).
"""

from __future__ import annotations

import gzip
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests

from base import __version__
from base.config import RemoteConfig
from base.errors import AuthError, BadReply, RemoteBusy, RemoteRejected, RemoteUnavailable
from models.protocol.ack import Ack, BadAck, batch_digest, check_ack
from models.protocol.batch import CODEC_LZMA2, CODEC_NONE, CONTENT_TYPE_V2
from models.protocol.encode import BatchPayload
from push import transport

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


class RemoteClient:
    def __init__(self, remote: RemoteConfig, session: requests.Session | None = None):
        self.remote = remote
        self.base = remote.resturl
        self.session = transport.watch(session or requests.Session())
        self.session.headers["User-Agent"] = f"cogent-sync-pusher/{__version__}"
        self.session.headers["Accept"] = "application/json"
        self.session.headers["Accept-Encoding"] = "gzip"
        if remote.apikey:
            self.session.headers["Authorization"] = f"Bearer {remote.apikey}"
        self.session.verify = remote.verify_tls
        self.traffic = Traffic()
        # This station's clock minus the server's, from the last reply's Date header (±1 s).
        self.clock_offset: float | None = None
        self.batch_format = 2  # falls back to 1 once if the server does not take format 2

    def close(self) -> None:
        self.session.close()

    # -- endpoints ---------------------------------------------------------------------------
    def version(self) -> dict[str, Any]:
        return self._json("GET", "version/")

    def login(self, name: str, password: str) -> tuple[str, str]:
        """(site, key) for a base station's account (``POST login/``); AuthError with the
        server's words when refused."""
        url = self.base + "login/"
        self.session.headers.pop("Authorization", None)  # a password, not the old key
        headers = {"Content-Type": "application/json"}
        reply = transport.request(self.session, self.remote, "POST", url, headers=headers,
                                  data=orjson.dumps({"name": name, "password": password}))
        message = _error_message(reply.content) or f"status {reply.status}"
        if reply.status == 201:
            try:
                doc = orjson.loads(reply.content)
                return str(doc["site"]), str(doc["key"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                raise BadReply(f"{self.remote.name}: the login reply is not cogent-sync's; "
                               f"check resturl") from None
        if reply.status in (401, 403, 429):
            raise AuthError(f"{self.remote.name}: login refused: {message}", reply.status)
        if reply.status in (404, 405):
            raise RemoteRejected(f"{self.remote.name}: this server has no login (an older "
                                 f"cogent-sync?); ask its operator for a key", reply.status)
        raise RemoteUnavailable(f"{self.remote.name}: login failed: {message}")

    def hello(self, checkin: dict[str, Any]) -> dict[str, Any] | None:
        """The authenticated check-in (``POST sync/hello/``): who the key is, the server's
        schema and clock. None from a server too old to have it (404/405)."""
        try:
            reply = self._json("POST", "sync/hello/", body=checkin)
        except RemoteRejected as exc:
            if exc.status in (404, 405) and not isinstance(exc, BadReply):
                return None
            raise
        if not isinstance(reply, dict) or not isinstance(reply.get("schema"), str | None):
            raise BadReply(f"{self.remote.name}: the hello reply {_clip(reply)} is not "
                           f"cogent-sync's; check resturl")
        return reply

    def map_metadata(self, payload: dict[str, Any]) -> dict[str, Any]:
        reply = self._json("POST", "sync/map/", body=payload)
        return check_map_reply(self.remote.name, reply)

    def send_batch(self, payload: BatchPayload | dict[str, Any]) -> Ack:
        """Send one batch and return its checked acknowledgement; a :class:`BatchPayload`
        goes as format 2 when the server takes it."""
        if isinstance(payload, dict):
            kind = "reading" if payload.get("readings") else "nodestate"
            rows = sum(len(s["t"]) for s in payload.get(kind + "s", []))
            return self._send_checked(orjson.dumps(payload), None, rows, kind)
        if self.batch_format == 2:
            codec = CODEC_NONE if self.remote.compression == "none" else CODEC_LZMA2
            try:
                return self._send_checked(
                    payload.binary(codec), CONTENT_TYPE_V2, payload.rows, payload.kind)
            except RemoteRejected as exc:
                if exc.status != 415:
                    raise
                log.warning(
                    "%s: the server does not take cogent-batch/2 (415); sending "
                    "cogent-batch/1 from now on: upgrade the server for ~40%% fewer bytes",
                    self.remote.name,
                )
                self.batch_format = 1
        return self._send_checked(
            orjson.dumps(payload.as_json()), None, payload.rows, payload.kind)

    def _send_checked(self, body: bytes, content_type: str | None, rows: int, kind: str) -> Ack:
        digest = batch_digest(body)
        if content_type is None:
            reply = self._json("POST", "sync/batch/", json_bytes=body)
        else:
            reply = self._json("POST", "sync/batch/", data=body, content_type=content_type)
        try:
            return check_ack(reply, digest=digest, rows=rows, kind=kind)
        except BadAck as exc:
            raise BadReply(
                f"{self.remote.name}: the server's reply does not acknowledge the batch sent: "
                f"{exc}; nothing is taken as delivered — is resturl a cogent-sync server?"
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
        json_bytes: bytes | None = None,
        params: dict[str, Any] | None = None,
        data: bytes | None = None,
        content_type: str | None = None,
    ) -> Any:
        url = self.base + path
        headers: dict[str, str] = {}
        if content_type:
            headers["Content-Type"] = content_type
        if body is not None:
            json_bytes = orjson.dumps(body)
        if json_bytes is not None:
            data = json_bytes
            headers["Content-Type"] = "application/json"
            if self.remote.compression == "gzip":
                data = gzip.compress(data, compresslevel=GZIP_LEVEL)
                headers["Content-Encoding"] = "gzip"
        where = f"{self.remote.name} ({method} {url})"
        reply = transport.request(
            self.session, self.remote, method, url, data=data, headers=headers, params=params)
        self.traffic.add(request_wire_size(reply.response, data),
                         response_wire_size(reply.response, reply.content))
        self._note_clock(reply.headers.get("Date"))
        status = reply.status
        if 200 <= status < 300:
            try:
                return orjson.loads(reply.content) if reply.content else None
            except orjson.JSONDecodeError as exc:
                raise RemoteUnavailable(f"{where}: reply {status} is not valid JSON") from exc
        message = _error_message(reply.content) or "no message"
        if status in (429, 503) and (wait := _retry_after(reply.headers.get("Retry-After"))):
            raise RemoteBusy(f"{where}: server busy ({status}): {message}", wait)
        if status >= 500 or status in TRANSIENT_STATUSES:
            raise RemoteUnavailable(f"{where}: server answered {status}: {message}")
        if status in (401, 403):
            raise AuthError(
                f"{where}: {status} {message} — check [{self.remote.name}] apikey; a new key "
                f"comes from 'cogent-rest keys create --site NAME' on the server",
                status,
            )
        raise RemoteRejected(f"{where}: {status} {message}", status)


    def _note_clock(self, date: str | None) -> None:
        if not date:
            return
        try:
            server = parsedate_to_datetime(date)
        except (TypeError, ValueError):
            return
        if server.tzinfo is None:
            return
        now = datetime.now(UTC)
        # The Date header has whole seconds: half a second is the best estimate of the rest.
        self.clock_offset = (now - server).total_seconds() - 0.5


MAX_RETRY_AFTER = 24 * 3600.0


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header given in seconds (dates are not used by servers
    that answer a pusher); None when absent or unreadable."""
    if not value or not value.strip().isascii() or not value.strip().isdigit():
        return None
    return min(float(value.strip()), MAX_RETRY_AFTER) or None


def check_map_reply(remote: str, reply: Any) -> dict[str, Any]:
    """The map reply, checked: an object of id maps (request key → integer server id) and
    a list of errors; anything else is a :class:`BadReply`, never a traceback."""
    def bad(why: str) -> BadReply:
        return BadReply(f"{remote}: the metadata map reply {why}; is resturl a cogent-sync "
                        f"server?")

    if not isinstance(reply, dict):
        raise bad(f"is {_clip(reply)}, not an object")
    for kind, answers in reply.items():
        if kind == "errors":
            if not isinstance(answers, list):
                raise bad(f"has errors {_clip(answers)}, not a list")
            continue
        if not isinstance(answers, dict):
            raise bad(f"maps {kind} with {_clip(answers)}, not an object")
        for key, value in answers.items():
            if type(value) is not int or not key.lstrip("-").isdigit():
                raise bad(f"maps {kind} {key!r} to {_clip(value)}, not an integer id")
    return reply


def _clip(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "…"


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
