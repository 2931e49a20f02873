"""The HTTP connection: uvicorn's h11 protocol with a deadline for a request's headers.

uvicorn waits for a request's headers for as long as the client likes, so a client that
connects and sends nothing, or its headers one byte at a time, holds a connection (and a
slot of the server's limit) forever. Here a connection whose next request's headers are not
complete within ``header_timeout`` seconds of their first byte (or of the connection) is
closed. The body has its own deadline (``--body-timeout``, rest/body.py); an idle
keep-alive connection is closed by uvicorn's keep-alive timeout.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

DEFAULT_HEADER_TIMEOUT = 20.0


class HeaderDeadlineProtocol(H11Protocol):
    # Set by the server (rest/server.py, and rest/app.py in worker processes) before serving.
    header_timeout: float = DEFAULT_HEADER_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._handling():
            self._stop_waiting()
        elif self._header_timer is None and not self.transport.is_closing():
            self._await_headers()  # a next request has begun; its headers have a deadline too

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def _handling(self) -> bool:
        """True once a request's headers are in and it is being answered."""
        return self.cycle is not None and not self.cycle.response_complete

    def _await_headers(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _stop_waiting(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self._handling() and not self.transport.is_closing():
            self.logger.info("closing a connection whose request headers took over %g s",
                             self.header_timeout)
            self.transport.close()
