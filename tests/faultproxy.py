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
"""

from __future__ import annotations

import collections
import contextlib
import socket
import struct
import threading
import time
from urllib.parse import urlsplit

FAULTS = ("pass", "502", "503", "reset_before", "reset_after", "truncate", "stall", "trickle")


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
    def __init__(self, upstream_url: str, stall_seconds: float = 3.0):
        parts = urlsplit(upstream_url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.path_prefix = parts.path
        self.stall_seconds = stall_seconds
        self.faults: collections.deque[str] = collections.deque()
        self.seen: collections.Counter[str] = collections.Counter()
        self.requests = 0
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
            fault = self.faults.popleft() if self.faults else "pass"
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
