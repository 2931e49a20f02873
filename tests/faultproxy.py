"""A fault-injecting HTTP proxy on 127.0.0.1, for tests of what crosses the network.

Each request from the client takes the next fault from ``faults`` (``"pass"``
when empty) and the proxy acts it out:

- ``pass``: forward, return the server's reply
- ``502`` / ``503``: answer as a broken gateway would, without forwarding
- ``reset_before``: drop the connection (RST) before forwarding
- ``reset_after``: forward (the server commits!), then RST instead of replying
- ``truncate``: forward, then send only part of the reply and close
- ``stall``: read the request, answer nothing for ``stall_seconds``, close
- ``trickle``: forward, send the reply a few bytes at a time (slow but complete)
- ``drip``: forward, then send the reply one byte every ``drip_seconds`` (a hung remote
  whose every read still returns something)

A hostile server is scripted by path: ``proxy.on("/sync/batch/", responder)`` hands the
next request whose path contains that fragment to ``responder(request, forward)``, which
returns the raw reply to send (``forward()`` gives the real server's reply) or None to
close the connection; the scripted replies come before the faults above.
"""

from __future__ import annotations

import collections
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

Responder = Callable[[bytes, Callable[[], bytes | None]], bytes | None]

FAULTS = ("pass", "502", "503", "reset_before", "reset_after", "truncate", "stall", "trickle",
          "drip")


def _read_message(sock: socket.socket, buf: bytearray) -> bytes | None:
    """One HTTP/1.1 message with a Content-Length (or none) body; None at EOF."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk
    head_end = buf.index(b"\r\n\r\n") + 4
    head = bytes(buf[:head_end])
    length = 0
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        if name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while not buf.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                return None
            buf += chunk
        msg = bytes(buf)
        buf.clear()
        return msg
    while len(buf) < head_end + length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk
    msg = bytes(buf[: head_end + length])
    del buf[: head_end + length]
    return msg


def _rst(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class FaultProxy:
    def __init__(self, upstream_url: str, stall_seconds: float = 3.0, drip_seconds: float = 0.5,
                 default_fault: str = "pass"):
        parts = urlsplit(upstream_url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.path_prefix = parts.path
        self.stall_seconds = stall_seconds
        self.drip_seconds = drip_seconds
        self.default_fault = default_fault  # for requests when no fault is queued
        self.faults: collections.deque[str] = collections.deque()
        self.seen: collections.Counter[str] = collections.Counter()
        self.requests = 0
        self.paths: list[str] = []  # every request's method and path, in order
        self._scripts: list[list] = []  # [fragment, responder, times left]
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}{self.path_prefix}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def inject(self, *faults: str) -> None:
        for f in faults:
            assert f in FAULTS, f
        with self._lock:
            self.faults.extend(faults)

    def on(self, fragment: str, responder: Responder, times: int = 1) -> None:
        """Answer the next ``times`` requests whose path contains ``fragment`` with
        ``responder`` (``times=0``: every one)."""
        with self._lock:
            self._scripts.append([fragment, responder, times or -1])

    def clear_scripts(self) -> None:
        with self._lock:
            self._scripts.clear()

    def _script_for(self, request: bytes) -> Responder | None:
        line = request.split(b"\r\n", 1)[0].decode("latin-1")
        with self._lock:
            self.paths.append(line.rsplit(" ", 1)[0])
            for script in self._scripts:
                if script[0] in line and script[2] != 0:
                    script[2] -= 1
                    return script[1]
        return None

    def clear(self) -> int:
        """Drop the faults not yet acted out; how many there were."""
        with self._lock:
            left = len(self.faults)
            self.faults.clear()
            return left

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()

    def _next_fault(self) -> str:
        with self._lock:
            self.requests += 1
            fault = self.faults.popleft() if self.faults else self.default_fault
            self.seen[fault] += 1
            return fault

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _forward(self, request: bytes) -> bytes | None:
        try:
            with socket.create_connection(self.upstream, timeout=30) as up:
                # One request per upstream connection keeps the framing simple.
                up.sendall(request.replace(b"Connection: keep-alive", b"Connection: close", 1))
                buf = bytearray()
                return _read_message(up, buf)
        except OSError:
            return None

    def _serve(self, client: socket.socket) -> None:
        buf = bytearray()
        try:
            while not self._stop.is_set():
                request = _read_message(client, buf)
                if request is None:
                    break
                responder = self._script_for(request)
                if responder is not None:
                    answer = responder(request, lambda r=request: self._forward(r))
                    if answer is None:
                        _rst(client)
                        return
                    client.sendall(answer)
                    continue
                fault = self._next_fault()
                if fault in ("502", "503"):
                    body = b"<html><body>Bad Gateway</body></html>"
                    reason = b"Bad Gateway" if fault == "502" else b"Service Unavailable"
                    client.sendall(
                        b"HTTP/1.1 " + fault.encode() + b" " + reason + b"\r\n"
                        b"Content-Type: text/html\r\nConnection: close\r\n"
                        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                    )
                    break
                if fault == "reset_before":
                    _rst(client)
                    return
                if fault == "stall":
                    time.sleep(self.stall_seconds)
                    break
                reply = self._forward(request)
                if reply is None:
                    _rst(client)
                    return
                if fault == "reset_after":
                    _rst(client)
                    return
                if fault == "truncate":
                    client.sendall(reply[: max(1, len(reply) - 7)])
                    break
                if fault == "drip":
                    for i in range(len(reply)):
                        if self._stop.wait(self.drip_seconds):
                            break
                        client.sendall(reply[i : i + 1])
                    break
                if fault == "trickle":
                    for i in range(0, len(reply), 16):
                        client.sendall(reply[i : i + 16])
                        time.sleep(0.001)
                    continue
                client.sendall(reply)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            client.close()


def http_reply(status: int, body: bytes = b"", headers: dict[str, str] | None = None,
               content_type: str = "application/json") -> bytes:
    """A raw HTTP/1.1 reply with a Content-Length."""
    lines = [f"HTTP/1.1 {status} X", f"Content-Type: {content_type}",
             f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def request_body(request: bytes) -> bytes:
    """The body of a raw request (decompressed when it was gzipped)."""
    import gzip

    head, _, body = request.partition(b"\r\n\r\n")
    return gzip.decompress(body) if b"content-encoding: gzip" in head.lower() else body
